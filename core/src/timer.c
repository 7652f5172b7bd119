/* timer.c — resettable timers on the delayed queue, and once-only claims.
 *
 * Timers use nothing but the public queue API (queue.h): a touch is a
 * schedule with RX_SCHED_REPLACE, a stop is a cancel, watching is fetching.
 * Every guarantee and every edge case is therefore the queue's; timer.h
 * spells out what they mean for timers. Keeping this layer thin is the
 * point: the queue's Lua is the one place where time and state change. */
#include "reactis/timer.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rx_private.h"

#define T_PREFIX "timer:"
#define T_PREFIX_LEN 6
#define CLAIM_NAME_MAX 200

struct rx_timers {
  rx_queue *q;
  char *name;      /* without the prefix */
  int err;         /* an error of this layer (argument checks); 0: see q */
  char errstr[256];
};

static int t_seterr(rx_timers *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int t_seterr(rx_timers *t, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->errstr, sizeof t->errstr, fmt, ap);
  va_end(ap);
  t->err = code;
  return code;
}

static void t_clearerr(rx_timers *t) {
  t->err = 0;
  t->errstr[0] = '\0';
}

rx_timers *rx_timers_new(const char *url, const char *name, char *errstr, size_t errstr_len) {
  if (errstr && errstr_len) errstr[0] = '\0';
  if (!name || !*name || strlen(name) > RX_TIMERS_NAME_MAX || strchr(name, '{') ||
      strchr(name, '}')) {
    rx__fmt(errstr, errstr_len,
            "invalid timer set name: 1..%d bytes without '{' or '}' are allowed",
            RX_TIMERS_NAME_MAX);
    return NULL;
  }
  rx_timers *t = rx__calloc(1, sizeof *t);
  char *qname = rx__malloc(strlen(name) + T_PREFIX_LEN + 1);
  if (t) t->name = rx__strdup(name);
  if (!t || !qname || !t->name) {
    rx__free(qname);
    if (t) rx__free(t->name);
    rx__free(t);
    rx__fmt(errstr, errstr_len, "out of memory");
    return NULL;
  }
  memcpy(qname, T_PREFIX, T_PREFIX_LEN);
  memcpy(qname + T_PREFIX_LEN, name, strlen(name) + 1);
  t->q = rx_queue_new(url, qname, errstr, errstr_len);
  rx__free(qname);
  if (!t->q) {
    rx__free(t->name);
    rx__free(t);
    return NULL;
  }
  return t;
}

void rx_timers_free(rx_timers *t) {
  if (!t) return;
  rx_queue_free(t->q);
  rx__free(t->name);
  rx__free(t);
}

int rx_timers_set(rx_timers *t, const char *name, const char *value) {
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  return rx_queue_set(t->q, name, value);
}

const char *rx_timers_name(const rx_timers *t) { return t ? t->name : ""; }
rx_queue *rx_timers_queue(rx_timers *t) { return t ? t->q : NULL; }
void rx_timers_wakeup(rx_timers *t) {
  if (t) rx_queue_wakeup(t->q);
}

int rx_timers_err(const rx_timers *t) {
  if (!t) return RX_EINVAL;
  return t->err ? t->err : rx_queue_err(t->q);
}

const char *rx_timers_errstr(const rx_timers *t) {
  if (!t) return "";
  return t->err ? t->errstr : rx_queue_errstr(t->q);
}

/* ---------------------------------------------------------------- touching */

/* The queue checks ids and payloads itself; what is particular to timers
 * is that a ttl may not be negative (a "deadline in the past" is a bug in
 * the caller, not a wish to fire before timers that are due now). */
static int check_touch(rx_timers *t, const char *id, size_t id_len, long long when_ms,
                       int flags) {
  if (!id || !id_len) return t_seterr(t, RX_EINVAL, "timers '%s': no timer id", t->name);
  if (!(flags & RX_SCHED_AT) && when_ms < 0)
    return t_seterr(t, RX_EINVAL, "timers '%s': ttl of %lld ms is negative", t->name, when_ms);
  if (flags & ~RX_SCHED_AT)
    return t_seterr(t, RX_EINVAL, "timers '%s': unknown flags %d", t->name, flags);
  return RX_OK;
}

int rx_timers_touch_ex(rx_timers *t, const char *id, size_t id_len, long long when_ms,
                       int flags, const char *data, size_t data_len, int *armed,
                       long long *due_ms) {
  if (armed) *armed = 0;
  if (due_ms) *due_ms = 0;
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  int rc = check_touch(t, id, id_len, when_ms, flags);
  if (rc != RX_OK) return rc;
  int outcome = RX_SCHED_ADDED;
  rc = rx_queue_schedule(t->q, id, id_len, data ? data : "", data_len, when_ms,
                         flags | RX_SCHED_REPLACE, NULL, 0, &outcome, due_ms);
  if (rc == RX_OK && armed) *armed = outcome == RX_SCHED_ADDED;
  return rc;
}

int rx_timers_touch(rx_timers *t, const char *id, size_t id_len, long long ttl_ms,
                    const char *data, size_t data_len) {
  return rx_timers_touch_ex(t, id, id_len, ttl_ms, 0, data, data_len, NULL, NULL);
}

int rx_timers_stop(rx_timers *t, const char *id, size_t id_len) {
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  if (!id || !id_len) return t_seterr(t, RX_EINVAL, "timers '%s': no timer id", t->name);
  return rx_queue_cancel(t->q, id, id_len);
}

int rx_timers_batch_add(rx_timers *t, const char *id, size_t id_len, long long ttl_ms,
                        const char *data, size_t data_len) {
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  int rc = check_touch(t, id, id_len, ttl_ms, 0);
  if (rc != RX_OK) return rc;
  return rx_queue_batch_add(t->q, id, id_len, data ? data : "", data_len, ttl_ms,
                            RX_SCHED_REPLACE);
}

size_t rx_timers_batch_count(const rx_timers *t) { return t ? rx_queue_batch_count(t->q) : 0; }

int rx_timers_batch_send(rx_timers *t) {
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  return rx_queue_batch_send(t->q);
}

int rx_timers_batch_result(const rx_timers *t, size_t i, int *armed, long long *due_ms) {
  if (armed) *armed = 0;
  if (!t) return RX_EINVAL;
  int outcome = RX_SCHED_ADDED;
  int rc = rx_queue_batch_result(t->q, i, &outcome, NULL, NULL, due_ms);
  if (rc == RX_OK && armed) *armed = outcome == RX_SCHED_ADDED;
  return rc;
}

void rx_timers_batch_clear(rx_timers *t) {
  if (t) rx_queue_batch_clear(t->q);
}

/* ---------------------------------------------------------------- watching */

int rx_timers_watch(rx_timers *t, size_t max, int timeout_ms, rx_job *fired, size_t *n) {
  if (n) *n = 0;
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  return rx_queue_fetch(t->q, max, timeout_ms, fired, n);
}

const rx_job *rx_timers_fired(const rx_timers *t, size_t i) {
  return t ? rx_queue_job(t->q, i) : NULL;
}

int rx_timers_ack(rx_timers *t, const char *token) {
  if (!t) return RX_EINVAL;
  t_clearerr(t);
  return rx_queue_ack(t->q, token);
}

/* ---------------------------------------------------------------- claims */

int rx_claim_once(rx_conn *c, const char *name, size_t name_len, const char *id,
                  size_t id_len, long long ttl_ms, int *won) {
  if (won) *won = 0;
  if (!c) return RX_EINVAL;
  if (!name || !name_len || name_len > CLAIM_NAME_MAX || memchr(name, '{', name_len) ||
      memchr(name, '}', name_len))
    return rx__conn_seterr(c, RX_EINVAL,
                           "claim name: 1..%d bytes without '{' or '}' are allowed",
                           CLAIM_NAME_MAX);
  if (!id || !id_len || id_len > RX_QUEUE_ID_MAX)
    return rx__conn_seterr(c, RX_EINVAL, "claim id: 1..%d bytes are allowed", RX_QUEUE_ID_MAX);
  if (ttl_ms < 1 || ttl_ms > 253402300799999LL)
    return rx__conn_seterr(c, RX_EINVAL, "claim ttl of %lld ms is out of range (1..)", ttl_ms);
  /* rx:claim:{NAME}:ID — the hash tag keeps one name's claims together. */
  size_t klen = 10 + name_len + 2 + id_len;
  char *key = rx__malloc(klen + 1);
  if (!key) return rx__conn_seterr(c, RX_ENOMEM, "out of memory");
  memcpy(key, "rx:claim:{", 10);
  memcpy(key + 10, name, name_len);
  memcpy(key + 10 + name_len, "}:", 2);
  memcpy(key + 12 + name_len, id, id_len);
  key[klen] = '\0';
  /* The value says who won, for whoever looks at the key later. */
  char who[128], host[64], px[24];
  if (gethostname(host, sizeof host) != 0) strcpy(host, "host");
  host[sizeof host - 1] = '\0';
  rx__fmt(who, sizeof who, "%s:%ld", host, (long)getpid());
  rx__fmt(px, sizeof px, "%lld", ttl_ms);
  const char *argv[6] = {"SET", key, who, "NX", "PX", px};
  size_t lens[6] = {3, klen, strlen(who), 2, 2, strlen(px)};
  rx_reply *r = NULL;
  int rc = rx_conn_call(c, &r, 6, argv, lens);
  rx__free(key);
  if (rc != RX_OK) return rc;
  if (won) *won = r && r->type == RX_REPLY_STATUS;
  rx_reply_free(r);
  return RX_OK;
}
