/* The bad-input catalog (docs/bad-input.md), one test per row: every CHECK
 * carries the row number it belongs to ("row N"), and the Python suite
 * (tests/python/test_bad_input.py) uses the same numbers.
 *
 * Each bad input must get a clear typed status (or be accepted, where the
 * row says what IS accepted), never a crash, a leak (this file also runs
 * under valgrind) or a password in a message. The servers: one plain
 * redis-server with a password, an ACL user and CONFIG renamed away; one
 * TLS server; and tiny fake servers (a thread each, one connection) that
 * send what no Redis sends: half a reply, HTTP, hostile lengths, silence. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reactis/reactis.h"
#include "server.h"
#include "test.h"

#define PW "s3cr3t-pw"

static rxt_server srv, tls;
static char base[200]; /* redis://:PW@127.0.0.1:PORT */

/* No message may contain the password. */
#define NO_PW(msg) CHECKF(strstr((msg), "s3cr3t") == NULL, "password in \"%s\"", (msg))

static void note(int row, int rc, const char *msg) {
  fprintf(stderr, "  row %d: %s: %s\n", row, rx_errname(rc), msg ? msg : "");
}

/* A connection for url that must parse; NULL after printing why. */
static rx_conn *conn(const char *url) {
  char err[300];
  rx_conn *c = rx_conn_new(url, err, sizeof err);
  if (!c) fprintf(stderr, "  rx_conn_new(%s): %s\n", url, err);
  return c;
}

static int ping(rx_conn *c) {
  const char *a[1] = {"PING"};
  return rx_conn_call(c, NULL, 1, a, NULL);
}

static int raw_ok(const char *a0, const char *a1, const char *a2, const char *a3) {
  const char *argv[4] = {a0, a1, a2, a3};
  int argc = a3 ? 4 : a2 ? 3 : a1 ? 2 : 1;
  char *r = rxt_cmd_ex(&srv, NULL, PW, argc, argv, NULL, NULL);
  int ok = r && (r[0] == '+' || r[0] == ':');
  free(r);
  return ok;
}

/* ------------------------------------------------------------ fake servers */

/* A loopback listener served by a thread: for each connection (at most 4,
 * one at a time) it waits for the first bytes of the request (up to 2 s),
 * sends `reply`, then holds the connection open for hold_ms and closes it.
 * Everything is bounded. */
typedef struct {
  int lfd, port;
  const char *reply;
  size_t reply_len;
  int hold_ms;
  pthread_t th;
} fake;

static void serve(fake *f, int c);

/* Serves up to 4 connections, one after the other (a client that gives up
 * on a broken link may come back once), for at most 5 s of waiting. */
static void *fake_main(void *arg) {
  fake *f = arg;
  for (int i = 0; i < 4; i++) {
    struct pollfd p = {f->lfd, POLLIN, 0};
    if (poll(&p, 1, i ? 100 : 5000) != 1) break;
    int c = accept(f->lfd, NULL, NULL);
    if (c < 0) break;
    serve(f, c);
  }
  return NULL;
}

static void serve(fake *f, int c) {
  char buf[4096];
  struct pollfd q = {c, POLLIN, 0};
  if (poll(&q, 1, 2000) == 1) {
    ssize_t n = recv(c, buf, sizeof buf, 0);
    (void)n;
  }
  if (f->reply_len) {
    ssize_t n = send(c, f->reply, f->reply_len, MSG_NOSIGNAL);
    (void)n;
  }
  /* Hold: read (and drop) whatever comes, until hold_ms passed or EOF. */
  long long until = rxt_ms() + f->hold_ms;
  while (rxt_ms() < until) {
    if (poll(&q, 1, 50) == 1 && recv(c, buf, sizeof buf, 0) <= 0) break;
  }
  close(c);
}

static int fake_start(fake *f, const char *reply, size_t len, int hold_ms) {
  memset(f, 0, sizeof *f);
  f->reply = reply;
  f->reply_len = len;
  f->hold_ms = hold_ms;
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(f->lfd, (struct sockaddr *)&a, &al) != 0 || listen(f->lfd, 4) != 0)
    return -1;
  f->port = ntohs(a.sin_port);
  return pthread_create(&f->th, NULL, fake_main, f) == 0 ? 0 : -1;
}

static void fake_stop(fake *f) {
  pthread_join(f->th, NULL);
  close(f->lfd);
}

/* One command against a fake server; returns the status, *msg the message. */
static int fake_call(const char *reply, size_t len, int hold_ms, const char *opts, char *msg,
                     size_t msglen) {
  fake f;
  if (fake_start(&f, reply, len, hold_ms) != 0) return -1000;
  char url[200];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d%s", f.port, opts ? opts : "");
  rx_conn *c = conn(url);
  int rc = c ? ping(c) : -1001;
  snprintf(msg, msglen, "%s", c ? rx_conn_errstr(c) : "");
  rx_conn_free(c);
  fake_stop(&f);
  return rc;
}

/* ------------------------------------------------------------ URLs, options */

/* Rows 1-9: URLs that must be refused by rx_conn_new, with a message. */
static void test_urls(void) {
  static const struct {
    int row;
    const char *url, *gist;
  } bad[] = {
      {1, "", "empty"},
      {2, "http://127.0.0.1:6379", "scheme"},
      {3, "redis://:" PW "@127.0.0.1:99999", "bad port"},
      {4, "redis://[::1:6379", "IPv6"},
      {5, "redis://:s3cr3t%zz@127.0.0.1:6379", "%-escape"},
      {6, "redis://127.0.0.1:6379?tiemout=5", "unknown option \"tiemout\""},
      {7, "redis://:" PW "@127.0.0.1:6379?timeout=1e10", "invalid value \"1e10\" for option timeout"},
      {7, "redis://127.0.0.1:6379?ssl_cert_reqs=maybe", "invalid value"},
      {8, "redis://127.0.0.1:6379?client_name=a%0D%0APING", "invalid value"},
      {8, "redis://127.0.0.1:6379?client_name=a%20b", "invalid value"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[300] = "unset";
    rx_conn *c = rx_conn_new(bad[i].url, err, sizeof err);
    note(bad[i].row, c ? 0 : RX_EURL, err);
    CHECKF(c == NULL, "row %d: %s accepted", bad[i].row, bad[i].url); /* rows 1-8 */
    CHECKF(strstr(err, bad[i].gist) != NULL, "row %d: \"%s\"", bad[i].row, err); /* rows 1-8 */
    NO_PW(err); /* rows 3, 5, 7 */
    /* The same URL through the other constructors. */
    rx_sub *s = rx_sub_new(bad[i].url, err, sizeof err);
    CHECK(s == NULL); /* rows 1-8 */
    rx_queue *q = rx_queue_new(bad[i].url, "q", err, sizeof err);
    CHECK(q == NULL); /* rows 1-8 */
    NO_PW(err);       /* rows 3, 5, 7 */
  }
  /* rx_conn_set refuses the same way (rows 6, 7). */
  rx_conn *c = conn(base);
  CHECK(c);
  CHECK_EQ_INT(rx_conn_set(c, "tiemout", "5"), RX_EURL); /* row 6 */
  CHECK_EQ_INT(rx_conn_set(c, "timeout", "-1"), RX_EURL); /* row 7 */
  CHECK(strstr(rx_conn_errstr(c), "invalid value") != NULL); /* row 7 */
  rx_conn_free(c);
}

/* Row 9: a 5000-byte host name parses (the URL grammar allows it) and fails
 * to resolve at once, without a DNS query (too long for one). */
static void test_long_host(void) {
  char *url = malloc(6000);
  CHECK(url);
  memcpy(url, "redis://:" PW "@", 19);
  memset(url + 19, 'h', 5000);
  strcpy(url + 5019, ":6379");
  rx_conn *c = conn(url);
  free(url);
  CHECK(c); /* row 9 */
  long long t0 = rxt_ms();
  int rc = rx_conn_connect(c);
  note(9, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ERESOLVE);                             /* row 9 */
  CHECK(rxt_ms() - t0 < 2000);                               /* row 9 */
  CHECK(strstr(rx_conn_errstr(c), "cannot resolve") != NULL); /* row 9 */
  NO_PW(rx_conn_errstr(c));                                  /* row 9 */
  rx_conn_free(c);
}

/* Row 10: a database the server does not have. */
static void test_bad_db(void) {
  char url[300];
  snprintf(url, sizeof url, "%s/99", base);
  rx_conn *c = conn(url);
  CHECK(c);
  int rc = rx_conn_connect(c);
  note(10, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_EURL);                                       /* row 10 */
  CHECK(strstr(rx_conn_errstr(c), "SELECT") != NULL);              /* row 10 */
  CHECK(strstr(rx_conn_errstr(c), "DB index is out of range") != NULL); /* row 10 */
  NO_PW(rx_conn_errstr(c));                                        /* row 10 */
  rx_conn_free(c);
}

/* ------------------------------------------------------------ auth, TLS */

static void test_auth(void) {
  char url[300];
  /* Row 11: wrong password. */
  snprintf(url, sizeof url, "redis://:s3cr3t-wrong@127.0.0.1:%d", srv.port);
  rx_conn *c = conn(url);
  CHECK(c);
  int rc = rx_conn_connect(c);
  note(11, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_EAUTH);                                /* row 11 */
  CHECK(strstr(rx_conn_errstr(c), "authentication") != NULL); /* row 11 */
  NO_PW(rx_conn_errstr(c));                                  /* row 11 */
  char d[300];
  NO_PW(rx_conn_describe(c, d, sizeof d)); /* row 11 */
  rx_conn_free(c);
  /* Row 12: an ACL user the server does not know. */
  snprintf(url, sizeof url, "redis://nobody:" PW "@127.0.0.1:%d", srv.port);
  c = conn(url);
  CHECK(c);
  rc = rx_conn_connect(c);
  note(12, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_EAUTH);                         /* row 12 */
  CHECK(strstr(rx_conn_errstr(c), "nobody") != NULL); /* row 12: names the user */
  NO_PW(rx_conn_errstr(c));                           /* row 12 */
  rx_conn_free(c);
  /* The known ACL user works (what IS accepted). */
  snprintf(url, sizeof url, "redis://alice:alice-" PW "@127.0.0.1:%d", srv.port);
  c = conn(url);
  CHECK(c);
  CHECK_EQ_INT(ping(c), RX_OK); /* row 12 */
  rx_conn_free(c);
}

static void test_tls(void) {
  char url[1300];
  int rc;
  rx_conn *c;
  /* Row 13: TLS against a plain port. */
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d?ssl_cert_reqs=none&connect_timeout=0.5",
           tls.port);
  c = conn(url);
  CHECK(c);
  rc = rx_conn_connect(c);
  note(13, rc, rx_conn_errstr(c));
  CHECKF(rc == RX_ETIMEDOUT || rc == RX_ETLS, "row 13: %s", rx_errname(rc)); /* row 13 */
  CHECK(strstr(rx_conn_errstr(c), "is the server using TLS") != NULL);      /* row 13 */
  rx_conn_free(c);
  /* Row 14: plain against a TLS port. */
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout=2", tls.tls_port);
  c = conn(url);
  CHECK(c);
  rc = ping(c);
  note(14, rc, rx_conn_errstr(c));
  CHECKF(rc == RX_EIO || rc == RX_EPROTO, "row 14: %s", rx_errname(rc)); /* row 14 */
  rx_conn_free(c);
  /* Row 15: a CA that did not sign the server's certificate. */
  snprintf(url, sizeof url, "rediss://:" PW "@127.0.0.1:%d?ssl_ca_certs=%s/other-ca.crt",
           tls.tls_port, tls.dir);
  c = conn(url);
  CHECK(c);
  rc = rx_conn_connect(c);
  note(15, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ETLSVERIFY);                              /* row 15 */
  CHECK(strstr(rx_conn_errstr(c), "not accepted") != NULL);     /* row 15 */
  NO_PW(rx_conn_errstr(c));                                     /* row 15 */
  rx_conn_free(c);
  /* Row 16: the certificate is for another host name. */
  snprintf(url, sizeof url,
           "rediss://127.0.0.1:%d?ssl_ca_certs=%s/ca.crt&ssl_server_name=other.example",
           tls.tls_port, tls.dir);
  c = conn(url);
  CHECK(c);
  rc = rx_conn_connect(c);
  note(16, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ETLSVERIFY);                           /* row 16 */
  CHECK(strstr(rx_conn_errstr(c), "another host name") != NULL); /* row 16 */
  rx_conn_free(c);
  /* Row 17: a certificate no system CA signed (self-signed, as Heroku's). */
  snprintf(url, sizeof url, "rediss://localhost:%d", tls.tls_port);
  c = conn(url);
  CHECK(c);
  rc = rx_conn_connect(c);
  note(17, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ETLSVERIFY);                               /* row 17 */
  CHECK(strstr(rx_conn_errstr(c), "ssl_cert_reqs=none") != NULL); /* row 17: the way out */
  rx_conn_free(c);
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_cert_reqs=none", tls.tls_port);
  c = conn(url);
  CHECK(c);
  CHECK_EQ_INT(ping(c), RX_OK); /* row 17: accepted when told */
  rx_conn_free(c);
}

/* ------------------------------------------------------------ the server */

static void test_config_and_flags(void) {
  rx_conn *c = conn(base);
  CHECK(c);
  char eff[64];
  /* Row 18: CONFIG is forbidden (renamed away, as managed services do). */
  int rc = rx_notify_ensure(c, "Ex", eff, sizeof eff);
  note(18, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ECONFIG);                                  /* row 18 */
  CHECK(strstr(rx_conn_errstr(c), "notify-keyspace-events") != NULL); /* row 18 */
  NO_PW(rx_conn_errstr(c));                                      /* row 18 */
  CHECK_EQ_INT(ping(c), RX_OK); /* row 18: the link still works */
  /* Row 19: flags Redis does not have. */
  rc = rx_notify_ensure(c, "Exq", eff, sizeof eff);
  note(19, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_EINVAL);                           /* row 19 */
  CHECK(strstr(rx_conn_errstr(c), "q") != NULL);          /* row 19: names it */
  CHECK_EQ_INT(rx_notify_ensure(c, NULL, eff, sizeof eff), RX_EINVAL); /* row 19 */
  rx_conn_free(c);
}

/* Row 20: nothing listens there. */
static void test_refused(void) {
  int port = rxt_free_port();
  char url[100];
  snprintf(url, sizeof url, "redis://:" PW "@127.0.0.1:%d", port);
  rx_conn *c = conn(url);
  CHECK(c);
  int rc = ping(c);
  note(20, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ECONNECT);                                /* row 20 */
  CHECK(strstr(rx_conn_errstr(c), "Connection refused") != NULL); /* row 20 */
  NO_PW(rx_conn_errstr(c));                                     /* row 20 */
  rx_conn_free(c);
}

/* Row 21: a server that accepts and never answers. */
static void test_timeouts(void) {
  char msg[300];
  long long t0 = rxt_ms();
  int rc = fake_call("", 0, 800, "?timeout=0.3", msg, sizeof msg);
  long long took = rxt_ms() - t0;
  note(21, rc, msg);
  CHECK_EQ_INT(rc, RX_ETIMEDOUT);                          /* row 21 */
  CHECK(strstr(msg, "did not reply within 300 ms") != NULL); /* row 21 */
  CHECK(took >= 290 && took < 1400);                       /* row 21 */
  /* The handshake (AUTH) has its own deadline: connect_timeout. */
  fake f;
  CHECK(fake_start(&f, "", 0, 800) == 0);
  char url[200];
  snprintf(url, sizeof url, "redis://:" PW "@127.0.0.1:%d?connect_timeout=0.3", f.port);
  rx_conn *c = conn(url);
  CHECK(c);
  rc = rx_conn_connect(c);
  note(21, rc, rx_conn_errstr(c));
  CHECK_EQ_INT(rc, RX_ETIMEDOUT);                                 /* row 21 */
  CHECK(strstr(rx_conn_errstr(c), "handshake") != NULL);          /* row 21 */
  NO_PW(rx_conn_errstr(c));                                       /* row 21 */
  rx_conn_free(c);
  fake_stop(&f);
  /* A queue on a silent server: the same, with the queue's name. */
  CHECK(fake_start(&f, "", 0, 800) == 0);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout=0.3", f.port);
  rx_queue *q = rx_queue_new(url, "silent", NULL, 0);
  CHECK(q);
  rc = rx_queue_schedule(q, "a", 1, "p", 1, 0, 0, NULL, 0, NULL, NULL);
  note(21, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_ETIMEDOUT);                                   /* row 21 */
  CHECK(strstr(rx_queue_errstr(q), "queue 'silent'") != NULL);      /* row 21 */
  rx_queue_free(q);
  fake_stop(&f);
}

/* Rows 22-26: servers that send what Redis never sends. */
static void test_broken_servers(void) {
  char msg[300];
  /* Row 22: half a reply, then the connection closes. */
  static const char half[] = "$10\r\nhel";
  int rc = fake_call(half, sizeof half - 1, 0, "?timeout=3", msg, sizeof msg);
  note(22, rc, msg);
  CHECK_EQ_INT(rc, RX_EIO);                          /* row 22 */
  CHECK(strstr(msg, "closed by the server") != NULL); /* row 22 */
  /* Row 23: an HTTP server. */
  static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  rc = fake_call(http, sizeof http - 1, 300, "?timeout=3", msg, sizeof msg);
  note(23, rc, msg);
  CHECK_EQ_INT(rc, RX_EPROTO);                          /* row 23 */
  CHECK(strstr(msg, "is it a Redis server?") != NULL); /* row 23 */
  /* Row 24: an array announcing 2^31-1 elements, two of them sent: memory
   * follows the bytes received, not the announced length. */
  static const char arr[] = "*2147483647\r\n:1\r\n:2\r\n";
  rc = fake_call(arr, sizeof arr - 1, 0, "?timeout=3", msg, sizeof msg);
  note(24, rc, msg);
  CHECK_EQ_INT(rc, RX_EIO); /* row 24 */
  rc = fake_call(arr, sizeof arr - 1, 800, "?timeout=0.3", msg, sizeof msg);
  note(24, rc, msg);
  CHECK_EQ_INT(rc, RX_ETIMEDOUT); /* row 24: and it never completes */
  /* Row 25: lengths out of range. */
  static const char mb[] = "*99999999999\r\n";
  rc = fake_call(mb, sizeof mb - 1, 300, "?timeout=3", msg, sizeof msg);
  note(25, rc, msg);
  CHECK_EQ_INT(rc, RX_EPROTO);             /* row 25 */
  CHECK(strstr(msg, "protocol error") != NULL); /* row 25 */
  static const char bulk[] = "$-7\r\n";
  rc = fake_call(bulk, sizeof bulk - 1, 300, "?timeout=3", msg, sizeof msg);
  note(25, rc, msg);
  CHECK_EQ_INT(rc, RX_EPROTO); /* row 25 */
  static const char huge[] = "$9223372036854775807\r\nabc";
  rc = fake_call(huge, sizeof huge - 1, 0, "?timeout=3", msg, sizeof msg);
  note(25, rc, msg);
  CHECKF(rc == RX_EPROTO || rc == RX_EIO, "row 25: %s", rx_errname(rc)); /* row 25 */
  /* Row 26: a type byte RESP does not have. */
  static const char type[] = "?what\r\n";
  rc = fake_call(type, sizeof type - 1, 300, "?timeout=3", msg, sizeof msg);
  note(26, rc, msg);
  CHECK_EQ_INT(rc, RX_EPROTO); /* row 26 */
  /* The subscriber and the queue on such a server: the same codes. */
  fake f;
  CHECK(fake_start(&f, http, sizeof http - 1, 300) == 0);
  char url[200];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout=3&reconnect_max_attempts=1", f.port);
  rx_queue *q = rx_queue_new(url, "http", NULL, 0);
  CHECK(q);
  size_t n;
  rc = rx_queue_fetch(q, 1, 0, NULL, &n);
  note(23, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EPROTO); /* row 23 */
  rx_queue_free(q);
  fake_stop(&f);
}

/* ------------------------------------------------------------ the queue */

static rx_queue *queue(const char *name) {
  char err[300];
  rx_queue *q = rx_queue_new(base, name, err, sizeof err);
  if (!q) fprintf(stderr, "  rx_queue_new(%s): %s\n", name, err);
  return q;
}

/* Fetches one job with the given id, acks it; 0 when found. */
static int take(rx_queue *q, const char *id, size_t id_len, const char *payload,
                size_t payload_len) {
  size_t n = 0;
  if (rx_queue_fetch(q, 10, 2000, NULL, &n) != RX_OK) return -1;
  int found = -1;
  for (size_t i = 0; i < n; i++) {
    const rx_job *j = rx_queue_job(q, i);
    if (j->id_len == id_len && !memcmp(j->id, id, id_len) && j->payload_len == payload_len &&
        !memcmp(j->payload, payload, payload_len))
      found = 0;
  }
  rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL);
  return found;
}

static void test_queue_inputs(void) {
  rx_queue *q = queue("inputs");
  CHECK(q);
  /* Row 27: a payload over max_payload (1 MiB by default). */
  size_t big = 1048577;
  char *p = calloc(1, big);
  CHECK(p);
  int rc = rx_queue_schedule(q, "big", 3, p, big, 0, 0, NULL, 0, NULL, NULL);
  note(27, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_ETOOBIG);                               /* row 27 */
  CHECK(strstr(rx_queue_errstr(q), "max_payload") != NULL);   /* row 27 */
  CHECK_EQ_INT(rx_queue_batch_add(q, "big", 3, p, big, 0, 0), RX_ETOOBIG); /* row 27 */
  CHECK_EQ_INT(rx_queue_schedule(q, "big", 3, p, big - 1, 0, 0, NULL, 0, NULL, NULL), 0); /* row 27 */
  CHECK_EQ_INT(take(q, "big", 3, p, big - 1), 0); /* row 27: the limit itself is fine */
  free(p);
  CHECK_EQ_INT(rx_queue_schedule(q, "x", 1, NULL, 5, 0, 0, NULL, 0, NULL, NULL), RX_EINVAL); /* row 27 */

  /* Row 28: an empty id. Scheduling generates one; the others refuse it. */
  char gen[RX_QUEUE_GEN_ID_SIZE];
  CHECK_EQ_INT(rx_queue_schedule(q, "", 0, "g", 1, 0, 0, gen, sizeof gen, NULL, NULL), 0); /* row 28 */
  CHECK_EQ_INT(strlen(gen), 12);                       /* row 28 */
  CHECK_EQ_INT(take(q, gen, 12, "g", 1), 0);          /* row 28 */
  rc = rx_queue_cancel(q, "", 0);
  note(28, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EINVAL);                                   /* row 28 */
  CHECK(strstr(rx_queue_errstr(q), "no message id") != NULL);    /* row 28 */
  CHECK_EQ_INT(rx_queue_reschedule(q, NULL, 0, 0, 0), RX_EINVAL); /* row 28 */
  CHECK_EQ_INT(rx_queue_run_now(q, "", 0), RX_EINVAL);            /* row 28 */

  /* Row 29: an id over RX_QUEUE_ID_MAX (256 bytes). */
  char id[RX_QUEUE_ID_MAX + 2];
  memset(id, 'i', sizeof id);
  rc = rx_queue_schedule(q, id, RX_QUEUE_ID_MAX + 1, "p", 1, 0, 0, NULL, 0, NULL, NULL);
  note(29, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EINVAL);                                   /* row 29 */
  CHECK(strstr(rx_queue_errstr(q), "at most 256") != NULL);     /* row 29 */
  CHECK_EQ_INT(rx_queue_batch_add(q, id, RX_QUEUE_ID_MAX + 1, "p", 1, 0, 0), RX_EINVAL); /* row 29 */
  CHECK_EQ_INT(rx_queue_schedule(q, id, RX_QUEUE_ID_MAX, "p", 1, 0, 0, NULL, 0, NULL, NULL), 0); /* row 29 */
  CHECK_EQ_INT(take(q, id, RX_QUEUE_ID_MAX, "p", 1), 0); /* row 29: 256 is fine */
  rx_queue_free(q);

  /* Row 30: binary, non-UTF-8 queue names and ids are accepted and come
   * back byte for byte (ids may hold NUL; names are C strings). */
  q = queue("bin\xff\xfe\x01 q\xc3\x28");
  CHECK(q); /* row 30 */
  static const char bid[] = "id\0\xff\xfe\r\n end";
  static const char bpl[] = "\0\xff payload \0\x80";
  CHECK_EQ_INT(rx_queue_schedule(q, bid, sizeof bid - 1, bpl, sizeof bpl - 1, 0, 0, NULL, 0,
                                 NULL, NULL), 0);                    /* row 30 */
  CHECK_EQ_INT(take(q, bid, sizeof bid - 1, bpl, sizeof bpl - 1), 0); /* row 30 */
  CHECK_EQ_INT(rx_queue_schedule(q, bid, sizeof bid - 1, "x", 1, 60000, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_cancel(q, bid, sizeof bid - 1), 0);           /* row 30 */
  rx_queue_free(q);
}

/* Row 31: NUL bytes (and CR, LF, 0xFF) in keys, channels and payloads are
 * accepted and round-trip exactly. */
static void test_nul_bytes(void) {
  rx_conn *c = conn(base);
  CHECK(c);
  static const char key[] = "k\0\r\n\xff";
  static const char val[] = "\0v\0\r\n";
  const char *set[3] = {"SET", key, val};
  size_t setl[3] = {3, sizeof key - 1, sizeof val - 1};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 3, set, setl), RX_OK); /* row 31 */
  const char *get[2] = {"GET", key};
  size_t getl[2] = {3, sizeof key - 1};
  rx_reply *r = NULL;
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, get, getl), RX_OK);      /* row 31 */
  CHECK_MEM(r->str, r->len, val, sizeof val - 1);             /* row 31 */
  rx_reply_free(r);
  /* A channel with NUL: subscribe, publish, receive. */
  rx_sub *s = rx_sub_new(base, NULL, 0);
  CHECK(s);
  static const char ch[] = "ch\0\xff\n";
  CHECK_EQ_INT(rx_sub_subscribe(s, ch, sizeof ch - 1), RX_OK); /* row 31 */
  long long got = 0;
  CHECK_EQ_INT(rx_conn_publish(c, ch, sizeof ch - 1, val, sizeof val - 1, &got), RX_OK); /* row 31 */
  CHECK_EQ_INT(got, 1); /* row 31 */
  rx_event ev;
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);             /* row 31 */
  CHECK_MEM(ev.channel, ev.channel_len, ch, sizeof ch - 1);  /* row 31 */
  CHECK_MEM(ev.data, ev.data_len, val, sizeof val - 1);      /* row 31 */
  rx_sub_free(s);
  /* A NULL argument with a length is refused before anything is sent. */
  const char *bad[2] = {"GET", NULL};
  size_t badl[2] = {3, 4};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 2, bad, badl), RX_EINVAL); /* row 31 */
  CHECK_EQ_INT(ping(c), RX_OK); /* row 31 */
  rx_conn_free(c);
}

/* Row 32: queue names that cannot be. */
static void test_bad_queue_names(void) {
  char longname[202];
  memset(longname, 'n', 201);
  longname[201] = '\0';
  const char *names[] = {"", "a{b", "a}b", "{tag}", longname, NULL};
  for (int i = 0; names[i]; i++) {
    char err[300] = "";
    rx_queue *q = rx_queue_new(base, names[i], err, sizeof err);
    if (i == 0) note(32, RX_EINVAL, err);
    CHECK(q == NULL);                                  /* row 32 */
    CHECK(strstr(err, "invalid queue name") != NULL);  /* row 32 */
  }
  char err[300] = "";
  CHECK(rx_queue_new(base, NULL, err, sizeof err) == NULL); /* row 32 */
  longname[200] = '\0';
  rx_queue *q = rx_queue_new(base, longname, err, sizeof err);
  CHECK(q != NULL); /* row 32: 200 bytes is fine */
  rx_queue_free(q);
}

/* Row 33: a key of the queue holds another type (another program uses the
 * name): a clear error naming the key; nothing is lost. */
static void test_wrong_type_key(void) {
  rx_queue *q = queue("wtype");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_schedule(q, "keep", 4, "k", 1, 0, 0, NULL, 0, NULL, NULL), 0);
  CHECK(raw_ok("SET", "rx:{wtype}:i", "not a hash", NULL));
  rx_queue_stats st;
  int rc = rx_queue_stats_get(q, &st);
  note(33, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EWRONGTYPE);                                /* row 33 */
  CHECK(strstr(rx_queue_errstr(q), "rx:{wtype}:i") != NULL);       /* row 33 */
  CHECK(strstr(rx_queue_errstr(q), "holds a string") != NULL);     /* row 33 */
  CHECK(raw_ok("DEL", "rx:{wtype}:i", NULL, NULL));
  CHECK_EQ_INT(take(q, "keep", 4, "k", 1), 0); /* row 33: the message is still there */
  /* The ready stream replaced by a list: fetch refuses, moves nothing. */
  CHECK_EQ_INT(rx_queue_schedule(q, "keep2", 5, "k", 1, 0, 0, NULL, 0, NULL, NULL), 0);
  CHECK(raw_ok("DEL", "rx:{wtype}:s", NULL, NULL));
  CHECK(raw_ok("RPUSH", "rx:{wtype}:s", "x", NULL));
  size_t n;
  rc = rx_queue_fetch(q, 10, 0, NULL, &n);
  note(33, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EWRONGTYPE);                               /* row 33 */
  CHECK(strstr(rx_queue_errstr(q), "rx:{wtype}:s") != NULL);      /* row 33 */
  CHECK(raw_ok("DEL", "rx:{wtype}:s", NULL, NULL));
  CHECK_EQ_INT(take(q, "keep2", 5, "k", 1), 0); /* row 33: not lost */
  rx_queue_free(q);
}

/* Row 34: tokens that are stale or not tokens at all. */
static void test_tokens(void) {
  rx_queue *q = queue("tokens");
  CHECK(q);
  int rc = rx_queue_ack(q, "1-1");
  note(34, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_ESTALE);                                  /* row 34 */
  CHECK(strstr(rx_queue_errstr(q), "no longer pending") != NULL); /* row 34 */
  CHECK_EQ_INT(rx_queue_retry(q, "1-1", 0, "e", 1, NULL), RX_ESTALE); /* row 34 */
  CHECK_EQ_INT(rx_queue_extend(q, "1-1", 1000), RX_ESTALE);     /* row 34 */
  static const char *const bad[] = {"",      "x",   "1-", "-1", "1-2-3", "1 2",
                                    "99999999999999999999999999999999999999999999-1",
                                    "18446744073709551616-0", "1-18446744073709551616"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rc = rx_queue_ack(q, bad[i]);
    if (i == 1) note(34, rc, rx_queue_errstr(q));
    CHECKF(rc == RX_EINVAL, "row 34: \"%s\": %s", bad[i], rx_errname(rc)); /* row 34 */
    CHECK_EQ_INT(rx_queue_fail(q, bad[i], NULL, 0), RX_EINVAL); /* row 34 */
  }
  CHECK_EQ_INT(rx_queue_ack(q, "18446744073709551615-18446744073709551615"), RX_ESTALE); /* row 34 */
  CHECK_EQ_INT(rx_queue_dead_requeue(q, "nope", 0, NULL), RX_EINVAL); /* row 34 */
  CHECK_EQ_INT(rx_queue_dead_purge(q, "1-1", NULL), RX_NOMATCH);      /* row 34 */
  rx_queue_free(q);
}

/* Rows 35-36: delays. */
static void test_delays(void) {
  rx_queue *q = queue("delays");
  CHECK(q);
  /* Row 35: a negative delay is due now + delay, i.e. in the past: it is
   * delivered at once, before messages due later. */
  CHECK_EQ_INT(rx_queue_schedule(q, "later", 5, "l", 1, 0, 0, NULL, 0, NULL, NULL), 0);
  long long due = 0, before = rx_now_ms();
  CHECK_EQ_INT(rx_queue_schedule(q, "neg", 3, "n", 1, -5000, 0, NULL, 0, NULL, &due), 0); /* row 35 */
  CHECK(due <= before - 4000 && due >= before - 6000); /* row 35 */
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0); /* row 35 */
  CHECK_EQ_INT(n, 2);                                      /* row 35 */
  CHECK_MEM(rx_queue_job(q, 0)->id, rx_queue_job(q, 0)->id_len, "neg", 3); /* row 35: first */
  CHECK_EQ_INT(rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL), 0);
  /* An epoch time before 1970 (RX_SCHED_AT, -1): due, delivered now. */
  CHECK_EQ_INT(rx_queue_schedule(q, "old", 3, "o", 1, -1, RX_SCHED_AT, NULL, 0, NULL, &due), 0); /* row 35 */
  CHECK_EQ_INT(due, -1);                          /* row 35 */
  CHECK_EQ_INT(take(q, "old", 3, "o", 1), 0);     /* row 35 */

  /* Row 36: absurd delays and due times (past the end of year 9999). */
  static const long long absurd[] = {LLONG_MAX, LLONG_MIN, 253402300800000LL,
                                     -253402300800000LL, 9007199254740993LL};
  for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
    for (int at = 0; at < 2; at++) {
      int outcome = -1;
      int rc = rx_queue_schedule(q, "abs", 3, "a", 1, absurd[i], at ? RX_SCHED_AT : 0, NULL,
                                 0, &outcome, &due);
      if (i == 0 && !at) note(36, rc, rx_queue_errstr(q));
      CHECK_EQ_INT(rc, RX_EINVAL);                                /* row 36 */
      CHECK(strstr(rx_queue_errstr(q), "out of range") != NULL);  /* row 36 */
      CHECK_EQ_INT(outcome, -1);                                  /* row 36: untouched */
      CHECK_EQ_INT(rx_queue_batch_add(q, "abs", 3, "a", 1, absurd[i], at ? RX_SCHED_AT : 0),
                   RX_EINVAL); /* row 36 */
    }
  }
  CHECK_EQ_INT(rx_queue_schedule(q, "w", 1, "w", 1, 60000, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_reschedule(q, "w", 1, LLONG_MAX, 0), RX_EINVAL); /* row 36 */
  /* The largest allowed: the end of year 9999, kept exactly. */
  CHECK_EQ_INT(rx_queue_schedule(q, "y9999", 5, "y", 1, 253402300799999LL, RX_SCHED_AT, NULL, 0,
                                 NULL, &due), 0); /* row 36 */
  CHECK_EQ_INT(due, 253402300799999LL);           /* row 36 */
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.scheduled, 2); /* row 36: nothing absurd got in */
  CHECK_EQ_INT(rx_queue_cancel(q, "y9999", 5), 0);
  CHECK_EQ_INT(rx_queue_cancel(q, "w", 1), 0);
  /* Retry, extend and requeue delays have the same range. */
  CHECK_EQ_INT(rx_queue_schedule(q, "r", 1, "r", 1, 0, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 2000, NULL, &n), 0);
  char tok[RX_QUEUE_TOKEN_SIZE];
  strcpy(tok, rx_queue_job(q, 0)->token);
  CHECK_EQ_INT(rx_queue_retry(q, tok, LLONG_MAX, "e", 1, NULL), RX_EINVAL); /* row 36 */
  CHECK_EQ_INT(rx_queue_extend(q, tok, LLONG_MAX), RX_EINVAL);              /* row 36 */
  CHECK_EQ_INT(rx_queue_dead_requeue(q, NULL, LLONG_MAX, NULL), RX_EINVAL); /* row 36 */
  CHECK_EQ_INT(rx_queue_ack(q, tok), 0); /* row 36: the delivery was untouched */
  rx_queue_free(q);
}

/* Rows 37-38: counts and options out of range. */
static void test_queue_ranges(void) {
  rx_queue *q = queue("ranges");
  CHECK(q);
  size_t n = 99;
  int rc = rx_queue_fetch(q, 0, 0, NULL, &n);
  note(37, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EINVAL);                             /* row 37 */
  CHECK(strstr(rx_queue_errstr(q), "1..1000") != NULL);    /* row 37 */
  CHECK_EQ_INT(n, 0);                                      /* row 37 */
  CHECK_EQ_INT(rx_queue_fetch(q, 1001, 0, NULL, &n), RX_EINVAL);   /* row 37 */
  CHECK_EQ_INT(rx_queue_dead_list(q, NULL, 0, &n), RX_EINVAL);     /* row 37 */
  rc = rx_queue_set(q, "visibility_timeout_ms", "5");
  note(38, rc, rx_queue_errstr(q));
  CHECK_EQ_INT(rc, RX_EINVAL);                                      /* row 38 */
  CHECK(strstr(rx_queue_errstr(q), "10..") != NULL);                /* row 38 */
  CHECK_EQ_INT(rx_queue_set(q, "block_cap_ms", "-1"), RX_EINVAL);   /* row 38 */
  CHECK_EQ_INT(rx_queue_set(q, "max_payload", "99999999999999"), RX_EINVAL); /* row 38 */
  CHECK_EQ_INT(rx_queue_set(q, "consumer", ""), RX_EINVAL);         /* row 38 */
  CHECK_EQ_INT(rx_queue_set(q, "visibility", "1000"), RX_EURL);     /* row 38: unknown */
  CHECK(strstr(rx_queue_errstr(q), "unknown option") != NULL);      /* row 38 */
  rx_queue_free(q);
}

/* Row 39: malformed templates. */
static void test_templates(void) {
  static const struct {
    const char *tpl, *gist;
  } bad[] = {{"user:{id", "unclosed"}, {"{a}{b}", ""}, {"{1a}", ""}, {"{a}:{a}", ""},
             {"a}b", ""}, {"{}", ""}, {"", "empty"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[200] = "";
    rx_template *t = rx_template_new(bad[i].tpl, strlen(bad[i].tpl), err, sizeof err);
    note(39, t ? 0 : RX_EINVAL, err);
    CHECKF(t == NULL, "row 39: \"%s\" compiled", bad[i].tpl); /* row 39 */
    CHECK(err[0] != '\0');                                    /* row 39 */
    CHECK(strstr(err, bad[i].gist) != NULL);                  /* row 39 */
  }
  /* What IS accepted: binary literals, "{{" braces, one placeholder. */
  static const char ok[] = "rx:{{\xff\0}}:{id}";
  rx_template *t = rx_template_new(ok, sizeof ok - 1, NULL, 0);
  CHECK(t != NULL); /* row 39 */
  rx_capture cap[1];
  static const char name[] = "rx:{\xff\0}:42";
  CHECK_EQ_INT(rx_template_match(t, name, sizeof name - 1, cap, 1), 0); /* row 39 */
  CHECK_MEM(cap[0].ptr, cap[0].len, "42", 2);                          /* row 39 */
  CHECK_EQ_INT(rx_template_match(t, "rx:{x}:", 7, cap, 1), RX_NOMATCH); /* row 39 */
  rx_template_free(t);
}

/* Row 40: channels that look almost like keyspace notifications. */
static void test_keyspace_garbage(void) {
  static const char *const bad[] = {"__keyspace@x__:k", "__keyspace@0__", "__keyevent@0__:",
                                    "__keyspace@-1__:k", "__keyspace@99999999999__:k",
                                    "__KEYSPACE@0__:k", ""};
  rx_key_event ke;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECKF(rx_keyspace_parse(bad[i], strlen(bad[i]), "del", 3, &ke) == RX_NOMATCH, "row 40: %s",
           bad[i]); /* row 40 */
  CHECK_EQ_INT(rx_keyspace_parse(NULL, 0, NULL, 0, &ke), RX_EINVAL); /* row 40 */
  /* Accepted: a key with NUL and ':' in it. */
  static const char ch[] = "__keyspace@3__:a:\0b";
  CHECK_EQ_INT(rx_keyspace_parse(ch, sizeof ch - 1, "expired", 7, &ke), 0); /* row 40 */
  CHECK_EQ_INT(ke.db, 3);                                                 /* row 40 */
  CHECK_MEM(ke.key, ke.key_len, "a:\0b", 4);                              /* row 40 */
}

/* Row 41: a NULL handle (the C form of "after close": freed handles must
 * not be used, and NULL is the one invalid handle the API can check). */
static void test_null_handles(void) {
  size_t n;
  rx_queue_stats st;
  rx_event ev;
  CHECK_EQ_INT(ping(NULL), RX_EINVAL);                                  /* row 41 */
  CHECK_EQ_INT(rx_conn_connect(NULL), RX_EINVAL);                       /* row 41 */
  CHECK_EQ_INT(rx_conn_publish(NULL, "c", 1, "m", 1, NULL), RX_EINVAL); /* row 41 */
  CHECK_EQ_INT(rx_sub_next(NULL, 0, &ev), RX_EINVAL);                   /* row 41 */
  CHECK_EQ_INT(rx_sub_subscribe(NULL, "c", 1), RX_EINVAL);              /* row 41 */
  CHECK_EQ_INT(rx_queue_schedule(NULL, "a", 1, "p", 1, 0, 0, NULL, 0, NULL, NULL), RX_EINVAL); /* row 41 */
  CHECK_EQ_INT(rx_queue_fetch(NULL, 1, 0, NULL, &n), RX_EINVAL);        /* row 41 */
  CHECK_EQ_INT(rx_queue_ack(NULL, "1-1"), RX_EINVAL);                   /* row 41 */
  CHECK_EQ_INT(rx_queue_stats_get(NULL, &st), RX_EINVAL);               /* row 41 */
  CHECK_EQ_INT(rx_notify_ensure(NULL, "Ex", NULL, 0), RX_EINVAL);       /* row 41 */
  rx_conn_wakeup(NULL);   /* row 41: no-ops */
  rx_sub_wakeup(NULL);
  rx_queue_wakeup(NULL);
  rx_conn_free(NULL);
  rx_sub_free(NULL);
  rx_queue_free(NULL);
  rx_template_free(NULL);
  rx_reply_free(NULL);
  CHECK_STR(rx_queue_errstr(NULL), ""); /* row 41 */
  /* A closed link is reopened by the next call; a freed one is gone. */
  rx_conn *c = conn(base);
  CHECK(c);
  CHECK_EQ_INT(ping(c), RX_OK);
  rx_conn_close(c);
  rx_conn_close(c);
  CHECK_EQ_INT(ping(c), RX_OK); /* row 41 */
  rx_conn_free(c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *args[] = {"--requirepass", PW, "--rename-command", "CONFIG", "",
                        "--user", "alice", "on", ">alice-" PW, "~*", "&*", "+@all", NULL};
  if (rxt_server_start(&srv, args) != 0) return 1;
  if (rxt_server_start_tls(&tls, 1, NULL) != 0) return 1;
  snprintf(base, sizeof base, "redis://:" PW "@127.0.0.1:%d", srv.port);
  RUN(test_urls);
  RUN(test_long_host);
  RUN(test_bad_db);
  RUN(test_auth);
  RUN(test_tls);
  RUN(test_config_and_flags);
  RUN(test_refused);
  RUN(test_timeouts);
  RUN(test_broken_servers);
  RUN(test_queue_inputs);
  RUN(test_nul_bytes);
  RUN(test_bad_queue_names);
  RUN(test_wrong_type_key);
  RUN(test_tokens);
  RUN(test_delays);
  RUN(test_queue_ranges);
  RUN(test_templates);
  RUN(test_keyspace_garbage);
  RUN(test_null_handles);
  rxt_server_cleanup(&tls);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
