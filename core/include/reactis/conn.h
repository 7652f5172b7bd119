/* reactis/conn.h — a connection to one Redis server, and its replies.
 *
 * An rx_conn owns its socket (TCP, unix or TLS). hiredis is used only to
 * encode commands and parse replies. Every blocking call honours a deadline,
 * can be woken from another thread with rx_conn_wakeup(), and returns RX_EINTR
 * when a signal interrupts the wait instead of retrying inside.
 *
 * URLs:
 *   redis://[[user]:password@]host[:port][/db][?option=value&...]
 *   rediss://...                              TLS, verified by default
 *   unix:///path/to/redis.sock[?db=N&password=...&username=...]
 * Host may be an IPv6 literal in brackets. User and password are
 * percent-decoded. Query options (also settable with rx_conn_set):
 *   db=N                    database to SELECT (overrides the path)
 *   username=, password=    credentials (override the authority part)
 *   timeout=S               seconds a command may take (default 5, 0 = none)
 *   connect_timeout=S       seconds connecting may take (default 5)
 *   keepalive=S             TCP keepalive idle seconds (default 60, 0 = off)
 *   client_name=NAME        sent with CLIENT SETNAME after connecting
 *   ssl_cert_reqs=required|none   "none" skips certificate verification
 *                           (Heroku Redis uses self-signed certificates)
 *   ssl_check_hostname=true|false check the host name (default true)
 *   ssl_ca_certs=PATH       CA bundle (default: the system's)
 *   ssl_certfile=PATH, ssl_keyfile=PATH   client certificate and key
 *   ssl_server_name=NAME    name to send (SNI) and verify, if not the host
 *   health_check_interval=S, health_check_timeout=S,
 *   reconnect_min=S, reconnect_max=S      used by subscribers (sub.h)
 * Unknown options are an error (RX_EURL), so typos do not pass silently.
 *
 * Threads: a connection is used by one thread at a time; rx_conn_wakeup() may
 * be called from any thread at any time.
 */
#ifndef REACTIS_CONN_H
#define REACTIS_CONN_H

#include "reactis/reactis.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A reply from the server. Values match hiredis's REDIS_REPLY_* types. */
typedef enum rx_reply_type {
  RX_REPLY_STRING = 1,  /* bulk string: str, len (binary-safe) */
  RX_REPLY_ARRAY = 2,   /* elements, element[] */
  RX_REPLY_INTEGER = 3, /* integer */
  RX_REPLY_NIL = 4,     /* null bulk string or null array */
  RX_REPLY_STATUS = 5,  /* simple string such as OK: str, len */
  RX_REPLY_ERROR = 6    /* error reply such as "WRONGTYPE ...": str, len */
} rx_reply_type;

typedef struct rx_reply {
  int type;                  /* an rx_reply_type */
  long long integer;         /* RX_REPLY_INTEGER */
  size_t len;                /* bytes in str, not counting the added NUL */
  char *str;                 /* STRING, STATUS, ERROR; NUL-terminated too */
  size_t elements;           /* RX_REPLY_ARRAY */
  struct rx_reply **element; /* RX_REPLY_ARRAY: elements entries */
} rx_reply;

/* Frees a reply and everything below it. rx_reply_free(NULL) does nothing. */
RX_EXTERN void rx_reply_free(rx_reply *reply);

typedef struct rx_conn rx_conn;

/* Parses the URL and creates a connection handle; it does not connect (the
 * first command does, or rx_conn_connect). Returns NULL on a malformed URL or
 * unknown option, or when out of memory, with a message in errstr (which never
 * contains the password). errstr may be NULL. */
RX_EXTERN rx_conn *rx_conn_new(const char *url, char *errstr, size_t errstr_len);

/* Closes the connection and frees the handle. rx_conn_free(NULL) does nothing. */
RX_EXTERN void rx_conn_free(rx_conn *c);

/* Sets one option by name, as in the URL query ("timeout", "5"); takes effect
 * on the next connect (timeouts: at once). Returns 0 or RX_EURL/RX_EINVAL. */
RX_EXTERN int rx_conn_set(rx_conn *c, const char *name, const char *value);

/* Connects now (closing any current link first): TCP/unix/TLS, AUTH, SELECT,
 * CLIENT SETNAME. Returns 0, or a negative code with rx_conn_errstr set. */
RX_EXTERN int rx_conn_connect(rx_conn *c);

/* Closes the socket; the next command reconnects. */
RX_EXTERN void rx_conn_close(rx_conn *c);

/* 1 when a link is established, else 0. */
RX_EXTERN int rx_conn_is_connected(const rx_conn *c);

/* Runs one command and waits for its reply (connecting first if needed).
 * argv/argvlen give argc binary-safe arguments; argvlen may be NULL for
 * NUL-terminated arguments. On 0, *reply is the server's reply, which may
 * be of type RX_REPLY_ERROR; the caller frees it with rx_reply_free. On a
 * negative code *reply is NULL; a link that failed mid-command is closed and
 * the next command reconnects (the command is never resent by itself).
 * RX_WOKEN or RX_EINTR: the wait was interrupted; the link is closed (the
 * reply might never come, as for BLPOP key 0) and the next command
 * reconnects. The command itself may or may not have run. */
RX_EXTERN int rx_conn_command(rx_conn *c, rx_reply **reply, int argc,
                              const char *const *argv, const size_t *argvlen);

/* As rx_conn_command, but an error reply becomes a status code (RX_EWRONGTYPE,
 * RX_ENOPERM, RX_EOOM, RX_ENOSCRIPT, RX_EREADONLY, RX_ELOADING, RX_EBUSY,
 * RX_EAUTH, else RX_EREPLY) with the server's text in rx_conn_errstr. reply may
 * be NULL when the caller does not need it. */
RX_EXTERN int rx_conn_call(rx_conn *c, rx_reply **reply, int argc,
                           const char *const *argv, const size_t *argvlen);

/* Pipelining: rx_conn_append queues a command in the output buffer (nothing is
 * sent yet); rx_conn_get_reply flushes and returns the next reply, in order.
 * Same reply ownership as rx_conn_command. */
RX_EXTERN int rx_conn_append(rx_conn *c, int argc, const char *const *argv,
                             const size_t *argvlen);
RX_EXTERN int rx_conn_get_reply(rx_conn *c, rx_reply **reply);

/* Publishes message on channel. *receivers (may be NULL) gets the number of
 * clients that received it. Returns 0 or a negative code. */
RX_EXTERN int rx_conn_publish(rx_conn *c, const char *channel, size_t channel_len,
                              const char *message, size_t message_len,
                              long long *receivers);

/* Makes the current or next blocking wait of c return RX_WOKEN. Safe from any
 * thread and from a signal handler. */
RX_EXTERN void rx_conn_wakeup(rx_conn *c);

/* The last error's code and message on this handle ("" when none). The string
 * is owned by the handle and valid until the next call on it. */
RX_EXTERN int rx_conn_err(const rx_conn *c);
RX_EXTERN const char *rx_conn_errstr(const rx_conn *c);

/* The URL with any password replaced by "***", for logs and reprs. Writes at
 * most buf_len bytes including the NUL; returns buf. */
RX_EXTERN const char *rx_conn_describe(const rx_conn *c, char *buf, size_t buf_len);

/* Same for a URL string that was never parsed into a handle. */
RX_EXTERN const char *rx_url_redact(const char *url, char *buf, size_t buf_len);

#ifdef __cplusplus
}
#endif

#endif
