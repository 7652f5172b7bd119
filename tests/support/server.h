/* server.h — real redis-server processes for the C tests.
 *
 * Every helper here uses plain sockets and the openssl command-line tool,
 * never reactis code, so a bug in the library cannot hide behind a bug in
 * its own test setup.
 *
 * Each server gets free loopback ports, its own temporary directory (under
 * rxt_tmp_root()) holding its log file and unix socket, and no persistence.
 * Servers never outlive the test: every started server is registered and
 * killed by an atexit handler and by handlers for fatal signals, and the
 * child asks the kernel (PR_SET_PDEATHSIG) to kill it when the test process
 * dies in any other way (SIGKILL, a sanitizer's _exit, a ctest timeout).
 * That last guard is tied to the thread that started the server: start
 * servers from the main thread, or from a thread that outlives them.
 *
 * The functions are meant for one thread (the test's main thread).
 */
#ifndef REACTIS_TEST_SERVER_H
#define REACTIS_TEST_SERVER_H

#include <stddef.h>

typedef struct rxt_server {
  int pid;             /* child pid, 0 when not running */
  int port;            /* TCP port (plain), 0 if none */
  int tls_port;        /* TLS port, 0 if none */
  char dir[512];       /* its own temp working directory (dir, logfile, unix socket) */
  char unix_path[600]; /* unix socket path (always configured: dir/redis.sock) */
  char url[700];       /* "redis://127.0.0.1:PORT" ("" for a TLS-only server) */
  char tls_url[700];   /* "rediss://localhost:TLS_PORT" ("" without TLS); the CA is dir/ca.crt */
  /* private: the argv used, so restart can reuse it */
  char **argv_;        /* NULL-terminated, malloc'd strings */
  long log_offset_;    /* log size when the last start began (for diagnostics) */
} rxt_server;

/* Starts redis-server (binary from $RX_REDIS_SERVER or PATH "redis-server")
 * with --port <free port> --bind 127.0.0.1 --save "" --appendonly no
 * --dir <tmp> --unixsocket <dir>/redis.sock --unixsocketperm 700
 * --logfile <dir>/redis.log, plus the NULL-terminated extra args (e.g.
 * "--requirepass", "pw"; extra_args may be NULL), and waits up to 10 s until
 * it answers PING (-NOAUTH counts as ready). *s needs no initialisation.
 * In extra args, "@DIR@" is replaced by s->dir (the first occurrence per
 * argument), e.g. {"--tls-cert-file", "@DIR@/wronghost.crt", NULL}: later
 * arguments override the defaults above.
 * Returns 0, or -1 after printing why to stderr (with the log's tail). A port
 * taken by someone else between choosing and binding is retried. */
int rxt_server_start(rxt_server *s, const char *const *extra_args);

/* Same, with TLS: generates certificates into s->dir with rxt_certs_make and
 * adds --tls-port <free port> --tls-cert-file/--tls-key-file (server.*),
 * --tls-ca-cert-file ca.crt and --tls-auth-clients no; the plain port is 0
 * unless plain_too. The unix socket is always there (rxt_cmd uses it). */
int rxt_server_start_tls(rxt_server *s, int plain_too, const char *const *extra_args);

void rxt_server_stop(rxt_server *s);    /* SIGTERM (+SIGCONT), wait; SIGKILL after 5 s. Removes nothing. */
void rxt_server_kill(rxt_server *s);    /* SIGKILL + waitpid */
int rxt_server_restart(rxt_server *s);  /* stop if running, start again: same ports, args, dir (retries binding for ~5 s). 0 or -1 */
void rxt_server_pause(rxt_server *s);   /* SIGSTOP: the server hangs, its sockets stay open */
void rxt_server_resume(rxt_server *s);  /* SIGCONT */
void rxt_server_cleanup(rxt_server *s); /* stop if running, rm -rf its dir, free the private parts */

/* Prints the last `lines` lines of the server's log to stderr. */
void rxt_server_log_tail(const rxt_server *s, int lines);

/* Runs one command on the server over a raw socket (the plain port, or the
 * unix socket when there is none) and returns the raw RESP reply text,
 * NUL-terminated and malloc'd (caller frees), or NULL on I/O failure (after
 * printing why). E.g. {"SET", "k", "v", NULL} -> "+OK\r\n". 10 s timeout. */
char *rxt_cmd(rxt_server *s, const char *const *argv);

/* The server's major version (INFO server: redis_version), 0 when unknown.
 * Tests of Redis 7.0 features skip those parts below 7 (scripts/test.sh
 * runs the files that hold such parts on Redis 6.2 too). */
int rxt_server_major(rxt_server *s);

/* The general form: optional AUTH first (user may be NULL; pass NULL for no
 * AUTH; the AUTH reply is dropped), binary-safe arguments (argvlen may be
 * NULL), reply length in *reply_len (may be NULL). */
char *rxt_cmd_ex(rxt_server *s, const char *user, const char *pass, int argc,
                 const char *const *argv, const size_t *argvlen, size_t *reply_len);

/* A raw RESP connection for tests that need to keep one open (a raw
 * subscriber, a client that must stay connected while the server restarts). */
typedef struct rxt_raw {
  int fd;      /* -1 when closed */
  char *buf;   /* received bytes not yet returned */
  size_t len, cap;
  char *last;  /* the reply returned last (freed by the next read/close) */
} rxt_raw;

/* Connects to the plain port (or the unix socket when there is none).
 * 0 or -1. */
int rxt_raw_open(rxt_server *s, rxt_raw *r);
/* Sends one command (argvlen may be NULL). 0 or -1. */
int rxt_raw_send(rxt_raw *r, int argc, const char *const *argv, const size_t *argvlen);
/* Waits up to timeout_ms for one complete reply and returns its raw text
 * (NUL-terminated, owned by r until the next read or close), with its length
 * in *len (may be NULL). NULL on timeout, EOF or error. */
const char *rxt_raw_read(rxt_raw *r, int timeout_ms, size_t *len);
void rxt_raw_close(rxt_raw *r);

/* Splits a flat reply (an array of bulk strings, simple strings and
 * integers, or one such value) into up to max items pointing into text.
 * Returns the number of elements (which may exceed max; only max are
 * stored), or -1 when the text is not a complete flat reply. A nil bulk
 * string gives item NULL, length 0. For ["message", channel, payload]. */
int rxt_resp_flat(const char *text, size_t len, const char **items, size_t *lens, int max);

/* Generates into dir: ca.crt ca.key server.crt server.key (SAN DNS:localhost,
 * IP:127.0.0.1), wronghost.crt wronghost.key (SAN DNS:wrong.example only,
 * same CA), other-ca.crt other-ca.key (an unrelated CA), client.crt client.key
 * (clientAuth, signed by ca). EC P-256 keys. Uses the openssl CLI. 0 or -1. */
int rxt_certs_make(const char *dir);

int rxt_free_port(void);        /* bind port 0 on 127.0.0.1, return the port (-1 on error) */
const char *rxt_tmp_root(void); /* $RX_TEST_TMP or /tmp, created if missing */
long long rxt_ms(void);         /* monotonic ms */
void rxt_sleep_ms(int ms);

#endif
