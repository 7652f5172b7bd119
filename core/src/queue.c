/* queue.c — the reliable delayed queue on Redis Streams.
 *
 * All state changes happen in core/lua/queue.lua (embedded at build time as
 * rx__lua_queue), one script with one operation per call, run with EVALSHA
 * and reloaded once on NOSCRIPT (after SCRIPT FLUSH, a restart without the
 * script cache, or a failover). This file builds the calls, parses the
 * replies, and does the one thing a script cannot: wait.
 *
 * Fetching is one round trip: the fetch script (reclaim, promote) and an
 * XREADGROUP pipelined behind it. Reading outside the script avoids turning
 * every delivery into Lua tables and back, which halved the server's cost
 * per message. Whatever that XREADGROUP delivered is always handed to the
 * caller, even when the script in front of it failed.
 *
 * Waiting. A consumer that finds nothing due waits until the next due time
 * (which the fetch script returns), a cap, or a hint on the wake stream
 * rx:{NAME}:w that producers write when they schedule a new earliest
 * message. The wait is an XREAD BLOCK on the wake stream, on a second
 * connection, with the deadline kept on the client:
 *   - XREAD has no side effects, so giving up on it (a wakeup, a signal, a
 *     due time) loses nothing. An interrupted XREADGROUP BLOCK would leave
 *     the entries of its late reply in this consumer's PEL, unseen, until
 *     the visibility timeout reclaims them; we never block in XREADGROUP.
 *   - Redis times out blocked commands only on its cron tick (100 ms at the
 *     default hz 10), far too coarse for "on time". The client's own poll()
 *     deadline ends the wait at the due time to the millisecond; the XREAD
 *     stays outstanding on the waiter connection and is reused by the next
 *     wait (its reply, whenever it comes, only means "look again"). The
 *     command connection is never behind a blocked command.
 */
#include "rx_private.h"
#include "reactis/queue.h"
#define RX__QP_IMPL /* this file is one partition of a queue: see rx_queue.h */
#include "rx_queue.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const char rx__lua_queue[];
extern const size_t rx__lua_queue_len;

/* ---------------------------------------------------------------- handle */

enum { K_Z, K_M, K_S, K_D, K_W, K_I, K_L, K_COUNT };
static const char *const key_suffix[K_COUNT] = {"z", "m", "s", "d", "w", "i", "l"};

#define Q_NAME_MAX 200
#define Q_SCRIPT_CHUNK 1000 /* messages per schedule script call */

typedef struct batch_item {
  char *id; /* owned; generated ids are made at add time */
  size_t id_len;
  char *payload; /* owned */
  size_t payload_len;
  long long when_ms;
  int flags;
  int outcome;
  long long due_ms;
} batch_item;

struct rx_queue {
  rx_conn *c; /* commands and scripts */
  rx_conn *w; /* the waiter: XREAD BLOCK on the wake stream */
  int w_outstanding;          /* an XREAD was sent, its reply not read yet */
  long long w_sent_ms;        /* monotonic ms it was sent */
  char *name;
  char *keys[K_COUNT];
  size_t key_lens[K_COUNT];
  char sha[41];

  /* options */
  long long vt_ms, backoff_base_ms, backoff_max_ms, block_cap_ms;
  long long max_attempts, max_payload, dead_max;
  char consumer[128];
  char group[128];

  int connected_once; /* the first-connect checks ran */
  int fetched;        /* this handle fetched as a consumer */
  char warning[256];

  int err;
  char errstr[512];

  /* the last fetch */
  rx_reply *fetch_reply;
  rx_job *jobs;
  size_t njobs, jobs_cap;
  /* the last dead-letter listing */
  rx_reply *dead_reply;
  rx_job *dead;
  size_t ndead, dead_cap;
  /* the batch */
  batch_item *batch;
  size_t nbatch, batch_cap;
  int batch_sent;
  /* for queue_cluster.c (rx_queue.h) */
  int borrowed;         /* made without a URL: c is lent, w is NULL */
  long long hint_now, hint_next_due;
  char hint_wid[64];    /* of the last fetch */
};

static int q_seterr(rx_queue *q, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int q_seterr(rx_queue *q, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q->errstr, sizeof q->errstr, fmt, ap);
  va_end(ap);
  q->err = code;
  return code;
}

/* Copies the connection's error onto the queue. */
static int q_connerr(rx_queue *q, rx_conn *c, int code) {
  const char *e = rx_conn_errstr(c);
  return q_seterr(q, code, "queue '%s': %s", q->name, e && *e ? e : rx_strerror(code));
}

static void q_clearerr(rx_queue *q) {
  q->err = 0;
  q->errstr[0] = '\0';
}

static void gen_id(char *out /* RX_QUEUE_GEN_ID_SIZE */) {
  static const char al[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint64_t a = rx__random(), b = rx__random();
  for (int i = 0; i < 12; i++) {
    uint64_t *x = i < 6 ? &a : &b;
    out[i] = al[*x % 62];
    *x /= 62;
  }
  out[12] = '\0';
}

static void script_sha(char out[41]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  static const char hex[] = "0123456789abcdef";
  if (EVP_Digest(rx__lua_queue, rx__lua_queue_len, md, &mdlen, EVP_sha1(), NULL) != 1 ||
      mdlen != 20) {
    /* Cannot happen with a working libcrypto; NOSCRIPT recovery loads it. */
    memset(out, '0', 40);
  } else {
    for (unsigned i = 0; i < 20; i++) {
      out[2 * i] = hex[md[i] >> 4];
      out[2 * i + 1] = hex[md[i] & 15];
    }
  }
  out[40] = '\0';
}

rx_queue *rx_queue_new(const char *url, const char *name, char *errstr, size_t errstr_len) {
  if (errstr && errstr_len) errstr[0] = '\0';
  if (!name || !*name || strlen(name) > Q_NAME_MAX || strchr(name, '{') || strchr(name, '}')) {
    rx__fmt(errstr, errstr_len,
            "invalid queue name: 1..%d bytes without '{' or '}' are allowed", Q_NAME_MAX);
    return NULL;
  }
  rx_queue *q = rx__calloc(1, sizeof *q);
  if (!q) {
    rx__fmt(errstr, errstr_len, "out of memory");
    return NULL;
  }
  if (url) {
    q->c = rx_conn_new(url, errstr, errstr_len);
    if (!q->c) goto fail_quiet;
    q->w = rx_conn_new(url, errstr, errstr_len);
    if (!q->w) goto fail_quiet;
  } else {
    q->borrowed = 1; /* queue_cluster.c lends c before each call */
  }
  q->name = rx__strdup(name);
  if (!q->name) goto fail;
  for (int k = 0; k < K_COUNT; k++) {
    size_t n = strlen(name) + 8;
    q->keys[k] = rx__malloc(n);
    if (!q->keys[k]) goto fail;
    rx__fmt(q->keys[k], n, "rx:{%s}:%s", name, key_suffix[k]);
    q->key_lens[k] = strlen(q->keys[k]);
  }
  script_sha(q->sha);
  q->vt_ms = 30000;
  q->max_attempts = 10;
  q->max_payload = 1048576;
  q->dead_max = 10000;
  q->backoff_base_ms = 1000;
  q->backoff_max_ms = 3600000;
  q->block_cap_ms = 2000;
  char host[64];
  if (gethostname(host, sizeof host) != 0) strcpy(host, "host");
  host[sizeof host - 1] = '\0';
  char rnd[RX_QUEUE_GEN_ID_SIZE];
  gen_id(rnd);
  rnd[6] = '\0';
  rx__fmt(q->consumer, sizeof q->consumer, "%s:%ld:%s", host, (long)getpid(), rnd);
  strcpy(q->group, "workers");
  return q;
fail:
  rx__fmt(errstr, errstr_len, "out of memory");
fail_quiet:
  rx_queue_free(q);
  return NULL;
}

static void free_batch(rx_queue *q) {
  for (size_t i = 0; i < q->nbatch; i++) {
    rx__free(q->batch[i].id);
    rx__free(q->batch[i].payload);
  }
  q->nbatch = 0;
  q->batch_sent = 0;
}

static int eval(rx_queue *q, int nargs, const char *const *args, const size_t *lens,
                rx_reply **out);

void rx_queue_free(rx_queue *q) {
  if (!q) return;
  /* A consumer that holds nothing leaves the group (bounded wait). */
  if (q->fetched && q->c && rx_conn_is_connected(q->c) && q->c->pending == 0) {
    int saved = q->c->opts.timeout_ms;
    if (saved <= 0 || saved > 1000) q->c->opts.timeout_ms = 1000;
    const char *a[3] = {"leave", q->group, q->consumer};
    rx_reply *r = NULL;
    if (eval(q, 3, a, NULL, &r) == RX_OK) rx_reply_free(r);
    q->c->opts.timeout_ms = saved;
  }
  if (!q->borrowed) rx_conn_free(q->c);
  rx_conn_free(q->w);
  for (int k = 0; k < K_COUNT; k++) rx__free(q->keys[k]);
  rx__free(q->name);
  rx_reply_free(q->fetch_reply);
  rx__free(q->jobs);
  rx_reply_free(q->dead_reply);
  rx__free(q->dead);
  free_batch(q);
  rx__free(q->batch);
  rx__free(q);
}

static int parse_ll(const char *v, long long min, long long max, long long *out) {
  if (!v || !*v) return RX_EINVAL;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || *end || x < min || x > max) return RX_EINVAL;
  *out = x;
  return RX_OK;
}

int rx_queue_set(rx_queue *q, const char *name, const char *value) {
  if (!q || !name || !value) return RX_EINVAL;
  q_clearerr(q);
  struct {
    const char *name;
    long long *p;
    long long min, max;
  } num[] = {
      {"visibility_timeout_ms", &q->vt_ms, 10, 7LL * 24 * 3600 * 1000},
      {"max_attempts", &q->max_attempts, 1, 1000000},
      {"max_payload", &q->max_payload, 0, 512LL * 1024 * 1024 - 64},
      {"dead_max", &q->dead_max, 1, 1000000000},
      {"backoff_base_ms", &q->backoff_base_ms, 0, 365LL * 24 * 3600 * 1000},
      {"backoff_max_ms", &q->backoff_max_ms, 0, 365LL * 24 * 3600 * 1000},
      {"block_cap_ms", &q->block_cap_ms, 1, 600000},
  };
  for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
    if (strcmp(name, num[i].name)) continue;
    long long v;
    if (parse_ll(value, num[i].min, num[i].max, &v) != RX_OK)
      return q_seterr(q, RX_EINVAL, "option %s: \"%s\" is not an integer in %lld..%lld", name,
                      value, num[i].min, num[i].max);
    *num[i].p = v;
    return RX_OK;
  }
  if (!strcmp(name, "consumer") || !strcmp(name, "group")) {
    char *dst = name[0] == 'c' ? q->consumer : q->group;
    size_t n = strlen(value);
    if (n == 0 || n >= sizeof q->consumer)
      return q_seterr(q, RX_EINVAL, "option %s: 1..%zu bytes", name, sizeof q->consumer - 1);
    memcpy(dst, value, n + 1);
    return RX_OK;
  }
  if (q->borrowed) return q_seterr(q, RX_EURL, "not a queue option: %s", name);
  /* Connection options go to both connections. */
  int rc = rx_conn_set(q->c, name, value);
  if (rc != RX_OK) return q_connerr(q, q->c, rc);
  rc = rx_conn_set(q->w, name, value);
  if (rc != RX_OK) return q_connerr(q, q->w, rc);
  return RX_OK;
}

const char *rx_queue_name(const rx_queue *q) { return q ? q->name : ""; }
int rx_queue_err(const rx_queue *q) { return q ? q->err : RX_EINVAL; }
const char *rx_queue_errstr(const rx_queue *q) { return q ? q->errstr : ""; }
const char *rx_queue_warning(const rx_queue *q) { return q ? q->warning : ""; }
rx_conn *rx_queue_conn(rx_queue *q) { return q ? q->c : NULL; }
void rx_queue_wakeup(rx_queue *q) {
  if (q) rx_conn_wakeup(q->w);
}

/* ---------------------------------------------------------------- calls */

/* Reads the next reply on the command connection. A wakeup or a signal
 * does not end this wait: the reply of a script that moved messages must be
 * read, or those deliveries would sit unseen until reclaimed. Only the
 * command timeout (or a failed link) ends it. */
static int read_reply(rx_queue *q, rx_reply **r) {
  rx_conn *c = q->c;
  *r = NULL;
  long long deadline = rx__deadline(c->opts.timeout_ms > 0 ? c->opts.timeout_ms : -1);
  for (;;) {
    int rc = c->out.len ? rx__conn_flush(c, deadline) : RX_OK;
    if (rc == RX_OK) rc = rx__conn_read(c, r, deadline);
    if (rc == RX_OK) {
      c->pending--;
      return RX_OK;
    }
    if (rc == RX_WOKEN || rc == RX_EINTR) continue;
    if (rc == RX_TIMEOUT) {
      rx_conn_close(c);
      return q_seterr(q, RX_ETIMEDOUT, "queue '%s': the server did not reply within %d ms",
                      q->name, c->opts.timeout_ms);
    }
    return q_connerr(q, c, rc);
  }
}

/* Runs the first-connect checks once: warn when the server may evict the
 * queue's keys under memory pressure (INFO works where CONFIG is
 * forbidden). Failures here are ignored: they are only a warning. */
static void first_connect(rx_queue *q) {
  if (q->connected_once) return;
  q->connected_once = 1;
  const char *a[2] = {"INFO", "memory"};
  rx_reply *r = NULL;
  if (rx_conn_command(q->c, &r, 2, a, NULL) != RX_OK) return;
  if (r->type == RX_REPLY_STRING || r->type == RX_REPLY_STATUS) {
    const char *p = strstr(r->str, "maxmemory_policy:");
    if (p) {
      p += strlen("maxmemory_policy:");
      size_t n = strcspn(p, "\r\n");
      if (n >= 7 && !strncmp(p, "allkeys", 7))
        rx__fmt(q->warning, sizeof q->warning,
                "queue '%s': the server's maxmemory-policy is %.*s: it may evict the "
                "queue's keys and lose messages; use noeviction or a volatile-* policy",
                q->name, (int)n, p);
    }
  }
  rx_reply_free(r);
}

/* Appends EVALSHA (or EVAL when load is set) for one operation. */
static int append_eval(rx_queue *q, int nargs, const char *const *args, const size_t *lens) {
  int argc = 3 + K_COUNT + nargs;
  /* Most calls (a single schedule, fetch, ack of a few) fit on the stack:
   * two allocations less per call on the one-touch path. */
  enum { SMALL = 32 };
  const char *av_small[SMALL];
  size_t al_small[SMALL];
  const char **av = av_small;
  size_t *al = al_small;
  if (argc > SMALL) {
    av = rx__malloc(sizeof *av * (size_t)argc);
    al = rx__malloc(sizeof *al * (size_t)argc);
    if (!av || !al) {
      rx__free(av);
      rx__free(al);
      return q_seterr(q, RX_ENOMEM, "out of memory");
    }
  }
  av[0] = "EVALSHA";
  al[0] = 7;
  av[1] = q->sha;
  al[1] = 40;
  av[2] = "7";
  al[2] = 1;
  for (int k = 0; k < K_COUNT; k++) {
    av[3 + k] = q->keys[k];
    al[3 + k] = q->key_lens[k];
  }
  for (int i = 0; i < nargs; i++) {
    av[3 + K_COUNT + i] = args[i];
    al[3 + K_COUNT + i] = lens ? lens[i] : strlen(args[i]);
  }
  int rc = rx_conn_append(q->c, argc, av, al);
  if (av != av_small) {
    rx__free(av);
    rx__free(al);
  }
  if (rc != RX_OK) return q_connerr(q, q->c, rc);
  return RX_OK;
}

static int is_noscript(const rx_reply *r) {
  return r && r->type == RX_REPLY_ERROR && r->len >= 8 && !memcmp(r->str, "NOSCRIPT", 8);
}

static int load_script(rx_queue *q) {
  const char *a[3] = {"SCRIPT", "LOAD", rx__lua_queue};
  size_t l[3] = {6, 4, rx__lua_queue_len};
  rx_reply *r = NULL;
  int rc = rx_conn_call(q->c, &r, 3, a, l);
  if (rc != RX_OK) return q_connerr(q, q->c, rc);
  if (r->type == RX_REPLY_STRING && r->len == 40) memcpy(q->sha, r->str, 40);
  rx_reply_free(r);
  return RX_OK;
}

/* Turns an error reply into a status with a clear message. WRONGTYPE is
 * looked into: the message names the key and what it holds. */
static int reply_error(rx_queue *q, const rx_reply *r) {
  int code = rx__reply_error_code(r);
  if (code == RX_EREPLY && strstr(r->str, "WRONGTYPE")) code = RX_EWRONGTYPE;
  if (code == RX_EWRONGTYPE) {
    static const char *const want[K_COUNT] = {"zset", "hash", "stream", "stream",
                                               "stream", "hash", "hash"};
    for (int k = 0; k < K_COUNT; k++) {
      const char *a[2] = {"TYPE", q->keys[k]};
      size_t l[2] = {4, q->key_lens[k]};
      rx_reply *t = NULL;
      if (rx_conn_command(q->c, &t, 2, a, l) != RX_OK) break;
      int bad = (t->type == RX_REPLY_STATUS || t->type == RX_REPLY_STRING) &&
                strcmp(t->str, "none") && strcmp(t->str, want[k]);
      if (bad) {
        q_seterr(q, RX_EWRONGTYPE,
                 "queue '%s': key %s holds a %s, but the queue needs a %s there (another "
                 "program uses this name?)",
                 q->name, q->keys[k], t->str, want[k]);
        rx_reply_free(t);
        return RX_EWRONGTYPE;
      }
      rx_reply_free(t);
    }
  }
  return q_seterr(q, code, "queue '%s': %.*s", q->name, (int)(r->len > 300 ? 300 : r->len),
                  r->str);
}

/* Runs one script operation and returns its (non-error) reply. */
static int eval(rx_queue *q, int nargs, const char *const *args, const size_t *lens,
                rx_reply **out) {
  *out = NULL;
  if (q->c->pending) return q_seterr(q, RX_ESTATE, "queue '%s': replies pending", q->name);
  if (!rx_conn_is_connected(q->c)) {
    int rc = rx_conn_connect(q->c);
    if (rc != RX_OK) return q_connerr(q, q->c, rc);
  }
  first_connect(q);
  for (int attempt = 0;; attempt++) {
    int rc = append_eval(q, nargs, args, lens);
    if (rc == RX_OK) rc = read_reply(q, out);
    if (rc != RX_OK) return rc;
    if (is_noscript(*out) && attempt == 0) {
      rx_reply_free(*out);
      *out = NULL;
      rc = load_script(q);
      if (rc != RX_OK) return rc;
      continue;
    }
    if ((*out)->type == RX_REPLY_ERROR) {
      rc = reply_error(q, *out);
      rx_reply_free(*out);
      *out = NULL;
      return rc;
    }
    return RX_OK;
  }
}

/* 1 when r is an XREADGROUP reply that delivered something. */
static int delivered_any(const rx_reply *r) {
  return r && r->type == RX_REPLY_ARRAY && r->elements == 1 &&
         r->element[0]->type == RX_REPLY_ARRAY && r->element[0]->elements == 2 &&
         r->element[0]->element[1]->type == RX_REPLY_ARRAY &&
         r->element[0]->element[1]->elements > 0;
}

/* Runs a script operation followed by XREADGROUP in the same round trip
 * and returns both raw replies (either may be an error reply). The
 * XREADGROUP runs even when the script fails, and what it delivered sits in
 * this consumer's PEL, so its reply is never thrown away: on NOSCRIPT the
 * pair is sent again (after loading the script) only when the XREADGROUP
 * delivered nothing. */
static int eval_pipelined(rx_queue *q, int nargs, const char *const *args, const size_t *lens,
                          int xargc, const char *const *xargv, rx_reply **out,
                          rx_reply **xout) {
  *out = *xout = NULL;
  if (q->c->pending) return q_seterr(q, RX_ESTATE, "queue '%s': replies pending", q->name);
  if (!rx_conn_is_connected(q->c)) {
    int rc = rx_conn_connect(q->c);
    if (rc != RX_OK) return q_connerr(q, q->c, rc);
  }
  first_connect(q);
  for (int attempt = 0;; attempt++) {
    int rc = append_eval(q, nargs, args, lens);
    if (rc == RX_OK) {
      rc = rx_conn_append(q->c, xargc, xargv, NULL);
      if (rc != RX_OK) {
        rx_conn_close(q->c); /* the script is appended: drop both */
        return q_connerr(q, q->c, rc);
      }
    }
    if (rc == RX_OK) rc = read_reply(q, out);
    if (rc == RX_OK) {
      rc = read_reply(q, xout);
      if (rc != RX_OK) {
        rx_reply_free(*out);
        *out = NULL;
      }
    }
    if (rc != RX_OK) return rc;
    if (is_noscript(*out) && attempt == 0) {
      rc = load_script(q);
      if (rc != RX_OK || delivered_any(*xout)) return RX_OK; /* caller sees NOSCRIPT */
      rx_reply_free(*out);
      rx_reply_free(*xout);
      *out = *xout = NULL;
      continue;
    }
    return RX_OK;
  }
}

static long long r_int(const rx_reply *r) {
  long long v = 0;
  if (r && rx__reply_int(r, &v) == RX_OK) return v;
  return 0;
}

static int proto(rx_queue *q, const char *what) {
  return q_seterr(q, RX_EPROTO, "queue '%s': unexpected reply to %s", q->name, what);
}

/* ---------------------------------------------------------------- producing */

static int check_id(rx_queue *q, const char *id, size_t id_len) {
  if (id && id_len > RX_QUEUE_ID_MAX)
    return q_seterr(q, RX_EINVAL, "queue '%s': message id of %zu bytes (at most %d)", q->name,
                    id_len, RX_QUEUE_ID_MAX);
  return RX_OK;
}

/* Due times and delays live on the server as doubles (sorted-set scores,
 * Lua numbers), exact only up to 2^53, and are read back as decimal
 * integers. A time past the end of year 9999 is a mistake (an overflow,
 * seconds multiplied twice) and would come back rounded, as a negative
 * number, or in a form a delivery cannot be read from: refuse it. */
#define Q_WHEN_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z, epoch ms */

static int check_when(rx_queue *q, long long when_ms, const char *what) {
  if (when_ms > Q_WHEN_MAX || when_ms < -Q_WHEN_MAX)
    return q_seterr(q, RX_EINVAL,
                    "queue '%s': %s of %lld ms is out of range (-%lld..%lld: the end of year "
                    "9999)",
                    q->name, what, when_ms, Q_WHEN_MAX, Q_WHEN_MAX);
  return RX_OK;
}

static int check_payload(rx_queue *q, const char *payload, size_t len) {
  if (!payload && len) return q_seterr(q, RX_EINVAL, "payload is NULL");
  if ((long long)len > q->max_payload)
    return q_seterr(q, RX_ETOOBIG,
                    "queue '%s': payload of %zu bytes is over the limit of %lld bytes "
                    "(option max_payload)",
                    q->name, len, q->max_payload);
  return RX_OK;
}

int rx_queue_batch_add(rx_queue *q, const char *id, size_t id_len, const char *payload,
                       size_t payload_len, long long when_ms, int flags) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (q->batch_sent) free_batch(q);
  int rc = check_id(q, id, id_len);
  if (rc == RX_OK) rc = check_payload(q, payload, payload_len);
  if (rc == RX_OK) rc = check_when(q, when_ms, (flags & RX_SCHED_AT) ? "due time" : "delay");
  if (rc != RX_OK) return rc;
  if (q->nbatch == q->batch_cap) {
    size_t cap = q->batch_cap ? q->batch_cap * 2 : 64;
    batch_item *nb = rx__realloc(q->batch, cap * sizeof *nb);
    if (!nb) return q_seterr(q, RX_ENOMEM, "out of memory");
    q->batch = nb;
    q->batch_cap = cap;
  }
  batch_item *b = &q->batch[q->nbatch];
  memset(b, 0, sizeof *b);
  if (id && id_len) {
    b->id = rx__memdup(id, id_len);
    b->id_len = id_len;
  } else {
    b->id = rx__malloc(RX_QUEUE_GEN_ID_SIZE);
    if (b->id) gen_id(b->id);
    b->id_len = 12;
  }
  b->payload = rx__memdup(payload ? payload : "", payload_len);
  if (!b->id || !b->payload) {
    rx__free(b->id);
    rx__free(b->payload);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  b->payload_len = payload_len;
  b->when_ms = when_ms;
  b->flags = flags;
  q->nbatch++;
  return RX_OK;
}

size_t rx_queue_batch_count(const rx_queue *q) { return q ? q->nbatch : 0; }

void rx_queue_batch_clear(rx_queue *q) {
  if (q) free_batch(q);
}

/* Appends the schedule call for items [from, to), all with one replace flag. */
static int append_schedule(rx_queue *q, size_t from, size_t to, int replace,
                           char (*nums)[24]) {
  size_t n = to - from;
  int nargs = (int)(2 + 4 * n);
  const char **a = rx__malloc(sizeof *a * (size_t)nargs);
  size_t *l = rx__malloc(sizeof *l * (size_t)nargs);
  if (!a || !l) {
    rx__free(a);
    rx__free(l);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  a[0] = "schedule";
  l[0] = 8;
  a[1] = replace ? "1" : "0";
  l[1] = 1;
  for (size_t i = 0; i < n; i++) {
    batch_item *b = &q->batch[from + i];
    snprintf(nums[i], 24, "%lld", b->when_ms);
    a[2 + 4 * i] = b->id;
    l[2 + 4 * i] = b->id_len;
    a[3 + 4 * i] = (b->flags & RX_SCHED_AT) ? "1" : "0";
    l[3 + 4 * i] = 1;
    a[4 + 4 * i] = nums[i];
    l[4 + 4 * i] = strlen(nums[i]);
    a[5 + 4 * i] = b->payload;
    l[5 + 4 * i] = b->payload_len;
  }
  int rc = append_eval(q, nargs, a, l);
  rx__free(a);
  rx__free(l);
  return rc;
}

/* One script call takes items with the same replace flag, up to a chunk. */
static size_t chunk_end(const rx_queue *q, size_t from) {
  size_t to = from + 1;
  int rep = q->batch[from].flags & RX_SCHED_REPLACE;
  while (to < q->nbatch && to - from < Q_SCRIPT_CHUNK &&
         (q->batch[to].flags & RX_SCHED_REPLACE) == rep)
    to++;
  return to;
}

static int store_results(rx_queue *q, size_t from, size_t to, const rx_reply *r) {
  if (r->type != RX_REPLY_ARRAY || r->elements != 2 * (to - from)) return proto(q, "schedule");
  for (size_t i = from; i < to; i++) {
    q->batch[i].outcome = (int)r_int(r->element[2 * (i - from)]);
    q->batch[i].due_ms = r_int(r->element[2 * (i - from) + 1]);
  }
  return RX_OK;
}

int rx_queue_batch_send(rx_queue *q) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (q->nbatch == 0) {
    q->batch_sent = 1;
    return RX_OK;
  }
  if (q->c->pending) return q_seterr(q, RX_ESTATE, "queue '%s': replies pending", q->name);
  if (!rx_conn_is_connected(q->c)) {
    int rc = rx_conn_connect(q->c);
    if (rc != RX_OK) return q_connerr(q, q->c, rc);
  }
  first_connect(q);
  char(*nums)[24] = rx__malloc(sizeof *nums * Q_SCRIPT_CHUNK);
  size_t nchunks = 0;
  for (size_t f = 0; f < q->nbatch; f = chunk_end(q, f)) nchunks++;
  size_t *starts = rx__malloc(sizeof *starts * (nchunks + 1));
  unsigned char *done = rx__calloc(nchunks, 1);
  int rc = RX_OK;
  if (!nums || !starts || !done) {
    rc = q_seterr(q, RX_ENOMEM, "out of memory");
    goto out;
  }
  nchunks = 0;
  for (size_t f = 0; f < q->nbatch; f = chunk_end(q, f)) starts[nchunks++] = f;
  starts[nchunks] = q->nbatch;
  for (int attempt = 0; attempt < 2; attempt++) {
    /* Pipeline every chunk not done yet, then read all the replies. */
    for (size_t k = 0; k < nchunks && rc == RX_OK; k++) {
      if (done[k]) continue;
      rc = append_schedule(q, starts[k], starts[k + 1],
                           (q->batch[starts[k]].flags & RX_SCHED_REPLACE) != 0, nums);
    }
    if (rc != RX_OK) {
      /* Nothing was written yet: drop what was appended. */
      rx_conn_close(q->c);
      goto out;
    }
    int noscript = 0, first_err = RX_OK;
    for (size_t k = 0; k < nchunks; k++) {
      if (done[k]) continue;
      rx_reply *r = NULL;
      int r_rc = read_reply(q, &r);
      if (r_rc != RX_OK) {
        rc = r_rc;
        goto out;
      }
      if (is_noscript(r)) {
        noscript = 1;
      } else if (r->type == RX_REPLY_ERROR) {
        if (first_err == RX_OK) first_err = reply_error(q, r);
        done[k] = 1;
      } else {
        int s = store_results(q, starts[k], starts[k + 1], r);
        if (s != RX_OK && first_err == RX_OK) first_err = s;
        done[k] = 1;
      }
      rx_reply_free(r);
    }
    if (first_err != RX_OK) {
      rc = first_err;
      goto out;
    }
    if (!noscript) break;
    if (attempt == 1) {
      rc = q_seterr(q, RX_ENOSCRIPT, "queue '%s': the server keeps forgetting the script",
                    q->name);
      goto out;
    }
    rc = load_script(q);
    if (rc != RX_OK) goto out;
  }
  q->batch_sent = 1;
out:
  rx__free(nums);
  rx__free(starts);
  rx__free(done);
  return rc;
}

int rx_queue_batch_result(const rx_queue *q, size_t i, int *outcome, const char **id,
                          size_t *id_len, long long *due_ms) {
  if (!q || !q->batch_sent || i >= q->nbatch) return RX_EINVAL;
  const batch_item *b = &q->batch[i];
  if (outcome) *outcome = b->outcome;
  if (id) *id = b->id;
  if (id_len) *id_len = b->id_len;
  if (due_ms) *due_ms = b->due_ms;
  return RX_OK;
}

int rx_queue_schedule(rx_queue *q, const char *id, size_t id_len, const char *payload,
                      size_t payload_len, long long when_ms, int flags, char *out_id,
                      size_t out_id_len, int *outcome, long long *due_ms) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  int rc = check_id(q, id, id_len);
  if (rc == RX_OK) rc = check_payload(q, payload, payload_len);
  if (rc == RX_OK) rc = check_when(q, when_ms, (flags & RX_SCHED_AT) ? "due time" : "delay");
  if (rc != RX_OK) return rc;
  char gen[RX_QUEUE_GEN_ID_SIZE];
  if (!id || !id_len) {
    gen_id(gen);
    id = gen;
    id_len = 12;
  }
  char when[24];
  snprintf(when, sizeof when, "%lld", when_ms);
  const char *a[6] = {"schedule", (flags & RX_SCHED_REPLACE) ? "1" : "0", id,
                      (flags & RX_SCHED_AT) ? "1" : "0", when, payload ? payload : ""};
  size_t l[6] = {8, 1, id_len, 1, strlen(when), payload_len};
  rx_reply *r = NULL;
  rc = eval(q, 6, a, l, &r);
  if (rc != RX_OK) return rc;
  if (r->type != RX_REPLY_ARRAY || r->elements != 2) {
    rx_reply_free(r);
    return proto(q, "schedule");
  }
  if (outcome) *outcome = (int)r_int(r->element[0]);
  if (due_ms) *due_ms = r_int(r->element[1]);
  rx_reply_free(r);
  if (out_id && out_id_len) {
    size_t n = id_len < out_id_len - 1 ? id_len : out_id_len - 1;
    memcpy(out_id, id, n);
    out_id[n] = '\0';
  }
  return RX_OK;
}

int rx_queue_cancel(rx_queue *q, const char *id, size_t id_len) {
  if (!q || !id || !id_len) return q ? q_seterr(q, RX_EINVAL, "no message id") : RX_EINVAL;
  q_clearerr(q);
  const char *a[2] = {"cancel", id};
  size_t l[2] = {6, id_len};
  rx_reply *r = NULL;
  int rc = eval(q, 2, a, l, &r);
  if (rc != RX_OK) return rc;
  long long v = r_int(r);
  rx_reply_free(r);
  return v == 1 ? RX_OK : RX_NOMATCH;
}

int rx_queue_reschedule(rx_queue *q, const char *id, size_t id_len, long long when_ms,
                        int flags) {
  if (!q || !id || !id_len) return q ? q_seterr(q, RX_EINVAL, "no message id") : RX_EINVAL;
  q_clearerr(q);
  int rc = check_when(q, when_ms, (flags & RX_SCHED_AT) ? "due time" : "delay");
  if (rc != RX_OK) return rc;
  char when[24];
  snprintf(when, sizeof when, "%lld", when_ms);
  const char *a[4] = {"reschedule", id, (flags & RX_SCHED_AT) ? "1" : "0", when};
  size_t l[4] = {10, id_len, 1, strlen(when)};
  rx_reply *r = NULL;
  rc = eval(q, 4, a, l, &r);
  if (rc != RX_OK) return rc;
  long long v = r->type == RX_REPLY_ARRAY && r->elements >= 1 ? r_int(r->element[0]) : 0;
  rx_reply_free(r);
  return v == 1 ? RX_OK : RX_NOMATCH;
}

int rx_queue_run_now(rx_queue *q, const char *id, size_t id_len) {
  return rx_queue_reschedule(q, id, id_len, 0, 0);
}

/* ---------------------------------------------------------------- jobs */

static const rx_reply *field(const rx_reply *kv, const char *name) {
  if (!kv || kv->type != RX_REPLY_ARRAY) return NULL;
  size_t n = strlen(name);
  for (size_t i = 0; i + 1 < kv->elements; i += 2) {
    const rx_reply *k = kv->element[i];
    if (k->type == RX_REPLY_STRING && k->len == n && !memcmp(k->str, name, n))
      return kv->element[i + 1];
  }
  return NULL;
}

static void set_str(const rx_reply *v, const char **p, size_t *len) {
  if (v && v->type == RX_REPLY_STRING) {
    *p = v->str;
    *len = v->len;
  } else {
    *p = "";
    *len = 0;
  }
}

/* Fills job from a stream entry {entry id, {field, value...}}. dead: the
 * entry is a dead letter (attempts, at) rather than a delivery. */
static int fill_job(rx_job *j, const rx_reply *e, long long now, int dead) {
  memset(j, 0, sizeof *j);
  if (e->type != RX_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != RX_REPLY_STRING ||
      e->element[0]->len >= RX_QUEUE_TOKEN_SIZE)
    return RX_EPROTO;
  memcpy(j->token, e->element[0]->str, e->element[0]->len + 1);
  const rx_reply *kv = e->element[1];
  set_str(field(kv, "id"), &j->id, &j->id_len);
  set_str(field(kv, "payload"), &j->payload, &j->payload_len);
  set_str(field(kv, "err"), &j->error, &j->error_len);
  if (dead) {
    j->failures = (int)r_int(field(kv, "fail"));
    j->crashes = (int)r_int(field(kv, "crash"));
    j->due_ms = r_int(field(kv, "due"));
    j->enqueued_ms = r_int(field(kv, "enq"));
    j->attempt = (int)r_int(field(kv, "attempts"));
    j->delivered_ms = r_int(field(kv, "at"));
  } else {
    /* meta: "due enq attempt fail crash" */
    const rx_reply *m = field(kv, "meta");
    if (!m || m->type != RX_REPLY_STRING ||
        sscanf(m->str, "%lld %lld %d %d %d", &j->due_ms, &j->enqueued_ms, &j->attempt,
               &j->failures, &j->crashes) != 5)
      return RX_EPROTO;
    j->delivered_ms = now;
  }
  return RX_OK;
}

static int grow_jobs(rx_job **jobs, size_t *cap, size_t need) {
  if (need <= *cap) return RX_OK;
  rx_job *nj = rx__realloc(*jobs, need * sizeof *nj);
  if (!nj) return RX_ENOMEM;
  *jobs = nj;
  *cap = need;
  return RX_OK;
}

const rx_job *rx_queue_job(const rx_queue *q, size_t i) {
  return q && i < q->njobs ? &q->jobs[i] : NULL;
}
size_t rx_queue_job_count(const rx_queue *q) { return q ? q->njobs : 0; }

/* ---------------------------------------------------------------- waiting */

enum { WAIT_HINT = 100 };

/* Waits on the wake stream until deadline (monotonic ms). Returns WAIT_HINT
 * (a hint arrived or the server's block ended: look again), RX_TIMEOUT,
 * RX_WOKEN, RX_EINTR, or an error. */
static int wait_hint(rx_queue *q, const char *wid, long long deadline) {
  rx_conn *w = q->w;
  long long block = q->block_cap_ms + 1000;
  /* An XREAD that outlived its block time by far sits on a dead link. */
  if (q->w_outstanding &&
      rx_monotonic_ms() > q->w_sent_ms + block + (w->opts.timeout_ms > 0 ? w->opts.timeout_ms : 5000)) {
    rx_conn_close(w);
    q->w_outstanding = 0;
  }
  if (!q->w_outstanding) {
    if (!rx_conn_is_connected(w)) {
      int rc = rx_conn_connect(w);
      if (rc != RX_OK) return q_connerr(q, w, rc);
    }
    char bs[24];
    snprintf(bs, sizeof bs, "%lld", block);
    const char *a[6] = {"XREAD", "BLOCK", bs, "STREAMS", q->keys[K_W], wid};
    size_t l[6] = {5, 5, strlen(bs), 7, q->key_lens[K_W], strlen(wid)};
    int rc = rx_conn_append(w, 6, a, l);
    if (rc != RX_OK) return q_connerr(q, w, rc);
    q->w_outstanding = 1;
    q->w_sent_ms = rx_monotonic_ms();
  }
  int rc = w->out.len ? rx__conn_flush(w, deadline) : RX_OK;
  rx_reply *r = NULL;
  if (rc == RX_OK) rc = rx__conn_read(w, &r, deadline);
  if (rc == RX_OK) {
    w->pending--;
    q->w_outstanding = 0;
    int isnerr = r->type == RX_REPLY_ERROR;
    if (isnerr) rc = reply_error(q, r);
    rx_reply_free(r);
    return isnerr ? rc : WAIT_HINT;
  }
  if (rc == RX_TIMEOUT || rc == RX_WOKEN || rc == RX_EINTR) return rc;
  q->w_outstanding = 0;
  return q_connerr(q, w, rc);
}

/* ---------------------------------------------------------------- fetch */

/* Creates the consumer group (and the stream), starting at the first entry:
 * everything in the ready stream is meant for delivery. In the script, so
 * that it also works on a server at maxmemory (see op_group). */
static int create_group(rx_queue *q) {
  const char *a[2] = {"group", q->group};
  rx_reply *r = NULL;
  int rc = eval(q, 2, a, NULL, &r);
  rx_reply_free(r);
  return rc;
}

/* One round trip: the fetch script (reclaim + promote) and XREADGROUP.
 * With nack tokens, the script acks them first (*acked: how many were
 * pending). */
static int fetch_once(rx_queue *q, size_t max, long long *server_now, long long *next_due,
                      char *wid, size_t wid_len, const char *const *ack, size_t nack,
                      size_t *acked) {
  char n[24], vt[24], ma[24], dm[24], every[24], idle[24];
  long long ev = q->vt_ms / 10;
  if (ev < 20) ev = 20;
  if (ev > 1000) ev = 1000;
  long long cleanup = q->vt_ms * 10;
  if (cleanup < 300000) cleanup = 300000;
  snprintf(n, sizeof n, "%zu", max);
  snprintf(vt, sizeof vt, "%lld", q->vt_ms);
  snprintf(ma, sizeof ma, "%lld", q->max_attempts);
  snprintf(dm, sizeof dm, "%lld", q->dead_max);
  snprintf(every, sizeof every, "%lld", ev);
  snprintf(idle, sizeof idle, "%lld", cleanup);
  const char *fixed[9] = {"fetch", q->group, q->consumer, n, vt, ma, dm, every, idle};
  const char *x[9] = {"XREADGROUP", "GROUP", q->group, q->consumer, "COUNT", n,
                      "STREAMS",    q->keys[K_S], ">"};
  const char **a = (const char **)fixed;
  if (nack) {
    a = rx__malloc((9 + nack) * sizeof *a);
    if (!a) return q_seterr(q, RX_ENOMEM, "out of memory");
    memcpy(a, fixed, sizeof fixed);
    memcpy(a + 9, ack, nack * sizeof *a);
  }
  rx_reply *r = NULL, *e = NULL;
  int rc = RX_OK;
  for (int attempt = 0; attempt < 3; attempt++) {
    rc = eval_pipelined(q, (int)(9 + nack), a, NULL, 9, x, &r, &e);
    if (rc != RX_OK) break;
    if (e->type == RX_REPLY_ERROR && !strncmp(e->str, "NOGROUP", 7)) {
      /* A new queue, or its stream was deleted: make the group, read again
       * (without the tokens: there was no group to have them pending). */
      rx_reply_free(r);
      rx_reply_free(e);
      r = e = NULL;
      nack = 0;
      rc = create_group(q);
      if (rc != RX_OK) break;
      continue;
    }
    break;
  }
  if (a != (const char **)fixed) rx__free(a);
  if (rc != RX_OK) return rc;
  if (!r || !e) return proto(q, "fetch");
  q->fetched = 1;
  if (r->type == RX_REPLY_ERROR && !delivered_any(e)) {
    rc = reply_error(q, r);
    rx_reply_free(r);
    rx_reply_free(e);
    return rc;
  }
  if (e->type == RX_REPLY_ERROR) {
    rc = reply_error(q, e);
    rx_reply_free(r);
    rx_reply_free(e);
    return rc;
  }
  if (r->type == RX_REPLY_ERROR) {
    /* The script failed but the read delivered: hand those over now; the
     * next fetch meets the error again. */
    *server_now = rx_now_ms();
    *next_due = -1;
    rx__fmt(wid, wid_len, "0-0");
  } else if (r->type != RX_REPLY_ARRAY || r->elements != 4 + (nack > 0) ||
             r->element[2]->type != RX_REPLY_STRING ||
             (e->type != RX_REPLY_ARRAY && e->type != RX_REPLY_NIL)) {
    rx_reply_free(r);
    rx_reply_free(e);
    return proto(q, "fetch");
  } else {
    *server_now = r_int(r->element[0]);
    *next_due = r_int(r->element[1]);
    rx__fmt(wid, wid_len, "%s", r->element[2]->str);
    if (nack && acked) *acked = (size_t)r_int(r->element[4]);
  }
  rx_reply_free(r);
  const rx_reply *es = NULL;
  if (e->type == RX_REPLY_ARRAY && e->elements == 1 && e->element[0]->type == RX_REPLY_ARRAY &&
      e->element[0]->elements == 2 && e->element[0]->element[1]->type == RX_REPLY_ARRAY)
    es = e->element[0]->element[1];
  size_t ne = es ? es->elements : 0;
  if (ne == 0) {
    rx_reply_free(e);
    return RX_TIMEOUT;
  }
  if (grow_jobs(&q->jobs, &q->jobs_cap, ne) != RX_OK) {
    rx_reply_free(e);
    /* The deliveries stay pending and are reclaimed after the timeout. */
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  rx_reply_free(q->fetch_reply);
  q->fetch_reply = e;
  q->njobs = 0;
  for (size_t i = 0; i < ne; i++) {
    if (fill_job(&q->jobs[q->njobs], es->element[i], *server_now, 0) == RX_OK) q->njobs++;
  }
  return q->njobs ? RX_OK : RX_TIMEOUT;
}

/* rx_queue_fetch, with nack tokens (copies: the previous fetch's jobs are
 * released and overwritten here) acked by the first script call. */
static int fetch_jobs(rx_queue *q, size_t max, int timeout_ms, rx_job *jobs, size_t *n,
                      const char *const *ack, size_t nack, size_t *acked) {
  /* The previous fetch's jobs are released now. */
  rx_reply_free(q->fetch_reply);
  q->fetch_reply = NULL;
  q->njobs = 0;
  long long deadline = timeout_ms < 0 ? -1 : rx_monotonic_ms() + timeout_ms;
  for (;;) {
    long long now = 0, next_due = -1;
    char wid[64];
    int rc = fetch_once(q, max, &now, &next_due, wid, sizeof wid, ack, nack, acked);
    nack = 0; /* acked once, by the first call */
    if (rc == RX_OK || rc == RX_TIMEOUT) {
      q->hint_now = now;
      q->hint_next_due = next_due;
      memcpy(q->hint_wid, wid, sizeof q->hint_wid);
    }
    if (rc == RX_OK) break;
    if (rc != RX_TIMEOUT) return rc;
    long long mono = rx_monotonic_ms();
    if (deadline >= 0 && mono >= deadline) return RX_TIMEOUT;
    long long until = mono + q->block_cap_ms;
    if (next_due >= 0) {
      long long d = next_due - now;
      if (d < 1) d = 1; /* due already but not delivered: look again shortly */
      if (mono + d < until) until = mono + d;
    }
    if (deadline >= 0 && deadline < until) until = deadline;
    rc = wait_hint(q, wid, until);
    if (rc == RX_WOKEN || rc == RX_EINTR || rc < 0) return rc;
    /* WAIT_HINT or RX_TIMEOUT (a due time or the cap): look again. */
  }
  if (jobs) memcpy(jobs, q->jobs, q->njobs * sizeof *jobs);
  if (n) *n = q->njobs;
  return RX_OK;
}

static int check_fetch_max(rx_queue *q, size_t max) {
  if (max == 0 || max > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': fetch max must be 1..1000", q->name);
  return RX_OK;
}

int rx_queue_fetch(rx_queue *q, size_t max, int timeout_ms, rx_job *jobs, size_t *n) {
  if (n) *n = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (check_fetch_max(q, max) != RX_OK) return q->err;
  return fetch_jobs(q, max, timeout_ms, jobs, n, NULL, 0, NULL);
}

static int valid_token(const char *t, size_t len);

int rx_queue_ack_fetch(rx_queue *q, const rx_job *ack, size_t nack, size_t *acked, size_t max,
                       int timeout_ms, rx_job *jobs, size_t *n) {
  if (n) *n = 0;
  if (acked) *acked = 0;
  if (!q || (!ack && nack)) return RX_EINVAL;
  q_clearerr(q);
  if (check_fetch_max(q, max) != RX_OK) return q->err;
  if (nack > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': at most 1000 jobs to ack per fetch", q->name);
  /* The jobs are typically the handle's own (rx_queue_job), which the fetch
   * overwrites: their tokens are copied into one block first. */
  char *toks = NULL;
  const char **ptrs = NULL;
  if (nack) {
    toks = rx__malloc(nack * RX_QUEUE_TOKEN_SIZE);
    ptrs = rx__malloc(nack * sizeof *ptrs);
    if (!toks || !ptrs) {
      rx__free(toks);
      rx__free(ptrs);
      return q_seterr(q, RX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nack; i++) {
      size_t len = strnlen(ack[i].token, RX_QUEUE_TOKEN_SIZE);
      if (!valid_token(ack[i].token, len)) {
        rx__free(toks);
        rx__free(ptrs);
        return q_seterr(q, RX_EINVAL, "queue '%s': job %zu has no delivery token", q->name, i);
      }
      ptrs[i] = toks + i * RX_QUEUE_TOKEN_SIZE;
      memcpy(toks + i * RX_QUEUE_TOKEN_SIZE, ack[i].token, len + 1);
    }
  }
  int rc = fetch_jobs(q, max, timeout_ms, jobs, n, ptrs, nack, acked);
  rx__free(toks);
  rx__free(ptrs);
  return rc;
}

/* ---------------------------------------------------------------- settle */

/* 1 when the n digits at p are a number that fits in 64 bits unsigned. */
static int fits_u64(const char *p, size_t n) {
  static const char max[] = "18446744073709551615";
  while (n > 1 && *p == '0') p++, n--;
  return n < 20 || (n == 20 && memcmp(p, max, 20) <= 0);
}

/* A stream entry id "<ms>-<seq>", both 64-bit unsigned: what the server
 * would refuse with "Invalid stream ID" is refused here as RX_EINVAL. */
static int valid_token(const char *t, size_t len) {
  if (!t || len == 0 || len >= RX_QUEUE_TOKEN_SIZE) return 0;
  size_t dash = 0;
  for (size_t i = 0; i < len; i++) {
    if (t[i] == '-') {
      if (dash || i == 0 || i == len - 1) return 0;
      dash = i;
    } else if (t[i] < '0' || t[i] > '9') {
      return 0;
    }
  }
  return dash && fits_u64(t, dash) && fits_u64(t + dash + 1, len - dash - 1);
}

int rx_queue_ack_many(rx_queue *q, const char *tokens, size_t len, size_t *acked) {
  if (acked) *acked = 0;
  if (!q || (!tokens && len)) return RX_EINVAL;
  q_clearerr(q);
  /* Split into (pointer, length) pairs. */
  size_t cap = 3, n = 0; /* "ack", group, and at most separators + 1 tokens */
  for (size_t i = 0; i < len; i++)
    if (tokens[i] == ' ' || tokens[i] == ',' || tokens[i] == '\n') cap++;
  const char **a = rx__malloc(sizeof *a * cap);
  size_t *l = rx__malloc(sizeof *l * cap);
  if (!a || !l) {
    rx__free(a);
    rx__free(l);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  a[0] = "ack";
  l[0] = 3;
  a[1] = q->group;
  l[1] = strlen(q->group);
  n = 2;
  int rc = RX_OK;
  for (size_t i = 0; i < len;) {
    while (i < len && (tokens[i] == ' ' || tokens[i] == ',' || tokens[i] == '\n' ||
                       tokens[i] == '\t' || tokens[i] == '\r'))
      i++;
    size_t s = i;
    while (i < len && !(tokens[i] == ' ' || tokens[i] == ',' || tokens[i] == '\n' ||
                        tokens[i] == '\t' || tokens[i] == '\r'))
      i++;
    if (i == s) continue;
    if (!valid_token(tokens + s, i - s)) {
      rc = q_seterr(q, RX_EINVAL, "queue '%s': \"%.*s\" is not a delivery token", q->name,
                    (int)(i - s > 60 ? 60 : i - s), tokens + s);
      break;
    }
    a[n] = tokens + s;
    l[n] = i - s;
    n++;
  }
  if (rc == RX_OK && n == 2) rc = q_seterr(q, RX_EINVAL, "no delivery token");
  rx_reply *r = NULL;
  if (rc == RX_OK) rc = eval(q, (int)n, a, l, &r);
  size_t nt = n - 2;
  rx__free(a);
  rx__free(l);
  if (rc != RX_OK) return rc;
  if (r->type != RX_REPLY_ARRAY || r->elements != nt) {
    rx_reply_free(r);
    return proto(q, "ack");
  }
  size_t ok = 0;
  for (size_t i = 0; i < nt; i++) ok += r_int(r->element[i]) == 1;
  rx_reply_free(r);
  if (acked) *acked = ok;
  if (ok < nt)
    return q_seterr(q, RX_ESTALE,
                    "queue '%s': %zu of %zu deliveries were no longer pending (reclaimed "
                    "after the visibility timeout, or acked already): not acked",
                    q->name, nt - ok, nt);
  return RX_OK;
}

int rx_queue_ack(rx_queue *q, const char *token) {
  if (!q || !token) return RX_EINVAL;
  return rx_queue_ack_many(q, token, strlen(token), NULL);
}

int rx_queue_ack_jobs(rx_queue *q, const rx_job *jobs, size_t n, size_t *acked) {
  if (acked) *acked = 0;
  if (!q || (!jobs && n)) return RX_EINVAL;
  if (n == 0) return RX_OK;
  rx_buf b = {0};
  for (size_t i = 0; i < n; i++) {
    if (rx__buf_append(&b, jobs[i].token, strlen(jobs[i].token)) != RX_OK ||
        rx__buf_append(&b, " ", 1) != RX_OK) {
      rx__buf_free(&b);
      return q_seterr(q, RX_ENOMEM, "out of memory");
    }
  }
  int rc = rx_queue_ack_many(q, b.data, b.len, acked);
  rx__buf_free(&b);
  return rc;
}

static int settle(rx_queue *q, const char *token, long long delay_ms, const char *error,
                  size_t error_len, const char *mode, int *dead) {
  if (dead) *dead = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (!token || !valid_token(token, strlen(token)))
    return q_seterr(q, RX_EINVAL, "queue '%s': not a delivery token", q->name);
  if (delay_ms > 0 && check_when(q, delay_ms, "retry delay") != RX_OK) return q->err;
  if (!error) error_len = 0;
  if (error_len > 4096) error_len = 4096; /* a stack trace is enough */
  char ds[24], ma[24], dm[24], bb[24], bm[24], jit[32];
  snprintf(ds, sizeof ds, "%lld", delay_ms < 0 ? -1 : delay_ms);
  snprintf(ma, sizeof ma, "%lld", q->max_attempts);
  snprintf(dm, sizeof dm, "%lld", q->dead_max);
  snprintf(bb, sizeof bb, "%lld", q->backoff_base_ms);
  snprintf(bm, sizeof bm, "%lld", q->backoff_max_ms);
  /* Jitter in 0.5..1: retries of many messages that failed together spread
   * out instead of coming back at once. */
  snprintf(jit, sizeof jit, "%.6f", 0.5 + 0.5 * (double)(rx__random() >> 11) / (double)(1ULL << 53));
  const char *a[11] = {"retry", q->group, token, ds, error ? error : "", ma, dm, mode, bb, bm, jit};
  size_t l[11];
  for (int i = 0; i < 11; i++) l[i] = strlen(a[i]);
  l[4] = error_len;
  rx_reply *r = NULL;
  int rc = eval(q, 11, a, l, &r);
  if (rc != RX_OK) return rc;
  long long v = r->type == RX_REPLY_ARRAY && r->elements >= 1 ? r_int(r->element[0]) : -2;
  rx_reply_free(r);
  if (v == -1)
    return q_seterr(q, RX_ESTALE,
                    "queue '%s': delivery %s is no longer pending (reclaimed after the "
                    "visibility timeout, or settled already)",
                    q->name, token);
  if (v == -2) return proto(q, "retry");
  if (dead && v == 2) *dead = 1;
  return RX_OK;
}

int rx_queue_retry(rx_queue *q, const char *token, long long delay_ms, const char *error,
                   size_t error_len, int *dead) {
  return settle(q, token, delay_ms, error, error_len, "retry", dead);
}

int rx_queue_fail(rx_queue *q, const char *token, const char *error, size_t error_len) {
  return settle(q, token, 0, error, error_len, "fail", NULL);
}

int rx_queue_extend(rx_queue *q, const char *token, long long ms) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (!token || !valid_token(token, strlen(token)))
    return q_seterr(q, RX_EINVAL, "queue '%s': not a delivery token", q->name);
  if (check_when(q, ms, "lease extension") != RX_OK) return q->err;
  char ms_s[24], vt[24];
  snprintf(ms_s, sizeof ms_s, "%lld", ms <= 0 ? q->vt_ms : ms);
  snprintf(vt, sizeof vt, "%lld", q->vt_ms);
  const char *a[6] = {"extend", q->group, q->consumer, token, ms_s, vt};
  rx_reply *r = NULL;
  int rc = eval(q, 6, a, NULL, &r);
  if (rc != RX_OK) return rc;
  long long v = r_int(r);
  rx_reply_free(r);
  if (v != 1)
    return q_seterr(q, RX_ESTALE, "queue '%s': delivery %s is no longer pending", q->name,
                    token);
  return RX_OK;
}

/* ---------------------------------------------------------------- dead letters */

int rx_queue_dead_list(rx_queue *q, const char *after, size_t max, size_t *n) {
  if (n) *n = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (max == 0 || max > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': list max must be 1..1000", q->name);
  char start[RX_QUEUE_TOKEN_SIZE + 1] = "-";
  if (after && *after) {
    if (!valid_token(after, strlen(after)))
      return q_seterr(q, RX_EINVAL, "queue '%s': not a dead-letter token", q->name);
    rx__fmt(start, sizeof start, "(%s", after);
  }
  char cnt[24];
  snprintf(cnt, sizeof cnt, "%zu", max);
  const char *a[6] = {"XRANGE", q->keys[K_D], start, "+", "COUNT", cnt};
  rx_reply *r = NULL;
  if (!rx_conn_is_connected(q->c)) {
    int rc = rx_conn_connect(q->c);
    if (rc != RX_OK) return q_connerr(q, q->c, rc);
  }
  first_connect(q);
  int rc = rx_conn_command(q->c, &r, 6, a, NULL);
  if (rc != RX_OK) return q_connerr(q, q->c, rc);
  if (r->type == RX_REPLY_ERROR) {
    rc = reply_error(q, r);
    rx_reply_free(r);
    return rc;
  }
  if (r->type != RX_REPLY_ARRAY) {
    rx_reply_free(r);
    return proto(q, "XRANGE");
  }
  if (grow_jobs(&q->dead, &q->dead_cap, r->elements + 1) != RX_OK) {
    rx_reply_free(r);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  rx_reply_free(q->dead_reply);
  q->dead_reply = r;
  q->ndead = 0;
  for (size_t i = 0; i < r->elements; i++)
    if (fill_job(&q->dead[q->ndead], r->element[i], 0, 1) == RX_OK) q->ndead++;
  if (n) *n = q->ndead;
  return RX_OK;
}

const rx_job *rx_queue_dead(const rx_queue *q, size_t i) {
  return q && i < q->ndead ? &q->dead[i] : NULL;
}

int rx_queue_dead_requeue(rx_queue *q, const char *token, long long delay_ms, size_t *count) {
  if (count) *count = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  if (check_when(q, delay_ms, "delay") != RX_OK) return q->err;
  int one = token && *token;
  if (one && !valid_token(token, strlen(token)))
    return q_seterr(q, RX_EINVAL, "queue '%s': not a dead-letter token", q->name);
  char start[RX_QUEUE_TOKEN_SIZE + 1] = "-";
  char ds[24];
  snprintf(ds, sizeof ds, "%lld", delay_ms < 0 ? 0 : delay_ms);
  size_t total = 0;
  for (;;) {
    const char *a[5] = {"requeue", start, one ? token : "", "500", ds};
    rx_reply *r = NULL;
    int rc = eval(q, 5, a, NULL, &r);
    if (rc != RX_OK) return rc;
    if (r->type != RX_REPLY_ARRAY || r->elements != 3) {
      rx_reply_free(r);
      return proto(q, "requeue");
    }
    long long done = r_int(r->element[0]), skipped = r_int(r->element[1]);
    total += (size_t)done;
    const rx_reply *last = r->element[2];
    int more = !one && last->type == RX_REPLY_STRING && last->len > 0 &&
               last->len < RX_QUEUE_TOKEN_SIZE && done + skipped == 500;
    if (more) rx__fmt(start, sizeof start, "(%s", last->str);
    rx_reply_free(r);
    if (one && done + skipped == 0) {
      if (count) *count = 0;
      return RX_NOMATCH;
    }
    if (!more) break;
  }
  if (count) *count = total;
  return RX_OK;
}

int rx_queue_dead_purge(rx_queue *q, const char *token, size_t *count) {
  if (count) *count = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  int one = token && *token;
  if (one && !valid_token(token, strlen(token)))
    return q_seterr(q, RX_EINVAL, "queue '%s': not a dead-letter token", q->name);
  const char *a[2] = {"purge", one ? token : ""};
  rx_reply *r = NULL;
  int rc = eval(q, 2, a, NULL, &r);
  if (rc != RX_OK) return rc;
  long long v = r_int(r);
  rx_reply_free(r);
  if (count) *count = (size_t)v;
  return one && v == 0 ? RX_NOMATCH : RX_OK;
}

/* ---------------------------------------------------------------- stats */

int rx_queue_stats_get(rx_queue *q, rx_queue_stats *st) {
  if (!q || !st) return RX_EINVAL;
  q_clearerr(q);
  memset(st, 0, sizeof *st);
  const char *a[2] = {"stats", q->group};
  rx_reply *r = NULL;
  int rc = eval(q, 2, a, NULL, &r);
  if (rc != RX_OK) return rc;
  if (r->type != RX_REPLY_ARRAY || r->elements != 12) {
    rx_reply_free(r);
    return proto(q, "stats");
  }
  long long *f[12] = {&st->now_ms,   &st->scheduled,   &st->ready,   &st->in_flight,
                      &st->dead,     &st->lag_ms,      &st->consumers, &st->next_due_ms,
                      &st->acked,    &st->failures,    &st->crashes, &st->dead_total};
  for (int i = 0; i < 12; i++) *f[i] = r_int(r->element[i]);
  rx_reply_free(r);
  return RX_OK;
}

/* ---------------------------------------------------------------- partitions */

void rx__qp_use_conn(rx_queue *q, rx_conn *c) {
  if (q && q->borrowed) q->c = c;
}

void rx__qp_fetch_hint(const rx_queue *q, long long *now_ms, long long *next_due_ms, char *wid,
                       size_t wid_len) {
  *now_ms = q->hint_now;
  *next_due_ms = q->hint_next_due;
  rx__fmt(wid, wid_len, "%s", q->hint_wid[0] ? q->hint_wid : "0-0");
}
