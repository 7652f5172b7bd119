/* conn.c — one connection to one Redis server.
 *
 * The core owns its socket: non-blocking connect with a deadline, poll() on
 * the socket plus a wakeup pipe, TCP keepalive, OpenSSL for rediss:// (the
 * certificate and the host name are verified by default: released hiredis
 * checks no host name), then AUTH, SELECT and CLIENT SETNAME. hiredis only
 * parses replies. Every wait returns on EINTR (RX_EINTR) and on a wakeup
 * (RX_WOKEN) instead of retrying, so signal handlers and other threads can
 * stop a blocked caller at once. */
#include "rx_private.h"
#include "reactis/sub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---------------------------------------------------------------- errors */

int rx__conn_seterr(rx_conn *c, int code, const char *fmt, ...) {
  c->err = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
  va_end(ap);
  return code;
}

int rx_conn_err(const rx_conn *c) { return c ? c->err : RX_EINVAL; }
const char *rx_conn_errstr(const rx_conn *c) { return c ? c->errstr : "no connection"; }

/* "host:port" or the socket path: where, for messages (never credentials). */
static const char *where(const rx_conn *c, char *buf, size_t len) {
  if (c->opts.scheme == RX_SCHEME_UNIX)
    rx__fmt(buf, len, "%s", c->opts.path);
  else if (strchr(c->opts.host, ':'))
    rx__fmt(buf, len, "[%s]:%d", c->opts.host, c->opts.port);
  else
    rx__fmt(buf, len, "%s:%d", c->opts.host, c->opts.port);
  return buf;
}

/* ---------------------------------------------------------------- framing
 *
 * A subscriber drains hundreds of thousands of small frames a second, and
 * hiredis 0.14 is slow at that in two ways: fed 64 KiB at a time, its reader
 * compacts its buffer (a memmove of everything left) after every 1 KiB
 * parsed, and every frame becomes a tree of four allocations. So a framed
 * conn keeps its own input buffer, finds where each frame ends (checking
 * headers only, skipping bulk bodies by their length), reads pub/sub
 * messages in place, and gives the reader only one whole other frame at a
 * time. Anything the scanner does not recognise switches the link to raw
 * mode, where hiredis gets every byte as before and has the last word on
 * what is valid; reconnecting returns to framing. */

/* A buffer that was replaced while events still pointed into it. */
struct rx__retired {
  struct rx__retired *next;
  char *data;
};

enum {
  IN_INITIAL = 64 * 1024, /* the first buffer, and the size of a read */
  IN_MIN_READ = 16 * 1024, /* room worth a recv(); less, make more first */
  IN_KEEP = 1024 * 1024,   /* a buffer larger than this is freed when empty */
  LINE_MAX_SCAN = 64 * 1024 /* a header line longer than this is unusual */
};

/* Frees the buffers kept for borrowed events: the caller is done with them. */
void rx__conn_unpin(rx_conn *c) {
  while (c->retired) {
    struct rx__retired *r = c->retired;
    c->retired = r->next;
    rx__free(r->data);
    rx__free(r);
  }
  c->pinned = 0;
}

/* Keeps c->in alive for its borrowers and leaves the conn without a buffer;
 * RX_ENOMEM when even the note cannot be allocated (c->in is kept then). */
static int in_retire(rx_conn *c) {
  struct rx__retired *r = rx__malloc(sizeof *r);
  if (!r) return RX_ENOMEM;
  r->data = c->in;
  r->next = c->retired;
  c->retired = r;
  c->in = NULL;
  c->in_cap = c->in_len = c->in_pos = 0;
  return RX_OK;
}

/* Forgets the buffered bytes of a link that is gone. */
static void in_reset(rx_conn *c) {
  if (c->pinned && c->in && in_retire(c) == RX_OK) {
    /* retired: the borrowed bytes stay where they are */
  } else if (c->pinned) {
    /* No memory for the note: keep the buffer but never write into the
     * borrowed part; the next read goes after it. */
    c->in_pos = c->in_len;
  } else {
    c->in_pos = c->in_len = 0;
    if (c->in_cap > IN_KEEP) {
      rx__free(c->in);
      c->in = NULL;
      c->in_cap = 0;
    }
  }
  c->scan_off = 0;
  c->scan_left = 0;
  c->raw = !c->framed;
}

/* Makes room for a read of at least IN_MIN_READ bytes after the unparsed
 * ones, moving them (a partial frame: usually a few bytes) to the front
 * when nothing borrows the buffer, or into a new buffer when something
 * does. 0 or RX_ENOMEM. */
static int in_room(rx_conn *c) {
  size_t live = c->in_len - c->in_pos;
  if (!c->pinned && c->in_pos && (live == 0 || c->in_cap - c->in_len < IN_MIN_READ)) {
    if (live) memmove(c->in, c->in + c->in_pos, live);
    c->in_pos = 0;
    c->in_len = live;
  }
  if (c->in && c->in_cap - c->in_len >= IN_MIN_READ) return RX_OK;
  size_t cap = c->in_cap ? c->in_cap : IN_INITIAL;
  while (cap - live < IN_MIN_READ) cap *= 2;
  if (cap < live * 2) cap = live * 2; /* a long frame: grow geometrically */
  if (c->pinned && c->in) {
    char *n = rx__malloc(cap);
    if (!n) return RX_ENOMEM;
    memcpy(n, c->in + c->in_pos, live);
    char *old = c->in;
    size_t old_len = c->in_len;
    if (in_retire(c) != RX_OK) {
      rx__free(n);
      c->in = old;
      c->in_len = old_len;
      return RX_ENOMEM;
    }
    c->in = n;
  } else {
    char *n = rx__realloc(c->in, cap);
    if (!n) return RX_ENOMEM;
    c->in = n;
  }
  c->in_cap = cap;
  c->in_pos = 0;
  c->in_len = live;
  return RX_OK;
}

/* Parses the decimal length of a "$" or "*" header: digits only, or "-1",
 * as hiredis's own string2ll accepts them.
 * 1 with *v, 0 when it is anything else. */
static int header_len(const char *p, const char *end, long long *v) {
  if (end - p == 2 && p[0] == '-' && p[1] == '1') {
    *v = -1;
    return 1;
  }
  /* No leading zeros: hiredis refuses them (so we let it say so). */
  if (p == end || end - p > 10 || (p[0] == '0' && end - p > 1)) return 0;
  long long n = 0;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') return 0;
    n = n * 10 + (*p - '0');
  }
  *v = n;
  return 1;
}

/* Where the front frame ends: 1 with *flen when it is complete, 0 when more
 * bytes are needed, -1 when it is not a frame this scanner knows (hiredis
 * decides then). Each header is read once: the position and the number of
 * elements still to come are kept between calls, so a long frame arriving
 * in many reads costs no rescans. A frame's elements are counted, not
 * nested, so no recursion and no depth limit here; hiredis applies its own. */
static int scan_frame(rx_conn *c, size_t *flen) {
  if (!c->in) return 0; /* nothing read on this link yet */
  const char *base = c->in + c->in_pos;
  size_t avail = c->in_len - c->in_pos;
  size_t off = c->scan_off;
  long long left = off ? c->scan_left : 1;
  while (left > 0) {
    if (off >= avail) break;
    const char *p = base + off;
    size_t room = avail - off;
    const char *nl = memchr(p, '\n', room < LINE_MAX_SCAN ? room : LINE_MAX_SCAN);
    if (!nl) {
      if (room >= LINE_MAX_SCAN) return -1;
      break;
    }
    if (nl - p < 2 || nl[-1] != '\r') return -1;
    const char *ls = p + 1, *le = nl - 1; /* the header's text */
    size_t next = (size_t)(nl + 1 - base);
    long long n;
    switch (p[0]) {
    case '+':
    case '-':
    case ':':
      left--;
      break;
    case '$':
      if (!header_len(ls, le, &n)) return -1;
      if (n >= 0) {
        if ((unsigned long long)n + 2 > avail - next) goto more;
        if (base[next + (size_t)n] != '\r' || base[next + (size_t)n + 1] != '\n') return -1;
        next += (size_t)n + 2;
      }
      left--;
      break;
    case '*':
      if (!header_len(ls, le, &n)) return -1;
      left += (n > 0 ? n : 0) - 1;
      break;
    default:
      return -1;
    }
    off = next;
  }
  if (left == 0) {
    *flen = off;
    c->scan_off = 0;
    c->scan_left = 0;
    return 1;
  }
more:
  c->scan_off = off;
  c->scan_left = left;
  return 0;
}

/* One whole bulk string at *p, before end: "$<len>\r\n<bytes>\r\n" with
 * the length written as scan_frame accepts it. 1 with its bytes (and *p
 * past it); 0 when it is incomplete or anything else. */
static int take_bulk(const char **p, const char *end, const char **s, size_t *n) {
  const char *q = *p;
  if (q == end || *q != '$') return 0;
  const char *d = ++q;
  size_t len = 0;
  while (q < end && *q >= '0' && *q <= '9' && q - d < 10) len = len * 10 + (size_t)(*q++ - '0');
  if (q == d || (*d == '0' && q - d > 1) || end - q < 2 || q[0] != '\r' || q[1] != '\n') return 0;
  q += 2;
  if ((size_t)(end - q) < len + 2 || q[len] != '\r' || q[len + 1] != '\n') return 0;
  *s = q;
  *n = len;
  *p = q + len + 2;
  return 1;
}

/* The common frames are read here in one pass, bounds checked as we go,
 * without scan_frame; anything else (a message cut by the end of a read, a
 * nil inside, another frame) is left to the general path, which handles
 * every frame correctly, messages included. */
int rx__conn_msg(rx_conn *c, rx_event *ev) {
  if (c->raw || c->fd < 0 || !c->in) return 0;
  const char *p = c->in + c->in_pos, *end = c->in + c->in_len;
  if (end - p < 4 || p[0] != '*' || (p[1] != '3' && p[1] != '4') || p[2] != '\r' || p[3] != '\n')
    return 0;
  int parts = p[1] - '0';
  const char *q = p + 4, *kind, *s[3];
  size_t klen, n[3];
  if (!take_bulk(&q, end, &kind, &klen)) return 0;
  int k;
  if (parts == 3 && klen == 7 && !memcmp(kind, "message", 7))
    k = RX_EV_MESSAGE;
  else if (parts == 3 && klen == 8 && !memcmp(kind, "smessage", 8))
    k = RX_EV_SMESSAGE;
  else if (parts == 4 && klen == 8 && !memcmp(kind, "pmessage", 8))
    k = RX_EV_PMESSAGE;
  else
    return 0;
  for (int i = 0; i < parts - 1; i++)
    if (!take_bulk(&q, end, &s[i], &n[i])) return 0;
  if (!ev) return 1;
  /* Ours now: end each string with a NUL over its "\r", as replies are. */
  for (int i = 0; i < parts - 1; i++) ((char *)s[i])[n[i]] = '\0';
  memset(ev, 0, sizeof *ev);
  ev->kind = k;
  int i = 0;
  if (k == RX_EV_PMESSAGE) {
    ev->pattern = s[0];
    ev->pattern_len = n[0];
    i = 1;
  }
  ev->channel = s[i];
  ev->channel_len = n[i];
  ev->data = s[i + 1];
  ev->data_len = n[i + 1];
  c->in_pos = (size_t)(q - c->in);
  c->scan_off = 0; /* a partial scan was of this frame: it is gone */
  c->scan_left = 0;
  c->pinned = 1;
  return 1;
}

/* ---------------------------------------------------------------- life */

int rx__conn_init(rx_conn *c, const rx_opts *o) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->wake_rd = c->wake_wr = -1;
  if (rx__opts_copy(&c->opts, o) != RX_OK) return RX_ENOMEM;
  if (rx__wake_pipe(&c->wake_rd, &c->wake_wr) != RX_OK) {
    rx__opts_free(&c->opts);
    return RX_ESYS;
  }
  return RX_OK;
}

void rx_conn_close(rx_conn *c) {
  if (!c) return;
  if (c->ssl) {
    /* No SSL_shutdown: it may block or raise SIGPIPE on a dead link, and the
     * server needs no close_notify to drop a Redis connection. */
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->ssl_ctx) {
    SSL_CTX_free(c->ssl_ctx);
    c->ssl_ctx = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  if (c->reader) {
    rx__reader_free(c->reader);
    c->reader = NULL;
  }
  in_reset(c);
  c->out.len = 0;
  c->pending = 0;
  c->skip = 0;
}

void rx__conn_deinit(rx_conn *c) {
  rx_conn_close(c);
  rx__conn_unpin(c);
  rx__free(c->in);
  c->in = NULL;
  c->in_cap = 0;
  rx__buf_free(&c->out);
  if (c->wake_rd >= 0) close(c->wake_rd);
  if (c->wake_wr >= 0) close(c->wake_wr);
  c->wake_rd = c->wake_wr = -1;
  rx__opts_free(&c->opts);
}

rx_conn *rx_conn_new(const char *url, char *errstr, size_t errstr_len) {
  rx_opts o;
  if (errstr && errstr_len) errstr[0] = '\0';
  if (rx__opts_parse(&o, url, errstr, errstr_len) != RX_OK) return NULL;
  rx_conn *c = rx__malloc(sizeof *c);
  if (!c || rx__conn_init(c, &o) != RX_OK) {
    rx__free(c);
    rx__opts_free(&o);
    rx__fmt(errstr, errstr_len, "out of memory or no file descriptors");
    return NULL;
  }
  rx__opts_free(&o);
  return c;
}

void rx_conn_free(rx_conn *c) {
  if (!c) return;
  rx__conn_deinit(c);
  rx__free(c);
}

int rx_conn_set(rx_conn *c, const char *name, const char *value) {
  if (!c) return RX_EINVAL;
  char err[200];
  int rc = rx__opts_set(&c->opts, name, value, err, sizeof err);
  if (rc) return rx__conn_seterr(c, rc, "%s", err);
  return RX_OK;
}

int rx_conn_is_connected(const rx_conn *c) { return c && c->fd >= 0; }

const char *rx_conn_describe(const rx_conn *c, char *buf, size_t len) {
  if (!buf || !len) return buf;
  if (!c) {
    rx__fmt(buf, len, "(none)");
    return buf;
  }
  rx__opts_describe(&c->opts, buf, len);
  return buf;
}

void rx_conn_wakeup(rx_conn *c) {
  if (!c || c->wake_wr < 0) return;
  char b = 1;
  /* A full pipe already holds a wakeup: nothing is lost. */
  ssize_t n = write(c->wake_wr, &b, 1);
  (void)n;
}

/* ---------------------------------------------------------------- poll */

enum { WAIT_READ = POLLIN, WAIT_WRITE = POLLOUT };

/* Waits for fd to be ready for `what`, for the wakeup pipe, or the deadline.
 * 0 ready, RX_TIMEOUT, RX_WOKEN, RX_EINTR, RX_ESYS. */
static int wait_fd(rx_conn *c, short what, long long deadline) {
  struct pollfd p[2];
  p[0].fd = c->fd;
  p[0].events = what;
  p[0].revents = 0;
  p[1].fd = c->wake_rd;
  p[1].events = POLLIN;
  p[1].revents = 0;
  int n = poll(p, 2, rx__remaining(deadline));
  if (n < 0) {
    if (errno == EINTR) return RX_EINTR;
    return rx__conn_seterr(c, RX_ESYS, "poll failed: %s", strerror(errno));
  }
  if (n == 0) return RX_TIMEOUT;
  if (p[1].revents & POLLIN) {
    rx__wake_drain(c->wake_rd);
    return RX_WOKEN;
  }
  return RX_OK; /* ready, or POLLERR/POLLHUP: the I/O call will say which */
}

/* ---------------------------------------------------------------- TLS BIO */

/* OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
 * peer has gone. A library must not kill its host process nor change its
 * signal handlers, so TLS goes through this BIO, which uses send() with
 * MSG_NOSIGNAL. */
static BIO_METHOD *rx__bio_method;

static int bio_write(BIO *b, const char *buf, int len) {
  int fd = (int)(intptr_t)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write(b);
  return (int)n;
}

static int bio_read(BIO *b, char *buf, int len) {
  int fd = (int)(intptr_t)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n = recv(fd, buf, (size_t)len, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_read(b);
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method(void) {
  /* Created once; OpenSSL 1.1+ initialises itself thread-safely, and a race
   * here at worst leaks one method table. */
  if (!rx__bio_method) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "reactis socket");
    if (!m) return NULL;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    rx__bio_method = m;
  }
  return rx__bio_method;
}

static const char *ssl_errtext(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (!e) {
    rx__fmt(buf, len, "%s", errno ? strerror(errno) : "connection closed");
  } else {
    ERR_error_string_n(e, buf, len);
  }
  ERR_clear_error();
  return buf;
}

static int is_ip_literal(const char *h) {
  unsigned char tmp[16];
  return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

static int tls_start(rx_conn *c, long long deadline) {
  char w[300], e[256];
  const rx_opts *o = &c->opts;
  ERR_clear_error();
  c->ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (!c->ssl_ctx) return rx__conn_seterr(c, RX_ETLS, "TLS setup failed: %s", ssl_errtext(e, sizeof e));
  SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
  if (o->tls_verify) {
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok = o->tls_ca_file ? SSL_CTX_load_verify_locations(c->ssl_ctx, o->tls_ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(c->ssl_ctx);
    if (!ok)
      return rx__conn_seterr(c, RX_ETLS, "cannot load the CA certificates %s: %s",
                             o->tls_ca_file ? o->tls_ca_file : "(system default)",
                             ssl_errtext(e, sizeof e));
  } else {
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
  }
  if (o->tls_cert_file) {
    if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, o->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(c->ssl_ctx,
                                    o->tls_key_file ? o->tls_key_file : o->tls_cert_file,
                                    SSL_FILETYPE_PEM) != 1)
      return rx__conn_seterr(c, RX_ETLS, "cannot load the client certificate %s: %s",
                             o->tls_cert_file, ssl_errtext(e, sizeof e));
  }
  c->ssl = SSL_new(c->ssl_ctx);
  BIO_METHOD *m = bio_method();
  BIO *bio = m ? BIO_new(m) : NULL;
  if (!c->ssl || !bio) {
    BIO_free(bio);
    return rx__conn_seterr(c, RX_ENOMEM, "TLS setup failed: out of memory");
  }
  BIO_set_data(bio, (void *)(intptr_t)c->fd);
  SSL_set_bio(c->ssl, bio, bio);
  const char *name = o->tls_server_name ? o->tls_server_name : o->host;
  if (!is_ip_literal(name)) SSL_set_tlsext_host_name(c->ssl, name);
  if (o->tls_verify && o->tls_check_hostname) {
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                                 : X509_VERIFY_PARAM_set1_host(param, name, 0);
    if (!ok) return rx__conn_seterr(c, RX_ETLS, "TLS setup failed: bad server name");
  }
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(c->ssl);
    if (r == 1) return RX_OK;
    int se = SSL_get_error(c->ssl, r);
    int rc;
    if (se == SSL_ERROR_WANT_READ)
      rc = wait_fd(c, WAIT_READ, deadline);
    else if (se == SSL_ERROR_WANT_WRITE)
      rc = wait_fd(c, WAIT_WRITE, deadline);
    else {
      long vr = SSL_get_verify_result(c->ssl);
      if (vr != X509_V_OK)
        return rx__conn_seterr(c, RX_ETLSVERIFY,
                               "TLS: the certificate of %s was not accepted: %s%s",
                               where(c, w, sizeof w), X509_verify_cert_error_string(vr),
                               vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH
                                   ? " (the certificate is for another host name)"
                                   : " (for self-signed certificates such as Heroku's, "
                                     "use ?ssl_cert_reqs=none or give ssl_ca_certs)");
      ssl_errtext(e, sizeof e);
      return rx__conn_seterr(c, RX_ETLS,
                             "TLS handshake with %s failed: %s (is the server using TLS on this port?)",
                             where(c, w, sizeof w), e);
    }
    if (rc == RX_TIMEOUT)
      return rx__conn_seterr(c, RX_ETIMEDOUT, "TLS handshake with %s timed out (is the server using TLS on this port?)",
                             where(c, w, sizeof w));
    if (rc != RX_OK) return rc;
  }
}

/* ---------------------------------------------------------------- connect */

static void set_keepalive(int fd, int idle) {
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
#ifdef TCP_KEEPIDLE
  int intvl = idle / 3 > 0 ? idle / 3 : 1, cnt = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#endif
}

/* Non-blocking connect of one address, waiting until the deadline. */
static int connect_addr(rx_conn *c, int family, const struct sockaddr *sa, socklen_t salen,
                        long long deadline, int *sys_errno) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *sys_errno = errno;
    return RX_ECONNECT;
  }
  c->fd = fd;
  if (connect(fd, sa, salen) == 0) return RX_OK;
  if (errno != EINPROGRESS) {
    *sys_errno = errno;
    goto fail;
  }
  int rc = wait_fd(c, WAIT_WRITE, deadline);
  if (rc == RX_TIMEOUT) {
    *sys_errno = ETIMEDOUT;
    close(fd);
    c->fd = -1;
    return RX_ETIMEDOUT;
  }
  if (rc != RX_OK) {
    close(fd);
    c->fd = -1;
    return rc;
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
  if (soerr == 0) return RX_OK;
  *sys_errno = soerr;
fail:
  close(fd);
  c->fd = -1;
  return RX_ECONNECT;
}

static int open_socket(rx_conn *c, long long deadline) {
  char w[300];
  int sys_errno = 0, rc;
  const rx_opts *o = &c->opts;
  if (o->scheme == RX_SCHEME_UNIX) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(o->path) >= sizeof sun.sun_path)
      return rx__conn_seterr(c, RX_EURL, "unix socket path too long (%zu bytes, at most %zu)",
                             strlen(o->path), sizeof sun.sun_path - 1);
    strcpy(sun.sun_path, o->path);
    rc = connect_addr(c, AF_UNIX, (struct sockaddr *)&sun, sizeof sun, deadline, &sys_errno);
  } else {
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &res);
    if (gai != 0 && gai != EAI_AGAIN && gai != EAI_SYSTEM) {
      hints.ai_flags = 0; /* "localhost" with no IPv6 configured, and such */
      gai = getaddrinfo(o->host, port, &hints, &res);
    }
    if (gai != 0)
      return rx__conn_seterr(c, RX_ERESOLVE, "cannot resolve host \"%s\": %s", o->host,
                             gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    rc = RX_ECONNECT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      rc = connect_addr(c, ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, &sys_errno);
      if (rc == RX_OK || rc == RX_WOKEN || rc == RX_EINTR || rc == RX_ETIMEDOUT) break;
    }
    freeaddrinfo(res);
  }
  if (rc == RX_ETIMEDOUT)
    return rx__conn_seterr(c, RX_ETIMEDOUT, "connecting to %s timed out", where(c, w, sizeof w));
  if (rc == RX_ECONNECT)
    return rx__conn_seterr(c, RX_ECONNECT, "could not connect to %s: %s", where(c, w, sizeof w),
                           strerror(sys_errno));
  if (rc != RX_OK) return rc;
  if (o->scheme != RX_SCHEME_UNIX) {
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->keepalive_s > 0) set_keepalive(c->fd, o->keepalive_s);
  }
  return RX_OK;
}

/* AUTH, SELECT and CLIENT SETNAME, pipelined in one round trip. */
static int handshake(rx_conn *c, long long deadline) {
  const rx_opts *o = &c->opts;
  char w[300], dbs[16];
  int n = 0, rc = RX_OK;
  if (o->password) {
    const char *argv[3] = {"AUTH", o->username ? o->username : o->password, o->password};
    rc = rx__format_command(&c->out, o->username ? 3 : 2, argv, NULL);
    n++;
  }
  if (rc == RX_OK && o->db) {
    snprintf(dbs, sizeof dbs, "%d", o->db);
    const char *argv[2] = {"SELECT", dbs};
    rc = rx__format_command(&c->out, 2, argv, NULL);
    n++;
  }
  if (rc == RX_OK && o->client_name) {
    const char *argv[3] = {"CLIENT", "SETNAME", o->client_name};
    rc = rx__format_command(&c->out, 3, argv, NULL);
    n++;
  }
  if (rc != RX_OK) return rx__conn_seterr(c, rc, "out of memory");
  if (!n) return RX_OK;
  rc = rx__conn_flush(c, deadline);
  int first_err = RX_OK;
  for (int i = 0; i < n && rc == RX_OK; i++) {
    rx_reply *r = NULL;
    rc = rx__conn_read(c, &r, deadline);
    if (rc != RX_OK) break;
    if (r->type == RX_REPLY_ERROR && first_err == RX_OK) {
      int step = i; /* which command failed: AUTH, SELECT, SETNAME in order */
      if (!o->password) step++;
      if (step == 0) {
        first_err = rx__conn_seterr(c, RX_EAUTH, "authentication to %s as %s failed: %.*s",
                                    where(c, w, sizeof w), o->username ? o->username : "default",
                                    (int)(r->len > 150 ? 150 : r->len), r->str);
      } else {
        int code = rx__reply_error_code(r);
        first_err = rx__conn_seterr(c, code == RX_EREPLY && step == 1 ? RX_EURL : code,
                                    "%s on %s failed: %.*s",
                                    step == 1 && o->db ? "SELECT" : "CLIENT SETNAME",
                                    where(c, w, sizeof w), (int)(r->len > 150 ? 150 : r->len),
                                    r->str);
      }
    }
    rx_reply_free(r);
  }
  if (rc == RX_TIMEOUT)
    return rx__conn_seterr(c, RX_ETIMEDOUT, "%s did not answer the connection handshake in time",
                           where(c, w, sizeof w));
  return rc != RX_OK ? rc : first_err;
}

int rx__conn_open(rx_conn *c) {
  rx_conn_close(c);
  c->err = RX_OK;
  c->errstr[0] = '\0';
  long long deadline = rx__deadline(c->opts.connect_timeout_ms > 0 ? c->opts.connect_timeout_ms : -1);
  int rc = open_socket(c, deadline);
  if (rc == RX_OK && c->opts.scheme == RX_SCHEME_TLS) rc = tls_start(c, deadline);
  if (rc == RX_OK) {
    c->raw = !c->framed;
    c->reader = rx__reader_new();
    if (!c->reader) rc = rx__conn_seterr(c, RX_ENOMEM, "out of memory");
  }
  if (rc == RX_OK) rc = handshake(c, deadline);
  if (rc != RX_OK) {
    rx_conn_close(c);
    return rc;
  }
  c->last_io_ms = rx_monotonic_ms();
  c->last_io_wall = rx_now_ms();
  return RX_OK;
}

int rx_conn_connect(rx_conn *c) {
  if (!c) return RX_EINVAL;
  return rx__conn_open(c);
}

/* ---------------------------------------------------------------- I/O */

static int io_failed(rx_conn *c, const char *what, int sys_errno) {
  char w[300];
  rx__conn_seterr(c, RX_EIO, "connection to %s lost while %s: %s", where(c, w, sizeof w), what,
                  sys_errno ? strerror(sys_errno) : "closed by the server");
  rx_conn_close(c);
  return RX_EIO;
}

int rx__conn_flush(rx_conn *c, long long deadline) {
  if (c->fd < 0) return rx__conn_seterr(c, RX_ESTATE, "not connected");
  size_t off = 0;
  int rc = RX_OK;
  while (off < c->out.len) {
    ssize_t n;
    if (c->ssl) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_write(c->ssl, c->out.data + off, (int)(c->out.len - off > 1 << 30 ? 1 << 30 : c->out.len - off));
      if (r > 0) {
        n = r;
      } else {
        int se = SSL_get_error(c->ssl, r);
        if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ) {
          rc = wait_fd(c, se == SSL_ERROR_WANT_WRITE ? WAIT_WRITE : WAIT_READ, deadline);
          if (rc != RX_OK) break;
          continue;
        }
        char e[200];
        int sv = errno;
        ssl_errtext(e, sizeof e);
        rx__buf_consume(&c->out, off);
        return io_failed(c, "writing", sv ? sv : EPIPE);
      }
    } else {
      n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          rc = wait_fd(c, WAIT_WRITE, deadline);
          if (rc != RX_OK) break;
          continue;
        }
        if (errno == EINTR) {
          rc = RX_EINTR;
          break;
        }
        int sv = errno;
        return io_failed(c, "writing", sv);
      }
    }
    off += (size_t)n;
  }
  rx__buf_consume(&c->out, off);
  return rc;
}

static int proto_error(rx_conn *c) {
  char w[300];
  rx__conn_seterr(c, RX_EPROTO, "protocol error from %s: %s (is it a Redis server?)",
                  where(c, w, sizeof w), c->reader->errstr);
  rx_conn_close(c);
  return RX_EPROTO;
}

static int out_of_memory(rx_conn *c) {
  rx__conn_seterr(c, RX_ENOMEM, "out of memory");
  rx_conn_close(c);
  return RX_ENOMEM;
}

/* Hands n buffered bytes to the reader. */
static int feed_reader(rx_conn *c, size_t n) {
  if (n && redisReaderFeed(c->reader, c->in + c->in_pos, n) != REDIS_OK) return out_of_memory(c);
  c->in_pos += n;
  return RX_OK;
}

int rx__conn_buffered(rx_conn *c, rx_reply **r) {
  void *obj = NULL;
  int fed_frame = 0;
  *r = NULL;
  if (!c->reader) return RX_TIMEOUT;
  for (;;) {
    if (redisReaderGetReply(c->reader, &obj) != REDIS_OK) return proto_error(c);
    if (obj) {
      fed_frame = 0;
      if (c->skip > 0) {
        /* The reply of a command whose caller stopped waiting. */
        c->skip--;
        rx_reply_free(obj);
        obj = NULL;
        continue;
      }
      *r = obj;
      return RX_OK;
    }
    if (c->raw) return RX_TIMEOUT;
    size_t flen = 0;
    int k = fed_frame ? -1 : scan_frame(c, &flen);
    if (k == 0) return RX_TIMEOUT;
    if (k < 0) {
      /* Not a frame we know, or hiredis wants more of one we thought
       * complete: from here on hiredis reads this link's bytes alone. */
      c->raw = 1;
      flen = c->in_len - c->in_pos;
    }
    int rc = feed_reader(c, flen);
    if (rc != RX_OK) return rc;
    fed_frame = k > 0;
  }
}

/* Reads what the socket has into the reader (raw) or the input buffer
 * (framed); 0, or a wait/I/O status. */
static int fill(rx_conn *c, long long deadline) {
  char stack[64 * 1024];
  for (;;) {
    char *buf = stack;
    size_t want = sizeof stack;
    if (!c->raw) {
      if (in_room(c) != RX_OK) return out_of_memory(c);
      buf = c->in + c->in_len;
      want = c->in_cap - c->in_len;
      if (want > 1 << 30) want = 1 << 30;
    }
    ssize_t n;
    if (c->ssl) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_read(c->ssl, buf, (int)want);
      if (r > 0) {
        n = r;
      } else {
        int se = SSL_get_error(c->ssl, r);
        if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
          int rc = wait_fd(c, se == SSL_ERROR_WANT_READ ? WAIT_READ : WAIT_WRITE, deadline);
          if (rc != RX_OK) return rc;
          continue;
        }
        int sv = errno;
        if (se == SSL_ERROR_ZERO_RETURN) sv = 0;
        ERR_clear_error();
        return io_failed(c, "reading", sv);
      }
    } else {
      n = recv(c->fd, buf, want, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          int rc = wait_fd(c, WAIT_READ, deadline);
          if (rc != RX_OK) return rc;
          continue;
        }
        if (errno == EINTR) return RX_EINTR;
        return io_failed(c, "reading", errno);
      }
      if (n == 0) return io_failed(c, "reading", 0);
    }
    if (c->raw) {
      if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) return out_of_memory(c);
    } else {
      c->in_len += (size_t)n;
    }
    /* The clocks are read once per read, not per frame: a read holds up to
     * a thousand small messages. */
    c->last_io_ms = rx_monotonic_ms();
    if (c->framed) c->last_io_wall = rx_now_ms();
    return RX_OK;
  }
}

int rx__conn_wait_frame(rx_conn *c, long long deadline) {
  if (c->fd < 0) return rx__conn_seterr(c, RX_ESTATE, "not connected");
  for (;;) {
    size_t flen;
    if (c->raw || scan_frame(c, &flen) != 0) return RX_OK;
    int rc = fill(c, deadline);
    if (rc != RX_OK) return rc;
  }
}

int rx__conn_read(rx_conn *c, rx_reply **r, long long deadline) {
  *r = NULL;
  if (c->fd < 0) return rx__conn_seterr(c, RX_ESTATE, "not connected");
  for (;;) {
    int rc = rx__conn_buffered(c, r);
    if (rc != RX_TIMEOUT) return rc;
    rc = fill(c, deadline);
    if (rc != RX_OK) return rc;
  }
}

/* ---------------------------------------------------------------- commands */

static int ensure_connected(rx_conn *c) {
  if (c->fd >= 0) return RX_OK;
  return rx__conn_open(c);
}

int rx_conn_append(rx_conn *c, int argc, const char *const *argv, const size_t *argvlen) {
  if (!c || argc <= 0 || !argv) return c ? rx__conn_seterr(c, RX_EINVAL, "no command") : RX_EINVAL;
  int rc = ensure_connected(c);
  if (rc != RX_OK) return rc;
  rc = rx__format_command(&c->out, argc, argv, argvlen);
  if (rc != RX_OK) return rx__conn_seterr(c, rc, rc == RX_ENOMEM ? "out of memory" : "invalid command arguments");
  c->pending++;
  return RX_OK;
}

int rx_conn_get_reply(rx_conn *c, rx_reply **reply) {
  return rx__conn_get_reply_timeout(c, reply, c ? c->opts.timeout_ms : 0);
}

int rx__conn_get_reply_timeout(rx_conn *c, rx_reply **reply, int timeout_ms) {
  if (reply) *reply = NULL;
  if (!c || !reply) return RX_EINVAL;
  if (c->pending <= 0) return rx__conn_seterr(c, RX_ESTATE, "no reply is pending");
  if (c->fd < 0) return rx__conn_seterr(c, RX_EIO, "the connection was lost before the reply");
  long long deadline = rx__deadline(timeout_ms > 0 ? timeout_ms : -1);
  int rc = c->out.len ? rx__conn_flush(c, deadline) : RX_OK;
  if (rc == RX_OK) rc = rx__conn_read(c, reply, deadline);
  if (rc == RX_OK) {
    c->pending--;
    return RX_OK;
  }
  if (rc == RX_TIMEOUT) {
    char w[300];
    rx__conn_seterr(c, RX_ETIMEDOUT, "%s did not reply within %d ms", where(c, w, sizeof w),
                    timeout_ms);
    /* The reply may still come: the link's state is unknown, so drop it. */
    rx_conn_close(c);
    return RX_ETIMEDOUT;
  }
  if (rc == RX_WOKEN || rc == RX_EINTR) {
    /* The caller gives up on this reply. It may never come (BLPOP key 0),
     * so waiting for it before the next command could hang that command:
     * drop the link instead; the next command reconnects. */
    rx_conn_close(c);
    return rc;
  }
  return rc;
}


int rx__conn_command_timeout(rx_conn *c, rx_reply **reply, int argc, const char *const *argv,
                             const size_t *argvlen, int timeout_ms) {
  if (reply) *reply = NULL;
  if (!c || !reply) return RX_EINVAL;
  if (c->pending > 0) return rx__conn_seterr(c, RX_ESTATE, "pipelined replies are pending: read them first");
  int rc = rx_conn_append(c, argc, argv, argvlen);
  if (rc != RX_OK) return rc;
  return rx__conn_get_reply_timeout(c, reply, timeout_ms);
}

int rx_conn_command(rx_conn *c, rx_reply **reply, int argc, const char *const *argv,
                    const size_t *argvlen) {
  return rx__conn_command_timeout(c, reply, argc, argv, argvlen, c ? c->opts.timeout_ms : 0);
}

int rx_conn_call(rx_conn *c, rx_reply **reply, int argc, const char *const *argv,
                 const size_t *argvlen) {
  rx_reply *r = NULL;
  if (reply) *reply = NULL;
  int rc = rx_conn_command(c, &r, argc, argv, argvlen);
  if (rc != RX_OK) return rc;
  if (r->type == RX_REPLY_ERROR) {
    rc = rx__reply_error_code(r);
    rx__conn_seterr(c, rc, "%.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
    rx_reply_free(r);
    return rc;
  }
  if (reply)
    *reply = r;
  else
    rx_reply_free(r);
  return RX_OK;
}

int rx_conn_publish(rx_conn *c, const char *channel, size_t channel_len, const char *message,
                    size_t message_len, long long *receivers) {
  if (!c || (!channel && channel_len) || (!message && message_len)) return RX_EINVAL;
  const char *argv[3] = {"PUBLISH", channel ? channel : "", message ? message : ""};
  size_t lens[3] = {7, channel_len, message_len};
  rx_reply *r = NULL;
  int rc = rx_conn_call(c, &r, 3, argv, lens);
  if (rc != RX_OK) return rc;
  if (receivers) *receivers = r->type == RX_REPLY_INTEGER ? r->integer : 0;
  rx_reply_free(r);
  return RX_OK;
}
