/* rx_private.h — the library's internal structures and helpers.
 * Not installed. Internal non-static names are rx__name. */
#ifndef REACTIS_RX_PRIVATE_H
#define REACTIS_RX_PRIVATE_H

#include "reactis/reactis.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- memory */

void *rx__malloc(size_t n);
void *rx__calloc(size_t count, size_t n);
void *rx__realloc(void *p, size_t n);
void rx__free(void *p);
char *rx__strdup(const char *s);
char *rx__memdup(const void *p, size_t n); /* adds a NUL after n bytes */

/* Formats into buf (always NUL-terminated, truncated if needed). */
void rx__fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A growable byte buffer. */
typedef struct rx_buf {
  char *data;
  size_t len, cap;
} rx_buf;
int rx__buf_append(rx_buf *b, const void *p, size_t n); /* 0 or RX_ENOMEM */
void rx__buf_consume(rx_buf *b, size_t n);              /* drop n from front */
void rx__buf_free(rx_buf *b);

/* A set of binary-safe names (nameset.c): the subscribers' wanted
 * subscriptions. Order is not kept (removal moves the last name). */
typedef struct rx__name_set {
  char **names;
  size_t *lens;
  size_t count, cap;
} rx__name_set;
int rx__set_find(const rx__name_set *ns, const char *p, size_t n); /* index or -1 */
/* Adds a copy (allow_dup: even when present). 1 added, 0 present, RX_ENOMEM. */
int rx__set_put(rx__name_set *ns, const char *p, size_t n, int allow_dup);
void rx__set_remove_at(rx__name_set *ns, size_t i);
void rx__set_clear(rx__name_set *ns);
void rx__set_free(rx__name_set *ns);

/* A FIFO of replies (nameset.c): received, not yet delivered. */
typedef struct rx__reply_fifo {
  struct rx_reply **items;
  size_t head, count, cap;
} rx__reply_fifo;
int rx__fifo_push(rx__reply_fifo *f, struct rx_reply *r); /* 0 or RX_ENOMEM */
struct rx_reply *rx__fifo_pop(rx__reply_fifo *f);         /* NULL when empty */
/* A checked message/pmessage/smessage reply into *ev (borrowing from r). */
struct rx_event;
void rx__fill_event(struct rx_event *ev, const struct rx_reply *r);

/* ---------------------------------------------------------------- options */

enum { RX_SCHEME_TCP = 1, RX_SCHEME_TLS = 2, RX_SCHEME_UNIX = 3 };

/* Everything a URL or rx_*_set can configure. Owned strings. */
typedef struct rx_opts {
  int scheme;
  char *host;     /* TCP/TLS host without brackets */
  int port;       /* default 6379 */
  char *path;     /* unix socket path */
  char *username; /* NULL: AUTH with password only */
  char *password; /* NULL: no AUTH */
  int db;
  int timeout_ms;          /* per command; 0 = none */
  int connect_timeout_ms;  /* 0 = none */
  int keepalive_s;         /* 0 = off */
  char *client_name;
  int tls_verify;          /* 1 = verify the certificate (default) */
  int tls_check_hostname;  /* 1 = verify the host name (default) */
  char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
  /* subscriber options */
  int health_interval_ms;  /* 0 = off */
  int health_timeout_ms;
  int reconnect_min_ms, reconnect_max_ms;
  int reconnect_max_attempts; /* 0 = forever */
  int cluster;             /* cluster=yes: Redis Cluster mode (cluster.h) */
} rx_opts;

/* Parses url into o (which it initialises). 0, or RX_EURL/RX_ENOMEM with a
 * message in errstr that never contains the password. */
int rx__opts_parse(rx_opts *o, const char *url, char *errstr, size_t errlen);
/* Sets one option by name ("timeout", "5"). */
int rx__opts_set(rx_opts *o, const char *name, const char *value, char *errstr,
                 size_t errlen);
int rx__opts_copy(rx_opts *dst, const rx_opts *src);
void rx__opts_free(rx_opts *o);
/* "redis://user:***@host:port/db" into buf. */
void rx__opts_describe(const rx_opts *o, char *buf, size_t len);

/* ---------------------------------------------------------------- replies */

/* A reader that builds rx_reply trees (our allocator, binary-safe). */
typedef struct redisReader redisReader;
redisReader *rx__reader_new(void);
void rx__reader_free(redisReader *r);

/* Encodes a command into RESP and appends it to b. */
int rx__format_command(rx_buf *b, int argc, const char *const *argv,
                       const size_t *argvlen);

/* Maps an error reply's text to a status code (WRONGTYPE -> RX_EWRONGTYPE...). */
int rx__reply_error_code(const rx_reply *r);

/* 1 if r is a string/status equal to s (case-sensitive). */
int rx__reply_is(const rx_reply *r, const char *s);
/* Integer value of an INTEGER reply or a decimal STRING reply. 0 or EPROTO. */
int rx__reply_int(const rx_reply *r, long long *out);

/* ---------------------------------------------------------------- conn */

struct ssl_st;
struct ssl_ctx_st;

struct rx_conn {
  rx_opts opts;
  int fd;                  /* -1 when not connected */
  struct ssl_st *ssl;      /* TLS session, NULL for plain links */
  struct ssl_ctx_st *ssl_ctx;
  redisReader *reader;
  rx_buf out;              /* encoded commands not yet written */
  int pending;             /* replies expected for what was sent/appended */
  int skip;                /* replies to drop: their caller gave up waiting */
  int wake_rd, wake_wr;    /* self-pipe for rx_conn_wakeup */
  int err;
  char errstr[256];
  long long last_io_ms;    /* monotonic ms of the last byte read */
  /* Framed input (subscribers, see conn.c "framing"): bytes are read into
   * `in` and cut into complete frames before anything is parsed, so
   * pub/sub messages can be read in place and hiredis's reader only ever
   * gets one whole frame at a time. Without `framed`, or once a frame we do
   * not recognise arrives (`raw`), bytes go straight to the reader. */
  int framed;              /* set by the owner before connecting */
  int raw;                 /* the reader owns the byte stream of this link */
  int pinned;              /* events borrow bytes of `in`: never move them */
  char *in;                /* read, not yet handed out (binary) */
  size_t in_pos, in_len, in_cap;
  size_t scan_off;         /* bytes of the front frame already checked */
  long long scan_left;     /* elements of the front frame still unchecked */
  struct rx__retired *retired; /* buffers replaced while pinned */
  long long last_io_wall;  /* wall-clock ms of the last byte read (framed) */
};

/* Framing (conn.c). rx__conn_msg: when the next frame is a complete
 * message/pmessage/smessage of bulk strings, fills *ev borrowing the bytes
 * (NUL-terminated), consumes it, pins the buffer and returns 1; ev NULL only
 * tells whether one is there. 0 otherwise (nothing is consumed). The borrow
 * lasts until rx__conn_unpin (or the conn is freed): closing the link or
 * reading more never moves pinned bytes. */
int rx__conn_msg(rx_conn *c, struct rx_event *ev);
void rx__conn_unpin(rx_conn *c);
/* Reads until a complete frame is buffered (at once in raw mode, where the
 * caller reads through rx__conn_read). 0, or a wait/I/O status. */
int rx__conn_wait_frame(rx_conn *c, long long deadline);

/* Sets c->err and c->errstr; returns code. */
int rx__conn_seterr(rx_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Initialises a conn in place from parsed options (takes a copy), and frees
 * what rx__conn_init allocated. Used by rx_sub, which embeds a conn. */
int rx__conn_init(rx_conn *c, const rx_opts *o);
void rx__conn_deinit(rx_conn *c);

/* Connects with the deadline of o.connect_timeout_ms (handshake included).
 * Closes any current link first. 0, or a negative code with c->errstr. */
int rx__conn_open(rx_conn *c);

/* Writes the output buffer until empty or the deadline (monotonic ms, -1 =
 * none). 0, RX_TIMEOUT (deadline passed), RX_WOKEN, RX_EINTR, or an error
 * (the link is closed). */
int rx__conn_flush(rx_conn *c, long long deadline);

/* Returns the next complete reply, waiting until the deadline (monotonic ms;
 * -1 = forever; 0 = do not wait). 0 with *r; RX_TIMEOUT; RX_WOKEN; RX_EINTR;
 * or a negative code (the link is closed). Does not touch c->pending. */
int rx__conn_read(rx_conn *c, rx_reply **r, long long deadline);

/* Returns a reply already received and parsed, without any I/O:
 * 0 with *r, RX_TIMEOUT when none is buffered, negative on protocol error. */
int rx__conn_buffered(rx_conn *c, rx_reply **r);

/* rx_conn_get_reply / rx_conn_command with an explicit reply timeout in ms
 * (0 = wait forever), for blocking commands such as XREADGROUP BLOCK, whose
 * reply may take longer than the connection's command timeout. */
int rx__conn_get_reply_timeout(rx_conn *c, rx_reply **reply, int timeout_ms);
int rx__conn_command_timeout(rx_conn *c, rx_reply **reply, int argc,
                             const char *const *argv, const size_t *argvlen,
                             int timeout_ms);

/* Absolute deadline for a relative timeout (ms; <0 = none -> -1). */
long long rx__deadline(int timeout_ms);
/* Remaining ms until deadline for poll(): -1 for none, 0 if passed. */
int rx__remaining(long long deadline);

/* Drains the wakeup pipe. */
void rx__wake_drain(int fd);
/* Creates a non-blocking, close-on-exec pipe. 0 or RX_ESYS. */
int rx__wake_pipe(int *rd, int *wr);

/* Random 64-bit value (for jitter and ids), from a per-process PRNG seeded
 * from the OS. Thread-safe. */
uint64_t rx__random(void);

/* ---------------------------------------------------------------- keyspace */

/* rx_notify_ensure whose probe key (see keyspace.c) carries probe_tag as its
 * hash tag, so that a cluster node can write it (NULL: no tag). */
int rx__notify_ensure_tagged(rx_conn *c, const char *flags, char *effective,
                             size_t effective_len, const char *probe_tag);

#endif
