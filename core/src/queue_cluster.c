/* queue_cluster.c — the public queue API: partitions, Redis Cluster, and
 * schedules confirmed by replicas (WAIT), over queue.c's one-slot queue.
 *
 * Three shapes of the same handle (rx_queue):
 *   - standalone, one partition (the default): every call goes straight to
 *     one rx__qp (queue.c) that owns its two connections. Nothing here
 *     changes its behaviour, except WAIT when wait_replicas is set.
 *   - partitions=N on a standalone server, and
 *   - any queue on a cluster URL (several hosts, or cluster=yes):
 *     one rx__qp per partition, each borrowing its command connection:
 *     one shared link on a standalone server; in a cluster, the rx_cluster's
 *     connection to the master of the partition's hash slot, looked up
 *     before every call ("binding"). The waiting for all partitions is done
 *     here, on one waiter connection per partition.
 *
 * Partitions. Partition i of N is the queue named NAME#i.k (its keys
 * rx:{NAME#i.k}:z, ...), where k is the smallest integer >= 0 for which the
 * hash slot of "NAME#i.k" lies in the middle quarter of the i-th N-th of
 * the slot space, [16384(8i+3)/8N, 16384(8i+5)/8N). The names depend only
 * on NAME and N, so every process and every restart agrees on them; and on
 * a cluster whose masters hold equal contiguous ranges (what redis-cli
 * --cluster create and rebalance make) N partitions spread as evenly as the
 * masters allow: with N a multiple of the masters, N/masters on each. With
 * N = 1 the queue is NAME itself, the same keys as a standalone queue.
 * A message goes to partition CRC16(id) % N (CRC16/XMODEM of the whole id,
 * as Redis's key hash but without hash tags), so the same id always lands
 * in the same partition and cancel/reschedule/run_now find it; generated
 * ids are random, so they spread evenly. Delivery tokens and dead-letter
 * tokens of a queue with N > 1 carry their partition: "3:1718000000000-0".
 *
 * Routing and retries in a cluster. Before a call, the partition's slot is
 * looked up in the rx_cluster's map (refreshed when a failure made it
 * suspect), and the master's link is checked: a link the server closed
 * while idle (a killed master) is found before anything is written. Then:
 *   - refused without running (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING,
 *     READONLY from a demoted master), or the link could not be opened: the
 *     map is updated or refreshed and the call made again, with a short
 *     backoff, within the command timeout. A queue's keys are seven keys of
 *     one slot, so while that slot migrates its scripts are refused with
 *     TRYAGAIN (the keys are split) or ASK; the calls wait for the slot to
 *     land (CLUSTER SETSLOT NODE), then follow MOVED.
 *   - the link failed after the call was written (the master died under
 *     it): the call may have run. It is made again on the new master only
 *     when that is safe: schedules and batches (their ids are fixed before
 *     the first try, so a second run keeps the waiting message and reports
 *     RX_SCHED_EXISTS, and a replacing schedule replaces it with the same
 *     payload), fetches (what a lost fetch delivered stays pending for this
 *     consumer and is reclaimed after the visibility timeout), stats and
 *     dead-letter listings. Acks, retries, fails, extends, cancels,
 *     reschedules, requeues and purges return the error (RX_EIO /
 *     RX_ETIMEDOUT: it may or may not have happened) and the next call
 *     goes to the new master.
 * On a standalone server no call is made twice, as with one partition.
 *
 * Waiting. A fetch serves the partitions round-robin with non-blocking
 * fetches, starting one further on each call. A partition that had nothing
 * is looked at again when its next message falls due, after block_cap_ms
 * (which also reclaims dead consumers' deliveries), or when its wake stream
 * gets a hint: each such partition keeps an XREAD BLOCK outstanding on its
 * waiter connection (to its current master), and one poll() waits on all of
 * them and on the wakeup pipe. As in queue.c the XREAD only means "look
 * again", so giving up on it loses nothing.
 *
 * WAIT. With wait_replicas=N, a schedule or a batch is followed by WAIT N
 * wait_timeout_ms on the same connection (the partition's master); fewer
 * acknowledgements give RX_ETIMEDOUT. The messages are scheduled either way.
 */
#include "rx_cluster.h"
#include "rx_queue.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QC_PARTS_MAX 1024      /* "1023:" keeps a token within RX_QUEUE_TOKEN_SIZE */
#define QC_NAME_MAX 200        /* as queue.c */
#define QC_PART_SUFFIX_MAX 12  /* "#1023." and up to 6 digits of k */
#define QC_WID_SIZE 64

/* ---------------------------------------------------------------- state */

typedef struct qc_part {
  rx__qp *q;           /* the partition's queue (queue.c) */
  char *name;          /* NAME, or NAME#i.k */
  char *wkey;          /* its wake stream, rx:{name}:w */
  int slot;            /* hash slot of its keys */
  rx_conn *conn;       /* command connection it is bound to (borrowed), NULL before */
  /* the waiter */
  rx_conn *w;          /* XREAD BLOCK on the wake stream (owned), NULL before */
  rx__cl_node *w_node; /* cluster: the node w is connected to */
  int w_outstanding;   /* an XREAD was sent and its reply not read */
  long long w_sent_ms; /* monotonic ms it was sent */
  long long w_retry_at;
  int w_fails;
  char wid[QC_WID_SIZE]; /* last wake id seen by a fetch */
  /* scheduling of fetches */
  long long look_at;    /* monotonic ms at which to fetch it again (0: at once) */
  long long retry_at;   /* after a transient failure: not before */
  int fails;            /* consecutive transient failures */
  long long fail_since; /* monotonic ms of the first of them, 0 if none */
  int batch_done;       /* its part of the batch was sent */
} qc_part;

typedef struct qc_item {
  char *id; /* owned; generated ids are made when added */
  size_t id_len;
  char *payload; /* owned */
  size_t payload_len;
  long long when_ms;
  int flags;
  int part;
  int outcome;
  long long due_ms;
} qc_item;

typedef struct qc_opt {
  char *name, *value;
} qc_opt;

struct rx_queue {
  char *url;
  char *name;
  int cluster_url;     /* the URL names a Redis Cluster */
  int nparts;
  int multi;           /* partitions here (not the plain pass-through) */
  int started;         /* a call was made: partitions is fixed */
  qc_part *parts;
  rx_cluster *cl;      /* cluster URL: routing, node connections */
  rx_opts base;        /* standalone with partitions: the URL's options */
  int have_base;
  rx_conn *conn;       /* standalone with partitions: the shared command link */
  int wake_rd, wake_wr;
  size_t rr;           /* round-robin start of the next fetch */
  long long block_cap_ms;
  long long wait_replicas, wait_timeout_ms;
  qc_opt *opts;        /* options set so far, replayed when partitions change */
  size_t nopts;
  int err;
  char errstr[512];
  rx_job *jobs; /* the last fetch, tokens with their partition */
  size_t njobs, jobs_cap;
  rx_job *dead; /* the last dead-letter listing */
  size_t ndead, dead_cap;
  qc_item *batch;
  size_t nbatch, batch_cap;
  int batch_sent;
};

#define P0(h) ((h)->parts[0].q)

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

static void q_clearerr(rx_queue *q) {
  q->err = 0;
  q->errstr[0] = '\0';
}

/* The partition's error becomes the handle's; returns rc. */
static int take(rx_queue *q, const rx__qp *p, int rc) {
  q->err = rx__qp_err(p);
  rx__fmt(q->errstr, sizeof q->errstr, "%s", rx__qp_errstr(p));
  return rc;
}

/* ---------------------------------------------------------------- names */

/* CRC16/XMODEM (polynomial 0x1021, initial 0), bit by bit: the partition
 * of an id. The same function as Redis's key hash (cluster.c has it by
 * table), applied to the whole id. */
static unsigned crc16(const char *p, size_t n) {
  unsigned crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= (unsigned)(unsigned char)p[i] << 8;
    for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

static int part_of(const rx_queue *q, const char *id, size_t len) {
  return q->nparts <= 1 ? 0 : (int)(crc16(id, len) % (unsigned)q->nparts);
}

/* The name of partition i of n (see the top of the file), malloc'd. */
static char *part_name(const char *name, int i, int n) {
  if (n == 1) return rx__strdup(name);
  size_t cap = strlen(name) + QC_PART_SUFFIX_MAX + 1;
  char *out = rx__malloc(cap);
  if (!out) return NULL;
  long long lo = (long long)RX_CLUSTER_SLOTS * (8LL * i + 3) / (8LL * n);
  long long hi = (long long)RX_CLUSTER_SLOTS * (8LL * i + 5) / (8LL * n);
  for (long k = 0; k < 1000000; k++) {
    rx__fmt(out, cap, "%s#%d.%ld", name, i, k);
    int s = rx_cluster_keyslot(out, strlen(out));
    if (s >= lo && s < hi) return out;
  }
  rx__fmt(out, cap, "%s#%d.0", name, i); /* not reached for n <= QC_PARTS_MAX */
  return out;
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

/* ---------------------------------------------------------------- tokens */

/* "p:rest" into partition and the partition's own token; with one
 * partition tokens carry no prefix. 0, or -1 when it is not ours. */
static int split_token(const rx_queue *q, const char *t, size_t len, int *p, const char **rest,
                       size_t *rest_len) {
  if (q->nparts == 1) {
    *p = 0;
    *rest = t;
    *rest_len = len;
    return 0;
  }
  size_t i = 0;
  int v = 0;
  while (i < len && i < 4 && t[i] >= '0' && t[i] <= '9') v = v * 10 + (t[i++] - '0');
  if (i == 0 || i >= len || t[i] != ':' || v >= q->nparts) return -1;
  *p = v;
  *rest = t + i + 1;
  *rest_len = len - i - 1;
  return 0;
}

/* Prefixes job->token with its partition (queues of more than one). */
static void mark_token(const rx_queue *q, rx_job *j, int p) {
  if (q->nparts == 1) return;
  char t[RX_QUEUE_TOKEN_SIZE];
  rx__fmt(t, sizeof t, "%d:%s", p, j->token);
  memcpy(j->token, t, sizeof t);
}

/* ---------------------------------------------------------------- links */

static long long mono(void) { return rx_monotonic_ms(); }

static int cmd_timeout(const rx_queue *q) {
  if (q->cl) return q->cl->opts.timeout_ms;
  if (q->have_base) return q->base.timeout_ms;
  return 5000;
}

/* A link the server closed while idle (a killed master) is found before a
 * command is written to it (as cluster.c does). */
static void drop_if_closed(rx_conn *c) {
  if (c->fd < 0 || c->pending > 0) return;
  char b;
  ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    rx_conn_close(c);
}

/* Opens c, its connect timeout capped by the deadline. */
static int open_within(rx_conn *c, long long deadline) {
  int saved = c->opts.connect_timeout_ms;
  if (deadline >= 0) {
    long long left = deadline - mono();
    if (left < 1) left = 1;
    if (saved <= 0 || left < saved) c->opts.connect_timeout_ms = (int)left;
  }
  int rc = rx__conn_open(c);
  c->opts.connect_timeout_ms = saved;
  return rc;
}

/* Points partition pp at the master of its slot, connected. Nothing is sent
 * when this fails. */
static int bind_part(rx_queue *q, qc_part *pp, int allow_refresh, long long deadline) {
  rx_cluster *cl = q->cl;
  if (!cl) return RX_OK; /* standalone: the shared link, which queue.c connects */
  if (!cl->have_map ||
      (allow_refresh && cl->need_refresh && mono() - cl->last_refresh_ms >= 100)) {
    int rc = rx__cluster_refresh(cl);
    if (rc != RX_OK && !cl->have_map)
      return q_seterr(q, rc, "queue '%s': %s", q->name, rx_cluster_errstr(cl));
  }
  rx__cl_node *n = cl->slots[pp->slot];
  if (!n) {
    cl->need_refresh = 1;
    return q_seterr(q, RX_ECLUSTER, "queue '%s': no node serves hash slot %d (partition %s)",
                    q->name, pp->slot, pp->name);
  }
  rx_conn *c = &n->conn;
  drop_if_closed(c);
  if (c->fd < 0) {
    int rc = open_within(c, deadline);
    if (rc != RX_OK) {
      cl->need_refresh = 1;
      return q_seterr(q, rc, "queue '%s': %s", q->name,
                      c->errstr[0] ? c->errstr : rx_strerror(rc));
    }
  }
  pp->conn = c;
  rx__qp_use_conn(pp->q, c);
  return RX_OK;
}

/* ---------------------------------------------------------------- retries */

/* What a failed attempt means. */
enum {
  K_OK,      /* no error */
  K_MOVED,   /* MOVED: the map is updated, try again at once */
  K_REFUSED, /* refused without running: try again after a backoff */
  K_UNSENT,  /* nothing was sent (no link): try again after a backoff */
  K_LINK,    /* the link failed after sending: it may have run */
  K_HARD     /* an error to return */
};

static int starts(const char *s, const char *w) { return !strncmp(s, w, strlen(w)); }

/* The server's text in the handle's error, when it came from partition
 * pp's reply ("queue 'NAME#i.k': MOVED ..."); NULL otherwise. */
static const char *server_text(const rx_queue *q, const qc_part *pp) {
  const char *e = q->errstr;
  size_t n = strlen(pp->name);
  if (strncmp(e, "queue '", 7) || strncmp(e + 7, pp->name, n) || strncmp(e + 7 + n, "': ", 3))
    return NULL;
  return e + 7 + n + 3;
}

static int is_permanent(int rc) {
  return rc == RX_EAUTH || rc == RX_EURL || rc == RX_ETLSVERIFY || rc == RX_ENOPERM ||
         rc == RX_ENOMEM || rc == RX_ESYS || rc == RX_EINVAL || rc == RX_ESTATE ||
         rc == RX_WOKEN || rc == RX_EINTR;
}

/* Classifies a failed call on pp, made on link c (cluster mode). A MOVED
 * is applied to the map here. */
static int classify(rx_queue *q, qc_part *pp, rx_conn *c, int rc) {
  if (rc >= 0) return K_OK;
  const char *t = server_text(q, pp);
  if (t && (starts(t, "MOVED ") || starts(t, "ASK "))) {
    rx_reply r;
    memset(&r, 0, sizeof r);
    r.type = RX_REPLY_ERROR;
    r.str = (char *)t; /* read only */
    r.len = strlen(t);
    rx__cl_node *from = NULL;
    for (size_t i = 0; i < q->cl->node_count && !from; i++)
      if (&q->cl->nodes[i]->conn == c) from = q->cl->nodes[i];
    int slot = -1, is_ask = 0;
    if (from && rx__cluster_redirect(q->cl, from, &r, &slot, &is_ask)) {
      if (is_ask) {
        /* The slot is migrating: its keys are on both sides, and a
         * multi-key script cannot run until it has landed. */
        q->cl->stats.ask++;
        return K_REFUSED;
      }
      q->cl->stats.moved++;
      return K_MOVED;
    }
    q->cl->need_refresh = 1;
    return K_REFUSED;
  }
  if (t && (starts(t, "TRYAGAIN") || starts(t, "CLUSTERDOWN") || starts(t, "LOADING") ||
            starts(t, "READONLY") || starts(t, "MASTERDOWN"))) {
    if (!starts(t, "TRYAGAIN")) q->cl->need_refresh = 1;
    return K_REFUSED;
  }
  if (!rx_conn_is_connected(c)) {
    q->cl->need_refresh = 1;
    return K_LINK;
  }
  return K_HARD;
}

typedef int (*qc_op)(rx_queue *q, qc_part *pp, void *ctx);

/* One try of op on pp: bind, call, classify. */
static int attempt(rx_queue *q, qc_part *pp, int allow_refresh, long long deadline, qc_op op,
                   void *ctx, int *kind) {
  int rc = bind_part(q, pp, allow_refresh, deadline);
  if (rc != RX_OK) {
    *kind = is_permanent(rc) || (q->cl && !q->cl->have_map && q->cl->not_cluster) ? K_HARD
                                                                                  : K_UNSENT;
    return rc;
  }
  rx_conn *c = pp->conn;
  rc = op(q, pp, ctx);
  *kind = rc >= 0 ? K_OK : q->cl ? classify(q, pp, c, rc) : K_HARD;
  return rc;
}

/* Sleeps for a retry's backoff (10 ms doubling to 250 ms, half jittered),
 * never past the deadline. Signals do not end it: nothing is in flight. */
static void backoff_sleep(int step, long long deadline) {
  long long d = 10;
  for (int i = 0; i < step && d < 250; i++) d *= 2;
  if (d > 250) d = 250;
  d = d / 2 + (long long)(rx__random() % (uint64_t)(d / 2 + 1));
  long long until = mono() + d;
  if (deadline >= 0 && until > deadline) until = deadline;
  while (mono() < until) poll(NULL, 0, (int)(until - mono()));
}

/* Runs op on pp until it works, fails for good, or the command timeout
 * passes; resend: whether a call that may have run may be made again. */
static int run_part(rx_queue *q, qc_part *pp, int resend, qc_op op, void *ctx) {
  int t = cmd_timeout(q);
  long long deadline = t > 0 ? mono() + t : -1;
  int allow_refresh = 1;
  for (int step = 0;; step++) {
    int kind, rc = attempt(q, pp, allow_refresh, deadline, op, ctx, &kind);
    allow_refresh = 1;
    if (kind == K_OK || kind == K_HARD || (kind == K_LINK && !resend)) return rc;
    int out_of_time = deadline >= 0 ? mono() >= deadline : step >= 50;
    if (out_of_time) return rc;
    if (kind == K_MOVED && step < 5) {
      allow_refresh = 0; /* the MOVED target first, as it said */
      continue;
    }
    backoff_sleep(step, deadline);
  }
}

/* ---------------------------------------------------------------- WAIT */

/* WAIT on the link c that just scheduled into the queue `qname` (one
 * partition): RX_ETIMEDOUT when fewer replicas than wait_replicas confirmed
 * within wait_timeout_ms.
 *
 * WAIT counts the replicas that have everything this connection wrote. A
 * schedule may have written nothing (its id was waiting already; or it is
 * the second try after a failover, on a fresh link, of one that did run),
 * so a small write to the queue's own slot goes first, pipelined: the
 * counter "waits" of rx:{qname}:i. Then the confirmation covers everything
 * the master held when it answered, whoever wrote it. */
static int wait_replicas(rx_queue *q, rx_conn *c, const char *qname, const char *what) {
  if (q->wait_replicas <= 0) return RX_OK;
  char n[24], t[24], where[300], key[QC_NAME_MAX + 16];
  snprintf(n, sizeof n, "%lld", q->wait_replicas);
  snprintf(t, sizeof t, "%lld", q->wait_timeout_ms);
  rx__fmt(key, sizeof key, "rx:{%s}:i", qname);
  const char *h[4] = {"HINCRBY", key, "waits", "1"};
  const char *a[3] = {"WAIT", n, t};
  rx_reply *hr = NULL, *r = NULL;
  int ct = c->opts.timeout_ms;
  int rc = c->pending ? rx__conn_seterr(c, RX_ESTATE, "replies pending") : RX_OK;
  if (rc == RX_OK) rc = rx_conn_append(c, 4, h, NULL);
  if (rc == RX_OK) {
    rc = rx_conn_append(c, 3, a, NULL);
    if (rc != RX_OK) rx_conn_close(c); /* drop the lone HINCRBY */
  }
  if (rc == RX_OK) rc = rx__conn_get_reply_timeout(c, &hr, ct);
  if (rc == RX_OK) rc = rx__conn_get_reply_timeout(c, &r, ct > 0 ? ct + (int)q->wait_timeout_ms : 0);
  rx_reply_free(hr); /* an error here (a slot that just moved) leaves WAIT meaningful */
  rx_conn_describe(c, where, sizeof where);
  if (rc != RX_OK)
    return q_seterr(q, rc,
                    "queue '%s': %s on %s, but the link failed before replicas confirmed it: "
                    "%s",
                    q->name, what, where, c->errstr[0] ? c->errstr : rx_strerror(rc));
  if (r->type != RX_REPLY_INTEGER) {
    rc = r->type == RX_REPLY_ERROR ? rx__reply_error_code(r) : RX_EPROTO;
    q_seterr(q, rc, "queue '%s': %s on %s, but WAIT failed: %.*s", q->name, what, where,
             (int)(r->len > 200 ? 200 : r->len), r->str ? r->str : "");
    rx_reply_free(r);
    return rc;
  }
  long long got = r->integer;
  rx_reply_free(r);
  if (got < q->wait_replicas)
    return q_seterr(q, RX_ETIMEDOUT,
                    "queue '%s': %s on %s, but only %lld of %lld replicas confirmed it within "
                    "%lld ms (option wait_replicas): it would be lost if that master failed "
                    "now",
                    q->name, what, where, got, q->wait_replicas, q->wait_timeout_ms);
  return RX_OK;
}

/* ---------------------------------------------------------------- build */

static void waiter_free(qc_part *pp) {
  if (pp->w) {
    rx__conn_deinit(pp->w);
    rx__free(pp->w);
    pp->w = NULL;
  }
  pp->w_outstanding = 0;
  pp->w_node = NULL;
}

static void parts_free(qc_part *ps, int n) {
  if (!ps) return;
  for (int i = 0; i < n; i++) {
    rx__qp_free(ps[i].q); /* leaves the group when it can, on the bound link */
    waiter_free(&ps[i]);
    rx__free(ps[i].name);
    rx__free(ps[i].wkey);
  }
  rx__free(ps);
}

/* Makes the partitions for n; replaces the current ones only on success. */
static int build(rx_queue *q, int n, char *errstr, size_t errlen) {
  int multi = q->cluster_url || n > 1;
  if (multi && !q->cluster_url && !q->have_base) {
    if (rx__opts_parse(&q->base, q->url, errstr, errlen) != RX_OK) return RX_EURL;
    q->have_base = 1;
  }
  if (multi && !q->cluster_url && !q->conn) {
    q->conn = rx__calloc(1, sizeof *q->conn);
    if (!q->conn || rx__conn_init(q->conn, &q->base) != RX_OK) {
      rx__free(q->conn);
      q->conn = NULL;
      rx__fmt(errstr, errlen, "out of memory or file descriptors");
      return RX_ENOMEM;
    }
  }
  if (multi && q->wake_rd < 0 && rx__wake_pipe(&q->wake_rd, &q->wake_wr) != RX_OK) {
    rx__fmt(errstr, errlen, "no file descriptors for the wakeup pipe");
    return RX_ESYS;
  }
  qc_part *ps = rx__calloc((size_t)n, sizeof *ps);
  if (!ps) {
    rx__fmt(errstr, errlen, "out of memory");
    return RX_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    qc_part *pp = &ps[i];
    pp->name = part_name(q->name, i, n);
    if (!pp->name) goto nomem;
    size_t wl = strlen(pp->name) + 8;
    pp->wkey = rx__malloc(wl);
    if (!pp->wkey) goto nomem;
    rx__fmt(pp->wkey, wl, "rx:{%s}:w", pp->name);
    pp->slot = rx_cluster_keyslot(pp->name, strlen(pp->name));
    strcpy(pp->wid, "0-0");
    pp->q = rx__qp_new(multi ? NULL : (q->url ? q->url : ""), pp->name, errstr, errlen);
    if (!pp->q) {
      parts_free(ps, i + 1);
      return RX_EINVAL;
    }
    if (multi && q->conn) {
      pp->conn = q->conn;
      rx__qp_use_conn(pp->q, q->conn);
    }
  }
  parts_free(q->parts, q->nparts);
  q->parts = ps;
  q->nparts = n;
  q->multi = multi;
  return RX_OK;
nomem:
  parts_free(ps, n);
  rx__fmt(errstr, errlen, "out of memory");
  return RX_ENOMEM;
}

rx_queue *rx_queue_new(const char *url, const char *name, char *errstr, size_t errstr_len) {
  if (errstr && errstr_len) errstr[0] = '\0';
  rx_queue *q = rx__calloc(1, sizeof *q);
  if (!q) {
    rx__fmt(errstr, errstr_len, "out of memory");
    return NULL;
  }
  q->wake_rd = q->wake_wr = -1;
  q->nparts = 1;
  q->block_cap_ms = 2000;
  q->wait_timeout_ms = 1000;
  q->url = rx__strdup(url ? url : "");
  q->name = rx__strdup(name ? name : "");
  if (!q->url || !q->name) {
    rx__fmt(errstr, errstr_len, "out of memory");
    goto fail;
  }
  q->cluster_url = rx__cluster_url(url);
  /* The name is checked first (queue.c does), then the URL. */
  if (name == NULL) {
    rx__fmt(errstr, errstr_len,
            "invalid queue name: 1..%d bytes without '{' or '}' are allowed", QC_NAME_MAX);
    goto fail;
  }
  if (build(q, 1, errstr, errstr_len) != RX_OK) goto fail;
  if (q->cluster_url) {
    q->cl = rx__cluster_new(url, errstr, errstr_len);
    if (!q->cl) goto fail;
  }
  return q;
fail:
  rx_queue_free(q);
  return NULL;
}

void rx_queue_free(rx_queue *q) {
  if (!q) return;
  parts_free(q->parts, q->nparts);
  rx_cluster_free(q->cl);
  if (q->conn) {
    rx__conn_deinit(q->conn);
    rx__free(q->conn);
  }
  if (q->have_base) rx__opts_free(&q->base);
  if (q->wake_rd >= 0) close(q->wake_rd);
  if (q->wake_wr >= 0) close(q->wake_wr);
  for (size_t i = 0; i < q->nopts; i++) {
    rx__free(q->opts[i].name);
    rx__free(q->opts[i].value);
  }
  rx__free(q->opts);
  rx__free(q->jobs);
  rx__free(q->dead);
  for (size_t i = 0; i < q->nbatch; i++) {
    rx__free(q->batch[i].id);
    rx__free(q->batch[i].payload);
  }
  rx__free(q->batch);
  if (q->url) memset(q->url, 0, strlen(q->url)); /* it may hold the password */
  rx__free(q->url);
  rx__free(q->name);
  rx__free(q);
}

/* Marks the handle used: partitions can no longer change. */
static void start(rx_queue *q) { q->started = 1; }

/* ---------------------------------------------------------------- options */

static int parse_ll(const char *v, long long min, long long max, long long *out) {
  if (!v || !*v) return RX_EINVAL;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || *end || x < min || x > max) return RX_EINVAL;
  *out = x;
  return RX_OK;
}

/* A connection option, on every link of a handle with partitions. */
static int set_conn_option(rx_queue *q, const char *name, const char *value) {
  int rc;
  if (q->cl) {
    rc = rx_cluster_set(q->cl, name, value);
    if (rc != RX_OK) return q_seterr(q, rc, "%s", rx_cluster_errstr(q->cl));
  } else {
    char err[200];
    rc = rx__opts_set(&q->base, name, value, err, sizeof err);
    if (rc != RX_OK) return q_seterr(q, rc, "%s", err);
    if (q->conn) rx_conn_set(q->conn, name, value);
  }
  for (int i = 0; i < q->nparts; i++)
    if (q->parts[i].w) rx_conn_set(q->parts[i].w, name, value);
  return RX_OK;
}

/* Sets an option on the current partitions (not partitions itself). */
static int apply_option(rx_queue *q, const char *name, const char *value) {
  if (!strcmp(name, "wait_replicas") || !strcmp(name, "wait_timeout_ms")) {
    int r = name[5] == 'r';
    long long v;
    if (parse_ll(value, r ? 0 : 1, r ? 1000 : 3600000, &v) != RX_OK)
      return q_seterr(q, RX_EINVAL, "option %s: \"%s\" is not an integer in %d..%d", name,
                      value, r ? 0 : 1, r ? 1000 : 3600000);
    if (r)
      q->wait_replicas = v;
    else
      q->wait_timeout_ms = v;
    return RX_OK;
  }
  int rc = rx__qp_set(P0(q), name, value);
  if (rc == RX_EURL && q->multi) return set_conn_option(q, name, value);
  take(q, P0(q), rc);
  if (rc != RX_OK) return rc;
  for (int i = 1; i < q->nparts; i++) rx__qp_set(q->parts[i].q, name, value);
  if (!strcmp(name, "block_cap_ms")) q->block_cap_ms = strtoll(value, NULL, 10);
  return RX_OK;
}

static int remember_option(rx_queue *q, const char *name, const char *value) {
  for (size_t i = 0; i < q->nopts; i++) {
    if (strcmp(q->opts[i].name, name)) continue;
    char *v = rx__strdup(value);
    if (!v) return q_seterr(q, RX_ENOMEM, "out of memory");
    rx__free(q->opts[i].value);
    q->opts[i].value = v;
    return RX_OK;
  }
  qc_opt *o = rx__realloc(q->opts, (q->nopts + 1) * sizeof *o);
  if (!o) return q_seterr(q, RX_ENOMEM, "out of memory");
  q->opts = o;
  o[q->nopts].name = rx__strdup(name);
  o[q->nopts].value = rx__strdup(value);
  if (!o[q->nopts].name || !o[q->nopts].value) {
    rx__free(o[q->nopts].name);
    rx__free(o[q->nopts].value);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  q->nopts++;
  return RX_OK;
}

int rx_queue_set(rx_queue *q, const char *name, const char *value) {
  if (!q || !name || !value) return RX_EINVAL;
  q_clearerr(q);
  if (!strcmp(name, "partitions")) {
    long long n;
    if (parse_ll(value, 1, QC_PARTS_MAX, &n) != RX_OK)
      return q_seterr(q, RX_EINVAL, "option partitions: \"%s\" is not an integer in 1..%d",
                      value, QC_PARTS_MAX);
    if (n == q->nparts) return RX_OK;
    if (q->started)
      return q_seterr(q, RX_ESTATE,
                      "queue '%s': set partitions before the first call (every message's "
                      "partition depends on it)",
                      q->name);
    if (n > 1 && strlen(q->name) > QC_NAME_MAX - QC_PART_SUFFIX_MAX)
      return q_seterr(q, RX_EINVAL,
                      "queue '%s': a partitioned queue's name has at most %d bytes", q->name,
                      QC_NAME_MAX - QC_PART_SUFFIX_MAX);
    char err[256];
    int rc = build(q, (int)n, err, sizeof err);
    if (rc != RX_OK) return q_seterr(q, rc, "queue '%s': %s", q->name, err);
    /* The new partitions get every option set so far. */
    for (size_t i = 0; i < q->nopts; i++) apply_option(q, q->opts[i].name, q->opts[i].value);
    q_clearerr(q);
    return RX_OK;
  }
  int rc = apply_option(q, name, value);
  if (rc == RX_OK) rc = remember_option(q, name, value);
  return rc;
}

const char *rx_queue_name(const rx_queue *q) { return q ? q->name : ""; }
int rx_queue_err(const rx_queue *q) { return q ? q->err : RX_EINVAL; }
const char *rx_queue_errstr(const rx_queue *q) { return q ? q->errstr : ""; }

const char *rx_queue_warning(const rx_queue *q) {
  if (!q) return "";
  for (int i = 0; i < q->nparts; i++) {
    const char *w = rx__qp_warning(q->parts[i].q);
    if (w && *w) return w;
  }
  return "";
}

rx_conn *rx_queue_conn(rx_queue *q) {
  if (!q) return NULL;
  if (!q->multi) return rx__qp_conn(P0(q));
  return q->parts[0].conn;
}

void rx_queue_wakeup(rx_queue *q) {
  if (!q) return;
  if (!q->multi) {
    rx__qp_wakeup(P0(q));
    return;
  }
  char b = 1;
  ssize_t n = write(q->wake_wr, &b, 1); /* a full pipe already holds a wakeup */
  (void)n;
}

int rx_queue_partitions(const rx_queue *q) { return q ? q->nparts : 0; }

int rx_queue_partition_of(const rx_queue *q, const char *id, size_t id_len) {
  if (!q || (!id && id_len)) return RX_EINVAL;
  return part_of(q, id, id_len);
}

const char *rx_queue_partition_name(const rx_queue *q, int i) {
  return q && i >= 0 && i < q->nparts ? q->parts[i].name : NULL;
}

/* ---------------------------------------------------------------- producing */

typedef struct sched_ctx {
  const char *id;
  size_t id_len;
  const char *payload;
  size_t payload_len;
  long long when_ms;
  int flags;
  int scheduled; /* the last try scheduled it (its WAIT may still have failed) */
  int outcome;
  long long due_ms;
} sched_ctx;

static int op_schedule(rx_queue *q, qc_part *pp, void *v) {
  sched_ctx *x = v;
  int rc = rx__qp_schedule(pp->q, x->id, x->id_len, x->payload, x->payload_len, x->when_ms,
                           x->flags, NULL, 0, &x->outcome, &x->due_ms);
  take(q, pp->q, rc);
  x->scheduled = rc == RX_OK;
  if (rc == RX_OK) rc = wait_replicas(q, pp->conn, pp->name, "scheduled");
  return rc;
}

int rx_queue_schedule(rx_queue *q, const char *id, size_t id_len, const char *payload,
                      size_t payload_len, long long when_ms, int flags, char *out_id,
                      size_t out_id_len, int *outcome, long long *due_ms) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) {
    int rc = take(q, P0(q),
                  rx__qp_schedule(P0(q), id, id_len, payload, payload_len, when_ms, flags,
                                  out_id, out_id_len, outcome, due_ms));
    if (rc == RX_OK) rc = wait_replicas(q, rx__qp_conn(P0(q)), q->name, "scheduled");
    return rc;
  }
  char gen[RX_QUEUE_GEN_ID_SIZE];
  if (!id || !id_len) {
    /* The id is fixed before the first try, so a retry is the same message. */
    gen_id(gen);
    id = gen;
    id_len = 12;
  }
  sched_ctx x = {id, id_len, payload, payload_len, when_ms, flags, 0, 0, 0};
  int rc = run_part(q, &q->parts[part_of(q, id, id_len)], 1, op_schedule, &x);
  if (x.scheduled) {
    /* Scheduled (perhaps without the replicas' confirmation). */
    if (outcome) *outcome = x.outcome;
    if (due_ms) *due_ms = x.due_ms;
    if (out_id && out_id_len) {
      size_t n = id_len < out_id_len - 1 ? id_len : out_id_len - 1;
      memcpy(out_id, id, n);
      out_id[n] = '\0';
    }
  }
  return rc;
}

int rx_queue_batch_add(rx_queue *q, const char *id, size_t id_len, const char *payload,
                       size_t payload_len, long long when_ms, int flags) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_batch_add(P0(q), id, id_len, payload,
                                                         payload_len, when_ms, flags));
  if (q->batch_sent) rx_queue_batch_clear(q);
  for (int i = 0; i < q->nparts; i++) q->parts[i].batch_done = 0;
  char gen[RX_QUEUE_GEN_ID_SIZE];
  if (!id || !id_len) {
    gen_id(gen);
    id = gen;
    id_len = 12;
  }
  int p = part_of(q, id, id_len);
  /* queue.c checks the message (id, payload size, due time) as it adds it
   * to its own batch, which is only filled when sending: check, empty it. */
  rx__qp *pq = q->parts[p].q;
  int rc = take(q, pq, rx__qp_batch_add(pq, id, id_len, payload, payload_len, when_ms, flags));
  rx__qp_batch_clear(pq);
  if (rc != RX_OK) return rc;
  if (q->nbatch == q->batch_cap) {
    size_t cap = q->batch_cap ? q->batch_cap * 2 : 64;
    qc_item *nb = rx__realloc(q->batch, cap * sizeof *nb);
    if (!nb) return q_seterr(q, RX_ENOMEM, "out of memory");
    q->batch = nb;
    q->batch_cap = cap;
  }
  qc_item *b = &q->batch[q->nbatch];
  memset(b, 0, sizeof *b);
  b->id = rx__memdup(id, id_len);
  b->payload = rx__memdup(payload ? payload : "", payload_len);
  if (!b->id || !b->payload) {
    rx__free(b->id);
    rx__free(b->payload);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  b->id_len = id_len;
  b->payload_len = payload_len;
  b->when_ms = when_ms;
  b->flags = flags;
  b->part = p;
  q->nbatch++;
  return RX_OK;
}

size_t rx_queue_batch_count(const rx_queue *q) {
  if (!q) return 0;
  return q->multi ? q->nbatch : rx__qp_batch_count(P0(q));
}

void rx_queue_batch_clear(rx_queue *q) {
  if (!q) return;
  if (q->parts && !q->multi) rx__qp_batch_clear(P0(q));
  for (size_t i = 0; i < q->nbatch; i++) {
    rx__free(q->batch[i].id);
    rx__free(q->batch[i].payload);
  }
  q->nbatch = 0;
  q->batch_sent = 0;
}

/* Sends partition p's messages of the batch (all of them on every try). */
static int op_batch(rx_queue *q, qc_part *pp, void *v) {
  int p = *(int *)v;
  rx__qp_batch_clear(pp->q);
  for (size_t i = 0; i < q->nbatch; i++) {
    qc_item *b = &q->batch[i];
    if (b->part != p) continue;
    int rc = rx__qp_batch_add(pp->q, b->id, b->id_len, b->payload, b->payload_len, b->when_ms,
                              b->flags);
    if (rc != RX_OK) return take(q, pp->q, rc);
  }
  int rc = take(q, pp->q, rx__qp_batch_send(pp->q));
  if (rc != RX_OK) return rc;
  size_t k = 0;
  for (size_t i = 0; i < q->nbatch; i++) {
    qc_item *b = &q->batch[i];
    if (b->part != p) continue;
    rx__qp_batch_result(pp->q, k++, &b->outcome, NULL, NULL, &b->due_ms);
  }
  return wait_replicas(q, pp->conn, pp->name, "batch scheduled");
}

int rx_queue_batch_send(rx_queue *q) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) {
    int rc = take(q, P0(q), rx__qp_batch_send(P0(q)));
    if (rc == RX_OK && rx__qp_batch_count(P0(q)))
      rc = wait_replicas(q, rx__qp_conn(P0(q)), q->name, "batch scheduled");
    return rc;
  }
  if (q->batch_sent) {
    /* Sent once already: send it all again, as one partition does. */
    for (int p = 0; p < q->nparts; p++) q->parts[p].batch_done = 0;
    q->batch_sent = 0;
  }
  int first = RX_OK;
  char first_msg[sizeof q->errstr];
  first_msg[0] = '\0';
  for (int p = 0; p < q->nparts; p++) {
    qc_part *pp = &q->parts[p];
    int any = 0;
    for (size_t i = 0; i < q->nbatch && !any; i++) any = q->batch[i].part == p;
    if (!any || pp->batch_done) continue;
    int rc = run_part(q, pp, 1, op_batch, &p);
    rx__qp_batch_clear(pp->q);
    if (rc == RX_OK) {
      pp->batch_done = 1;
    } else if (first == RX_OK) {
      /* The other partitions are still sent; sending again sends what failed. */
      first = rc;
      memcpy(first_msg, q->errstr, sizeof first_msg);
    }
  }
  if (first != RX_OK) {
    q->err = first;
    memcpy(q->errstr, first_msg, sizeof first_msg);
    return first;
  }
  q->batch_sent = 1;
  return RX_OK;
}

int rx_queue_batch_result(const rx_queue *q, size_t i, int *outcome, const char **id,
                          size_t *id_len, long long *due_ms) {
  if (!q) return RX_EINVAL;
  if (!q->multi) return rx__qp_batch_result(P0(q), i, outcome, id, id_len, due_ms);
  if (!q->batch_sent || i >= q->nbatch) return RX_EINVAL;
  const qc_item *b = &q->batch[i];
  if (outcome) *outcome = b->outcome;
  if (id) *id = b->id;
  if (id_len) *id_len = b->id_len;
  if (due_ms) *due_ms = b->due_ms;
  return RX_OK;
}

typedef struct id_ctx {
  const char *id;
  size_t id_len;
  long long when_ms;
  int flags;
  int cancel;
} id_ctx;

static int op_by_id(rx_queue *q, qc_part *pp, void *v) {
  id_ctx *x = v;
  int rc = x->cancel ? rx__qp_cancel(pp->q, x->id, x->id_len)
                     : rx__qp_reschedule(pp->q, x->id, x->id_len, x->when_ms, x->flags);
  return take(q, pp->q, rc);
}

int rx_queue_cancel(rx_queue *q, const char *id, size_t id_len) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_cancel(P0(q), id, id_len));
  if (!id || !id_len) return q_seterr(q, RX_EINVAL, "no message id");
  id_ctx x = {id, id_len, 0, 0, 1};
  return run_part(q, &q->parts[part_of(q, id, id_len)], 0, op_by_id, &x);
}

int rx_queue_reschedule(rx_queue *q, const char *id, size_t id_len, long long when_ms,
                        int flags) {
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_reschedule(P0(q), id, id_len, when_ms, flags));
  if (!id || !id_len) return q_seterr(q, RX_EINVAL, "no message id");
  id_ctx x = {id, id_len, when_ms, flags, 0};
  return run_part(q, &q->parts[part_of(q, id, id_len)], 0, op_by_id, &x);
}

int rx_queue_run_now(rx_queue *q, const char *id, size_t id_len) {
  return rx_queue_reschedule(q, id, id_len, 0, 0);
}

/* ---------------------------------------------------------------- waiting */

/* Connects pp's waiter to its partition's current master (a new link when
 * the master changed) and sends XREAD BLOCK after its last wake id, unless
 * one is outstanding. Failures only delay the next try: a partition without
 * a waiter is still looked at on its due times and every block_cap_ms. */
static void ensure_waiter(rx_queue *q, qc_part *pp) {
  long long now = mono();
  long long block = q->block_cap_ms + 1000;
  rx__cl_node *node = q->cl ? q->cl->slots[pp->slot] : NULL;
  if (q->cl && !node) return;
  if (pp->w && q->cl && pp->w_node != node) waiter_free(pp);
  if (pp->w_outstanding) {
    int t = pp->w->opts.timeout_ms > 0 ? pp->w->opts.timeout_ms : 5000;
    if (now <= pp->w_sent_ms + block + t) return;
    /* An XREAD that outlived its block time by far sits on a dead link. */
    rx_conn_close(pp->w);
    pp->w_outstanding = 0;
  }
  if (now < pp->w_retry_at) return;
  if (!pp->w) {
    pp->w = rx__calloc(1, sizeof *pp->w);
    if (!pp->w) return;
    rx_opts o;
    if (rx__opts_copy(&o, q->cl ? &q->cl->opts : &q->base) != RX_OK) {
      rx__free(pp->w);
      pp->w = NULL;
      return;
    }
    int rc = RX_OK;
    if (q->cl) {
      rx__free(o.host);
      o.host = rx__strdup(node->host);
      o.port = node->port;
      o.cluster = 0;
      if (!o.host) rc = RX_ENOMEM;
    }
    if (rc == RX_OK) rc = rx__conn_init(pp->w, &o); /* takes a copy */
    rx__opts_free(&o);
    if (rc != RX_OK) {
      rx__free(pp->w);
      pp->w = NULL;
      return;
    }
    pp->w_node = node;
  }
  int rc = RX_OK;
  if (!rx_conn_is_connected(pp->w)) rc = open_within(pp->w, now + 1000);
  if (rc == RX_OK) {
    char bs[24];
    snprintf(bs, sizeof bs, "%lld", block);
    const char *a[6] = {"XREAD", "BLOCK", bs, "STREAMS", pp->wkey, pp->wid};
    rc = rx_conn_append(pp->w, 6, a, NULL);
    if (rc == RX_OK) rc = rx__conn_flush(pp->w, mono() + 1000);
  }
  if (rc != RX_OK) {
    rx_conn_close(pp->w);
    if (q->cl) q->cl->need_refresh = 1;
    pp->w_fails++;
    pp->w_retry_at = now + (pp->w_fails > 5 ? 1000 : 50LL << pp->w_fails);
    return;
  }
  pp->w_outstanding = 1;
  pp->w_sent_ms = now;
}

/* Reads pp's XREAD reply if it has come (never waits). 1 when it did: the
 * partition is to be looked at again. */
static int hint_read(rx_queue *q, qc_part *pp) {
  if (!pp->w_outstanding) return 0;
  rx_reply *r = NULL;
  int rc = rx__conn_read(pp->w, &r, 0);
  if (rc == RX_TIMEOUT || rc == RX_WOKEN || rc == RX_EINTR) return 0;
  pp->w_outstanding = 0;
  long long now = mono();
  if (rc == RX_OK) {
    pp->w->pending--;
    int bad = r->type == RX_REPLY_ERROR, nil = r->type == RX_REPLY_NIL;
    rx_reply_free(r);
    if (nil) {
      /* Its block time ran out: nothing new (block_cap_ms brings the
       * partition's regular look); the next wait sends another. */
      pp->w_fails = 0;
      return 0;
    }
    if (!bad) {
      pp->w_fails = 0;
      pp->look_at = now;
      return 1;
    }
    rx_conn_close(pp->w); /* MOVED, ASK...: the fetch finds out, the map follows */
  }
  if (q->cl) q->cl->need_refresh = 1;
  pp->w_fails++;
  pp->w_retry_at = now + (pp->w_fails > 5 ? 1000 : 50LL << pp->w_fails);
  pp->look_at = now;
  return 1;
}

/* Waits until `until` (monotonic ms, -1 none) for a hint on any partition.
 * 0 (a hint or the time: look again), RX_WOKEN, RX_EINTR. */
static int wait_any(rx_queue *q, long long until) {
  for (int i = 0; i < q->nparts; i++) ensure_waiter(q, &q->parts[i]);
  int hinted = 0;
  for (int i = 0; i < q->nparts; i++) hinted |= hint_read(q, &q->parts[i]);
  if (hinted) return RX_OK;
  struct pollfd stack[17], *fds = stack;
  if (q->nparts + 1 > 17) {
    fds = rx__calloc((size_t)q->nparts + 1, sizeof *fds);
    if (!fds) return RX_OK; /* look again; the next wait tries again */
  }
  int nf = 0;
  fds[nf].fd = q->wake_rd;
  fds[nf].events = POLLIN;
  fds[nf++].revents = 0;
  for (int i = 0; i < q->nparts; i++) {
    qc_part *pp = &q->parts[i];
    if (!pp->w_outstanding) continue;
    fds[nf].fd = pp->w->fd;
    fds[nf].events = POLLIN;
    fds[nf++].revents = 0;
  }
  /* A partition without a waiter gets one again when its backoff ends. */
  long long now = mono();
  for (int i = 0; i < q->nparts; i++) {
    qc_part *pp = &q->parts[i];
    if (!pp->w_outstanding && pp->w_retry_at > now && (until < 0 || pp->w_retry_at < until))
      until = pp->w_retry_at;
  }
  int n = poll(fds, (nfds_t)nf, rx__remaining(until));
  int rc = RX_OK;
  if (n < 0 && errno == EINTR) {
    rc = RX_EINTR;
  } else if (n > 0 && (fds[0].revents & POLLIN)) {
    rx__wake_drain(q->wake_rd);
    rc = RX_WOKEN;
  } else {
    for (int i = 0; i < q->nparts; i++) hint_read(q, &q->parts[i]);
  }
  if (fds != stack) rx__free(fds);
  return rc;
}

/* ---------------------------------------------------------------- fetch */

typedef struct fetch_ctx {
  size_t max;
} fetch_ctx;

static int op_fetch(rx_queue *q, qc_part *pp, void *v) {
  fetch_ctx *x = v;
  return take(q, pp->q, rx__qp_fetch(pp->q, x->max, 0, NULL, NULL));
}

/* One round over the partitions whose time to look has come (all of them
 * when all is set), from q->rr on, collecting up to max jobs. Returns 0, or
 * an error to report (*hard: it is not one to ride out). */
static int fetch_pass(rx_queue *q, size_t max, int all) {
  int report = RX_OK;
  char report_msg[sizeof q->errstr] = "";
  int t = cmd_timeout(q);
  for (int k = 0; k < q->nparts && q->njobs < max; k++) {
    int p = (int)((q->rr + (size_t)k) % (size_t)q->nparts);
    qc_part *pp = &q->parts[p];
    long long now = mono();
    if (pp->retry_at > now || (!all && pp->look_at > now)) continue;
    fetch_ctx x = {max - q->njobs};
    int kind;
    int rc = attempt(q, pp, 1, t > 0 ? now + t : -1, op_fetch, &x, &kind);
    now = mono();
    if (kind == K_OK) {
      pp->fails = 0;
      pp->fail_since = 0;
      long long snow, due;
      rx__qp_fetch_hint(pp->q, &snow, &due, pp->wid, sizeof pp->wid);
      if (rc == RX_OK) {
        size_t nj = rx__qp_job_count(pp->q);
        for (size_t i = 0; i < nj && q->njobs < max; i++) {
          q->jobs[q->njobs] = *rx__qp_job(pp->q, i);
          mark_token(q, &q->jobs[q->njobs++], p);
        }
        pp->look_at = now; /* there may be more */
      } else {
        long long at = now + q->block_cap_ms;
        if (due >= 0) {
          long long d = due - snow;
          if (d < 1) d = 1;
          if (now + d < at) at = now + d;
        }
        pp->look_at = at;
        ensure_waiter(q, pp); /* hear of what producers add meanwhile */
      }
      continue;
    }
    if (kind == K_HARD) {
      if (report == RX_OK) {
        report = rc;
        memcpy(report_msg, q->errstr, sizeof report_msg);
      }
      pp->retry_at = now + 100; /* the others are still served */
      continue;
    }
    /* Transient (failover, migration, a refused link): ride it out for up
     * to the command timeout while the other partitions are served. */
    pp->fails++;
    if (!pp->fail_since) pp->fail_since = now;
    long long b = kind == K_MOVED && pp->fails <= 2 ? 0 : 10LL << (pp->fails > 5 ? 5 : pp->fails);
    pp->retry_at = now + b;
    pp->look_at = pp->retry_at;
    if (t > 0 && now - pp->fail_since > t && report == RX_OK) {
      pp->fail_since = now;
      report = rc;
      memcpy(report_msg, q->errstr, sizeof report_msg);
    }
  }
  q->rr = (q->rr + 1) % (size_t)q->nparts;
  if (report != RX_OK) {
    q->err = report;
    memcpy(q->errstr, report_msg, sizeof report_msg);
  }
  return report;
}

int rx_queue_fetch(rx_queue *q, size_t max, int timeout_ms, rx_job *jobs, size_t *n) {
  if (n) *n = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_fetch(P0(q), max, timeout_ms, jobs, n));
  if (max == 0 || max > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': fetch max must be 1..1000", q->name);
  q->njobs = 0;
  if (q->jobs_cap < max) {
    rx_job *nj = rx__realloc(q->jobs, max * sizeof *nj);
    if (!nj) return q_seterr(q, RX_ENOMEM, "out of memory");
    q->jobs = nj;
    q->jobs_cap = max;
  }
  long long deadline = timeout_ms < 0 ? -1 : mono() + timeout_ms;
  int all = timeout_ms == 0; /* not blocking: ask every partition */
  for (;;) {
    for (int i = 0; i < q->nparts; i++) hint_read(q, &q->parts[i]);
    int rc = fetch_pass(q, max, all);
    all = 0;
    if (q->njobs) break;
    if (rc != RX_OK) return rc;
    long long now = mono();
    if (deadline >= 0 && now >= deadline) return RX_TIMEOUT;
    long long until = deadline;
    for (int i = 0; i < q->nparts; i++) {
      qc_part *pp = &q->parts[i];
      long long at = pp->look_at > pp->retry_at ? pp->look_at : pp->retry_at;
      if (until < 0 || at < until) until = at;
    }
    if (until >= 0 && until <= now) continue;
    rc = wait_any(q, until);
    if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
  }
  q_clearerr(q); /* what was ridden out is not this call's error */
  if (jobs) memcpy(jobs, q->jobs, q->njobs * sizeof *jobs);
  if (n) *n = q->njobs;
  return RX_OK;
}

const rx_job *rx_queue_job(const rx_queue *q, size_t i) {
  if (!q) return NULL;
  if (!q->multi) return rx__qp_job(P0(q), i);
  return i < q->njobs ? &q->jobs[i] : NULL;
}

size_t rx_queue_job_count(const rx_queue *q) {
  if (!q) return 0;
  return q->multi ? q->njobs : rx__qp_job_count(P0(q));
}

/* ---------------------------------------------------------------- settle */

typedef struct ack_ctx {
  const char *tokens;
  size_t len;
  size_t acked;
} ack_ctx;

static int op_ack(rx_queue *q, qc_part *pp, void *v) {
  ack_ctx *x = v;
  return take(q, pp->q, rx__qp_ack_many(pp->q, x->tokens, x->len, &x->acked));
}

static int is_sep(char c) { return c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r'; }

int rx_queue_ack_many(rx_queue *q, const char *tokens, size_t len, size_t *acked) {
  if (acked) *acked = 0;
  if (!q || (!tokens && len)) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_ack_many(P0(q), tokens, len, acked));
  if (q->nparts == 1) {
    ack_ctx x = {tokens, len, 0};
    int rc = run_part(q, &q->parts[0], 0, op_ack, &x);
    if (acked) *acked = x.acked;
    return rc;
  }
  /* One list per partition, without the prefixes. */
  rx_buf *lists = rx__calloc((size_t)q->nparts, sizeof *lists);
  size_t *counts = rx__calloc((size_t)q->nparts, sizeof *counts);
  int rc = RX_OK;
  size_t total = 0;
  if (!lists || !counts) {
    rc = q_seterr(q, RX_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < len;) {
    while (i < len && is_sep(tokens[i])) i++;
    size_t s = i;
    while (i < len && !is_sep(tokens[i])) i++;
    if (i == s) continue;
    int p;
    const char *rest;
    size_t rl;
    if (split_token(q, tokens + s, i - s, &p, &rest, &rl) != 0) {
      rc = q_seterr(q, RX_EINVAL, "queue '%s': \"%.*s\" is not a delivery token", q->name,
                    (int)(i - s > 60 ? 60 : i - s), tokens + s);
      goto out;
    }
    if (rx__buf_append(&lists[p], rest, rl) != RX_OK || rx__buf_append(&lists[p], " ", 1)) {
      rc = q_seterr(q, RX_ENOMEM, "out of memory");
      goto out;
    }
    counts[p]++;
    total++;
  }
  if (total == 0) {
    rc = q_seterr(q, RX_EINVAL, "no delivery token");
    goto out;
  }
  size_t ok = 0;
  int first = RX_OK, stale = 0;
  char first_msg[sizeof q->errstr] = "";
  for (int p = 0; p < q->nparts; p++) {
    if (!counts[p]) continue;
    ack_ctx x = {lists[p].data, lists[p].len, 0};
    int r = run_part(q, &q->parts[p], 0, op_ack, &x);
    ok += x.acked;
    if (r == RX_ESTALE) {
      stale = 1;
    } else if (r != RX_OK && first == RX_OK) {
      first = r;
      memcpy(first_msg, q->errstr, sizeof first_msg);
    }
  }
  if (acked) *acked = ok;
  if (first != RX_OK) {
    q->err = first;
    memcpy(q->errstr, first_msg, sizeof first_msg);
    rc = first;
  } else if (stale) {
    rc = q_seterr(q, RX_ESTALE,
                  "queue '%s': %zu of %zu deliveries were no longer pending (reclaimed after "
                  "the visibility timeout, or acked already): not acked",
                  q->name, total - ok, total);
  } else {
    q_clearerr(q);
  }
out:
  if (lists)
    for (int p = 0; p < q->nparts; p++) rx__buf_free(&lists[p]);
  rx__free(lists);
  rx__free(counts);
  return rc;
}

int rx_queue_ack(rx_queue *q, const char *token) {
  if (!q || !token) return RX_EINVAL;
  return rx_queue_ack_many(q, token, strlen(token), NULL);
}

int rx_queue_ack_fetch(rx_queue *q, const rx_job *ack, size_t nack, size_t *acked, size_t max,
                       int timeout_ms, rx_job *jobs, size_t *n) {
  if (n) *n = 0;
  if (acked) *acked = 0;
  if (!q || (!ack && nack)) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q),
                rx__qp_ack_fetch(P0(q), ack, nack, acked, max, timeout_ms, jobs, n));
  }
  /* Partitions: the acks go to their partitions first (one round trip per
   * partition involved), then the fetch; stale ones are no error here.
   * Bad arguments are refused before anything is acked, as with one. */
  if (max == 0 || max > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': fetch max must be 1..1000", q->name);
  if (nack > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': at most 1000 jobs to ack per fetch", q->name);
  if (nack) {
    int rc = rx_queue_ack_jobs(q, ack, nack, acked);
    if (rc != RX_OK && rc != RX_ESTALE) return rc;
  }
  return rx_queue_fetch(q, max, timeout_ms, jobs, n);
}

static int is_token_sep(char c) {
  return c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r';
}

int rx_queue_ack_many_fetch(rx_queue *q, const char *tokens, size_t len, size_t *acked,
                            size_t max, int timeout_ms, rx_job *jobs, size_t *n) {
  if (n) *n = 0;
  if (acked) *acked = 0;
  if (!q || (!tokens && len)) return RX_EINVAL;
  q_clearerr(q);
  /* The tokens into job slots (only their token is read): rx_queue_ack_fetch
   * checks each and the counts, as for C callers. */
  size_t cap = 0;
  for (size_t i = 0; i < len; i++)
    if (!is_token_sep(tokens[i]) && (i == 0 || is_token_sep(tokens[i - 1]))) cap++;
  if (cap > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': at most 1000 jobs to ack per fetch", q->name);
  rx_job *ack = NULL;
  if (cap) {
    ack = rx__malloc(cap * sizeof *ack);
    if (!ack) return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  size_t nack = 0;
  for (size_t i = 0; i < len;) {
    while (i < len && is_token_sep(tokens[i])) i++;
    size_t s = i;
    while (i < len && !is_token_sep(tokens[i])) i++;
    if (i == s) continue;
    if (i - s >= RX_QUEUE_TOKEN_SIZE || memchr(tokens + s, 0, i - s)) {
      rx__free(ack);
      return q_seterr(q, RX_EINVAL, "queue '%s': \"%.*s\" is not a delivery token", q->name,
                      (int)(i - s > 60 ? 60 : i - s), tokens + s);
    }
    memcpy(ack[nack].token, tokens + s, i - s);
    ack[nack].token[i - s] = '\0';
    nack++;
  }
  int rc = rx_queue_ack_fetch(q, ack, nack, acked, max, timeout_ms, jobs, n);
  rx__free(ack);
  return rc;
}

int rx_queue_ack_jobs(rx_queue *q, const rx_job *jobs, size_t n, size_t *acked) {
  if (acked) *acked = 0;
  if (!q || (!jobs && n)) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q), rx__qp_ack_jobs(P0(q), jobs, n, acked));
  }
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

typedef struct settle_ctx {
  char token[RX_QUEUE_TOKEN_SIZE];
  int mode; /* 0 retry, 1 fail, 2 extend */
  long long ms;
  const char *error;
  size_t error_len;
  int dead;
} settle_ctx;

static int op_settle(rx_queue *q, qc_part *pp, void *v) {
  settle_ctx *x = v;
  int rc;
  if (x->mode == 0)
    rc = rx__qp_retry(pp->q, x->token, x->ms, x->error, x->error_len, &x->dead);
  else if (x->mode == 1)
    rc = rx__qp_fail(pp->q, x->token, x->error, x->error_len);
  else
    rc = rx__qp_extend(pp->q, x->token, x->ms);
  return take(q, pp->q, rc);
}

/* The partition of a delivery token, and its own token into x->token. */
static int route_token(rx_queue *q, const char *token, settle_ctx *x, const char *what) {
  int p;
  const char *rest;
  size_t rl;
  if (!token || split_token(q, token, strlen(token), &p, &rest, &rl) != 0 ||
      rl >= sizeof x->token)
    return q_seterr(q, RX_EINVAL, "queue '%s': not a %s token", q->name, what);
  memcpy(x->token, rest, rl);
  x->token[rl] = '\0';
  return p;
}

static int settle(rx_queue *q, const char *token, settle_ctx *x) {
  q_clearerr(q);
  start(q);
  int p = route_token(q, token, x, "delivery");
  if (p < 0) return p;
  return run_part(q, &q->parts[p], 0, op_settle, x);
}

int rx_queue_retry(rx_queue *q, const char *token, long long delay_ms, const char *error,
                   size_t error_len, int *dead) {
  if (dead) *dead = 0;
  if (!q) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q), rx__qp_retry(P0(q), token, delay_ms, error, error_len, dead));
  }
  settle_ctx x;
  memset(&x, 0, sizeof x);
  x.mode = 0;
  x.ms = delay_ms;
  x.error = error;
  x.error_len = error_len;
  int rc = settle(q, token, &x);
  if (dead) *dead = x.dead;
  return rc;
}

int rx_queue_fail(rx_queue *q, const char *token, const char *error, size_t error_len) {
  if (!q) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q), rx__qp_fail(P0(q), token, error, error_len));
  }
  settle_ctx x;
  memset(&x, 0, sizeof x);
  x.mode = 1;
  x.error = error;
  x.error_len = error_len;
  return settle(q, token, &x);
}

int rx_queue_extend(rx_queue *q, const char *token, long long ms) {
  if (!q) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q), rx__qp_extend(P0(q), token, ms));
  }
  settle_ctx x;
  memset(&x, 0, sizeof x);
  x.mode = 2;
  x.ms = ms;
  return settle(q, token, &x);
}

/* ---------------------------------------------------------------- dead letters */

typedef struct dead_ctx {
  const char *after;
  size_t max;
  size_t n;
  const char *token;
  long long delay_ms;
  size_t count;
  int mode; /* 0 list, 1 requeue, 2 purge */
} dead_ctx;

static int op_dead(rx_queue *q, qc_part *pp, void *v) {
  dead_ctx *x = v;
  int rc;
  if (x->mode == 0)
    rc = rx__qp_dead_list(pp->q, x->after, x->max, &x->n);
  else if (x->mode == 1)
    rc = rx__qp_dead_requeue(pp->q, x->token, x->delay_ms, &x->count);
  else
    rc = rx__qp_dead_purge(pp->q, x->token, &x->count);
  return take(q, pp->q, rc);
}

/* A stream id "<ms>-<seq>" into numbers (tokens were checked by queue.c). */
static void parse_sid(const char *t, unsigned long long *ms, unsigned long long *seq) {
  char *end;
  *ms = strtoull(t, &end, 10);
  *seq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
}

/* The id just before t, as an exclusive start: "" when t is the first. */
static void before(const char *t, char *out, size_t len) {
  unsigned long long ms, seq;
  parse_sid(t, &ms, &seq);
  if (seq > 0)
    rx__fmt(out, len, "%llu-%llu", ms, seq - 1);
  else if (ms > 0)
    rx__fmt(out, len, "%llu-%llu", ms - 1, 18446744073709551615ULL);
  else
    out[0] = '\0';
}

/* Dead letters of every partition in one order: by their id in the dead
 * stream (the time they died), then by partition. */
static int cmp_dead(const rx_job *a, int pa, const rx_job *b, int pb) {
  unsigned long long am, as, bm, bs;
  parse_sid(a->token, &am, &as);
  parse_sid(b->token, &bm, &bs);
  if (am != bm) return am < bm ? -1 : 1;
  if (as != bs) return as < bs ? -1 : 1;
  return (pa > pb) - (pa < pb);
}

int rx_queue_dead_list(rx_queue *q, const char *after, size_t max, size_t *n) {
  if (n) *n = 0;
  if (!q) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_dead_list(P0(q), after, max, n));
  if (max == 0 || max > 1000)
    return q_seterr(q, RX_EINVAL, "queue '%s': list max must be 1..1000", q->name);
  int ap = -1;
  char atok[RX_QUEUE_TOKEN_SIZE] = "";
  if (after && *after) {
    const char *rest;
    size_t rl;
    if (split_token(q, after, strlen(after), &ap, &rest, &rl) != 0 || rl >= sizeof atok)
      return q_seterr(q, RX_EINVAL, "queue '%s': not a dead-letter token", q->name);
    memcpy(atok, rest, rl);
    atok[rl] = '\0';
  }
  /* Each partition's next max, then a merge of the heads. */
  if (q->dead_cap < max) {
    rx_job *nd = rx__realloc(q->dead, max * sizeof *nd);
    if (!nd) return q_seterr(q, RX_ENOMEM, "out of memory");
    q->dead = nd;
    q->dead_cap = max;
  }
  size_t *got = rx__calloc((size_t)q->nparts, sizeof *got);
  size_t *pos = rx__calloc((size_t)q->nparts, sizeof *pos);
  int rc = RX_OK;
  if (!got || !pos) {
    rx__free(got);
    rx__free(pos);
    return q_seterr(q, RX_ENOMEM, "out of memory");
  }
  q->ndead = 0;
  for (int p = 0; p < q->nparts && rc == RX_OK; p++) {
    char start_tok[RX_QUEUE_TOKEN_SIZE] = "";
    if (ap >= 0) {
      if (p <= ap)
        memcpy(start_tok, atok, sizeof start_tok); /* after it */
      else
        before(atok, start_tok, sizeof start_tok); /* from it on */
    }
    dead_ctx x = {start_tok, max, 0, NULL, 0, 0, 0};
    rc = run_part(q, &q->parts[p], 1, op_dead, &x);
    got[p] = x.n;
  }
  if (rc == RX_OK) {
    while (q->ndead < max) {
      int best = -1;
      for (int p = 0; p < q->nparts; p++) {
        if (pos[p] >= got[p]) continue;
        if (best < 0 || cmp_dead(rx__qp_dead(q->parts[p].q, pos[p]), p,
                                 rx__qp_dead(q->parts[best].q, pos[best]), best) < 0)
          best = p;
      }
      if (best < 0) break;
      q->dead[q->ndead] = *rx__qp_dead(q->parts[best].q, pos[best]++);
      mark_token(q, &q->dead[q->ndead++], best);
    }
    if (n) *n = q->ndead;
  }
  rx__free(got);
  rx__free(pos);
  return rc;
}

const rx_job *rx_queue_dead(const rx_queue *q, size_t i) {
  if (!q) return NULL;
  if (!q->multi) return rx__qp_dead(P0(q), i);
  return i < q->ndead ? &q->dead[i] : NULL;
}

/* Requeue (mode 1) or purge (mode 2): one by token, or all everywhere. */
static int dead_change(rx_queue *q, const char *token, long long delay_ms, size_t *count,
                       int mode) {
  if (count) *count = 0;
  q_clearerr(q);
  start(q);
  if (token && *token) {
    settle_ctx t;
    int p = route_token(q, token, &t, "dead-letter");
    if (p < 0) return p;
    dead_ctx x = {NULL, 0, 0, t.token, delay_ms, 0, mode};
    int rc = run_part(q, &q->parts[p], 0, op_dead, &x);
    if (count) *count = x.count;
    return rc;
  }
  size_t total = 0;
  int first = RX_OK;
  char first_msg[sizeof q->errstr] = "";
  for (int p = 0; p < q->nparts; p++) {
    dead_ctx x = {NULL, 0, 0, NULL, delay_ms, 0, mode};
    int rc = run_part(q, &q->parts[p], 0, op_dead, &x);
    total += x.count;
    if (rc < 0 && first == RX_OK) {
      first = rc;
      memcpy(first_msg, q->errstr, sizeof first_msg);
    }
  }
  if (count) *count = total;
  if (first != RX_OK) {
    q->err = first;
    memcpy(q->errstr, first_msg, sizeof first_msg);
    return first;
  }
  q_clearerr(q);
  return RX_OK;
}

int rx_queue_dead_requeue(rx_queue *q, const char *token, long long delay_ms, size_t *count) {
  if (count) *count = 0;
  if (!q) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q), rx__qp_dead_requeue(P0(q), token, delay_ms, count));
  }
  return dead_change(q, token, delay_ms, count, 1);
}

int rx_queue_dead_purge(rx_queue *q, const char *token, size_t *count) {
  if (count) *count = 0;
  if (!q) return RX_EINVAL;
  if (!q->multi) {
    q_clearerr(q);
    start(q);
    return take(q, P0(q), rx__qp_dead_purge(P0(q), token, count));
  }
  return dead_change(q, token, 0, count, 2);
}

/* ---------------------------------------------------------------- stats */

static int op_stats(rx_queue *q, qc_part *pp, void *v) {
  return take(q, pp->q, rx__qp_stats_get(pp->q, v));
}

int rx_queue_stats_get(rx_queue *q, rx_queue_stats *st) {
  if (!q || !st) return RX_EINVAL;
  q_clearerr(q);
  start(q);
  if (!q->multi) return take(q, P0(q), rx__qp_stats_get(P0(q), st));
  memset(st, 0, sizeof *st);
  st->next_due_ms = -1;
  for (int p = 0; p < q->nparts; p++) {
    rx_queue_stats s;
    int rc = run_part(q, &q->parts[p], 1, op_stats, &s);
    if (rc != RX_OK) return rc;
    st->scheduled += s.scheduled;
    st->ready += s.ready;
    st->in_flight += s.in_flight;
    st->dead += s.dead;
    st->acked += s.acked;
    st->failures += s.failures;
    st->crashes += s.crashes;
    st->dead_total += s.dead_total;
    if (s.lag_ms > st->lag_ms) st->lag_ms = s.lag_ms;
    if (s.consumers > st->consumers) st->consumers = s.consumers;
    if (s.now_ms > st->now_ms) st->now_ms = s.now_ms;
    if (s.next_due_ms >= 0 && (st->next_due_ms < 0 || s.next_due_ms < st->next_due_ms))
      st->next_due_ms = s.next_due_ms;
  }
  return RX_OK;
}
