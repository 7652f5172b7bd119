/* The queue on Redis Cluster and with partitions, against real servers: the
 * partition names and the id -> partition rule (no server), partitions on
 * one standalone server (routing by id, tokens, order within a partition,
 * dead letters across partitions, stats, batches, wakeups, hints, WAIT
 * without replicas), one queue on a cluster URL, and a 6-partition queue on
 * a 3-master/3-replica cluster carrying 3,000 messages through a master
 * killed with SIGKILL (its replica promoted 800 ms later with CLUSTER
 * FAILOVER TAKEOVER, schedules confirmed by WAIT) and through a live
 * migration of one partition's slot. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "reactis/queue.h"
#include "reactis/timer.h"
#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_server srv;
static rxt_cluster cl;
static int cluster_up;

/* ------------------------------------------------------------ helpers */

static rx_queue *qnew(const char *url, const char *name, int parts) {
  char err[256];
  rx_queue *q = rx_queue_new(url, name, err, sizeof err);
  if (!q) {
    fprintf(stderr, "  rx_queue_new(%s): %s\n", name, err);
    return NULL;
  }
  if (parts > 1) {
    char v[16];
    snprintf(v, sizeof v, "%d", parts);
    if (rx_queue_set(q, "partitions", v) != RX_OK) {
      fprintf(stderr, "  partitions=%d: %s\n", parts, rx_queue_errstr(q));
      rx_queue_free(q);
      return NULL;
    }
  }
  return q;
}

static int sched(rx_queue *q, const char *id, const char *payload, long long delay) {
  int rc = rx_queue_schedule(q, id, id ? strlen(id) : 0, payload, strlen(payload), delay, 0,
                             NULL, 0, NULL, NULL);
  if (rc) fprintf(stderr, "  schedule %s: %s\n", id ? id : "(gen)", rx_queue_errstr(q));
  return rc;
}

/* An integer reply of a raw command on a server, or -1. */
static long long raw_int(rxt_server *s, const char *a0, const char *a1) {
  const char *argv[3] = {a0, a1, NULL};
  char *r = rxt_cmd(s, argv);
  long long v = r && r[0] == ':' ? strtoll(r + 1, NULL, 10) : -1;
  free(r);
  return v;
}

static long long key_count(rxt_server *s, const char *qname, const char *suffix) {
  char key[300];
  snprintf(key, sizeof key, "rx:{%s}:%s", qname, suffix);
  return raw_int(s, suffix[0] == 'z' ? "ZCARD" : "EXISTS", key);
}

static int token_part(const char *token) { return atoi(token); }

/* ------------------------------------------------------------ naming */

static void test_naming(void) {
  rx_queue *q = qnew("redis://127.0.0.1:1", "sms", 1);
  CHECK(q);
  CHECK_EQ_INT(rx_queue_partitions(q), 1);
  CHECK_STR(rx_queue_partition_name(q, 0), "sms");
  CHECK(rx_queue_partition_name(q, 1) == NULL);
  CHECK_EQ_INT(rx_queue_partition_of(q, "x", 1), 0);
  CHECK_EQ_INT(rx_queue_set(q, "partitions", "0"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_set(q, "partitions", "1025"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_set(q, "partitions", "six"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_set(q, "visibility_timeout_ms", "4000"), RX_OK);
  CHECK_EQ_INT(rx_queue_set(q, "partitions", "6"), RX_OK);
  CHECK_EQ_INT(rx_queue_partitions(q), 6);
  /* Names: NAME#i.k, each slot in the middle quarter of its sixth. */
  for (int i = 0; i < 6; i++) {
    const char *n = rx_queue_partition_name(q, i);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "sms#%d.", i);
    CHECKF(n && !strncmp(n, prefix, strlen(prefix)), "partition %d: %s", i, n ? n : "NULL");
    int slot = rx_cluster_keyslot(n, strlen(n));
    int lo = 16384 * (8 * i + 3) / 48, hi = 16384 * (8 * i + 5) / 48;
    CHECKF(slot >= lo && slot < hi, "%s: slot %d not in [%d,%d)", n, slot, lo, hi);
    fprintf(stderr, "  partition %d: %s (slot %d)\n", i, n, slot);
  }
  /* The id rule: CRC16/XMODEM of the whole id, modulo N. */
  CHECK_EQ_INT(rx_queue_partition_of(q, "123456789", 9), 0x31C3 % 6);
  CHECK_EQ_INT(rx_queue_partition_of(q, "{a}b", 4), rx_queue_partition_of(q, "{a}b", 4));
  /* Another handle (another process) agrees. */
  rx_queue *q2 = qnew("redis://127.0.0.1:2", "sms", 6);
  CHECK(q2);
  for (int i = 0; i < 6; i++) CHECK_STR(rx_queue_partition_name(q, i), rx_queue_partition_name(q2, i));
  int spread[6] = {0};
  for (int i = 0; i < 6000; i++) {
    char id[32];
    snprintf(id, sizeof id, "invoice:%d", i);
    int p = rx_queue_partition_of(q, id, strlen(id));
    CHECK(p >= 0 && p < 6);
    CHECK_EQ_INT(p, rx_queue_partition_of(q2, id, strlen(id)));
    spread[p]++;
  }
  for (int i = 0; i < 6; i++) CHECKF(spread[i] > 800 && spread[i] < 1200, "%d: %d", i, spread[i]);
  rx_queue_free(q2);
  /* Tokens name their partition; others are refused before any I/O. */
  CHECK_EQ_INT(rx_queue_ack(q, "1-1"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_ack(q, "6:1-1"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_ack(q, "x:1-1"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_extend(q, ":1-1", 0), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_dead_requeue(q, "7:1-1", 0, NULL), RX_EINVAL);
  /* Once used, the partitions are fixed. */
  CHECK_EQ_INT(rx_queue_batch_add(q, "a", 1, "p", 1, 0, 0), RX_OK);
  CHECK_EQ_INT(rx_queue_batch_count(q), 1);
  CHECK_EQ_INT(rx_queue_set(q, "partitions", "3"), RX_ESTATE);
  CHECK(strstr(rx_queue_errstr(q), "before the first call"));
  /* Checked at add time as with one partition. */
  CHECK_EQ_INT(rx_queue_set(q, "max_payload", "4"), RX_OK);
  CHECK_EQ_INT(rx_queue_batch_add(q, "b", 1, "12345", 5, 0, 0), RX_ETOOBIG);
  CHECK_EQ_INT(rx_queue_batch_count(q), 1);
  rx_queue_free(q);
  /* Names too long for the suffix. */
  char longname[201];
  memset(longname, 'n', 200);
  longname[200] = '\0';
  q = qnew("redis://127.0.0.1:1", longname, 1);
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "partitions", "2"), RX_EINVAL);
  rx_queue_free(q);
  /* Cluster URLs are accepted without connecting; bad ones refused. */
  q = qnew("redis://127.0.0.1:1,127.0.0.1:2", "c", 3);
  CHECK(q);
  CHECK(rx_queue_conn(q) == NULL);
  rx_queue_free(q);
  char err[256];
  CHECK(rx_queue_new("redis://127.0.0.1:1,,127.0.0.1:2", "c", err, sizeof err) == NULL);
  CHECK(strstr(err, "empty host"));
  CHECK(rx_queue_new("redis://127.0.0.1:1,127.0.0.1:2/3", "c", err, sizeof err) == NULL);
  CHECK(rx_queue_new("redis://127.0.0.1:1,127.0.0.1:2", "a{b", err, sizeof err) == NULL);
  CHECK(strstr(err, "invalid queue name"));
}

/* ------------------------------------------------------------ standalone */

typedef struct waiter_arg {
  rx_queue *q;
  int rc;
  long long took;
  char id[64];
} waiter_arg;

static void *blocked_fetch(void *p) {
  waiter_arg *a = p;
  long long t0 = rxt_ms();
  rx_job j;
  size_t n = 0;
  a->rc = rx_queue_fetch(a->q, 1, 5000, &j, &n);
  a->took = rxt_ms() - t0;
  if (a->rc == RX_OK && n == 1) {
    snprintf(a->id, sizeof a->id, "%.*s", (int)j.id_len, j.id);
    rx_queue_ack(a->q, j.token);
  }
  return NULL;
}

static void test_standalone_partitions(void) {
  rx_queue *q = qnew(srv.url, "sp", 4);
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "timeout", "3"), RX_OK); /* a connection option */
  CHECK_EQ_INT(rx_queue_set(q, "tiemout", "3"), RX_EURL);
  for (int i = 0; i < 200; i++) {
    char id[32], pl[32];
    snprintf(id, sizeof id, "id:%d", i);
    snprintf(pl, sizeof pl, "%d", i);
    CHECK_EQ_INT(sched(q, id, pl, 0), 0);
  }
  /* Each partition holds its share, under its own tag. */
  long long total = 0;
  for (int p = 0; p < 4; p++) {
    long long k = key_count(&srv, rx_queue_partition_name(q, p), "z");
    CHECKF(k > 20, "partition %d holds %lld", p, k);
    total += k;
  }
  CHECK_EQ_INT(total, 200);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.scheduled + st.ready, 200);
  CHECK(st.next_due_ms > 0);
  /* By id, to the right partition. */
  CHECK_EQ_INT(rx_queue_cancel(q, "id:0", 4), 0);
  CHECK_EQ_INT(rx_queue_cancel(q, "id:0", 4), RX_NOMATCH);
  CHECK_EQ_INT(rx_queue_reschedule(q, "id:1", 4, 60000, 0), 0);
  CHECK_EQ_INT(rx_queue_run_now(q, "id:1", 4), 0);
  CHECK_EQ_INT(rx_queue_run_now(q, "nope", 4), RX_NOMATCH);
  int got[200] = {0}, n_got = 0;
  long long deadline = rxt_ms() + 10000;
  while (n_got < 199 && rxt_ms() < deadline) {
    rx_job jobs[50];
    size_t n = 0;
    int rc = rx_queue_fetch(q, 50, 1000, jobs, &n);
    CHECKF(rc == RX_OK || rc == RX_TIMEOUT, "fetch %d: %s", rc, rx_queue_errstr(q));
    for (size_t i = 0; i < n; i++) {
      int idx = atoi(jobs[i].payload);
      CHECK(idx > 0 && idx < 200);
      got[idx]++;
      n_got++;
      /* The token names the partition the id maps to. */
      CHECK(strchr(jobs[i].token, ':'));
      CHECK_EQ_INT(token_part(jobs[i].token), rx_queue_partition_of(q, jobs[i].id, jobs[i].id_len));
      CHECK(strlen(jobs[i].token) < RX_QUEUE_TOKEN_SIZE);
    }
    size_t acked = 0;
    if (n) CHECK_EQ_INT(rx_queue_ack_jobs(q, jobs, n, &acked), 0);
    CHECK_EQ_INT(acked, n);
  }
  CHECK_EQ_INT(n_got, 199);
  for (int i = 1; i < 200; i++) CHECK_EQ_INT(got[i], 1);
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.acked, 199);
  CHECK_EQ_INT(st.scheduled + st.ready + st.in_flight, 0);
  CHECK_EQ_INT(st.next_due_ms, -1);

  /* Due order holds within each partition. */
  for (int i = 0; i < 40; i++) {
    char id[32], pl[32];
    snprintf(id, sizeof id, "o:%d", i);
    snprintf(pl, sizeof pl, "%d", i);
    CHECK_EQ_INT(sched(q, id, pl, 100 + 10 * (40 - i)), 0); /* later ids due first */
  }
  int last[4] = {1000, 1000, 1000, 1000}, seen = 0;
  deadline = rxt_ms() + 10000;
  while (seen < 40 && rxt_ms() < deadline) {
    rx_job jobs[10];
    size_t n = 0;
    int rc = rx_queue_fetch(q, 10, 1000, jobs, &n);
    CHECK(rc == RX_OK || rc == RX_TIMEOUT);
    for (size_t i = 0; i < n; i++) {
      int p = token_part(jobs[i].token), idx = atoi(jobs[i].payload);
      CHECKF(idx < last[p], "partition %d: %d after %d", p, idx, last[p]);
      last[p] = idx;
      CHECK(jobs[i].delivered_ms >= jobs[i].due_ms);
      seen++;
    }
    if (n) CHECK_EQ_INT(rx_queue_ack_jobs(q, jobs, n, NULL), 0);
  }
  CHECK_EQ_INT(seen, 40);

  /* Mixed tokens in one ack; a stale one among them. */
  for (int i = 0; i < 8; i++) {
    char id[32];
    snprintf(id, sizeof id, "mix:%d", i);
    CHECK_EQ_INT(sched(q, id, "m", 0), 0);
  }
  rx_job jobs[16];
  size_t n = 0, nj = 0;
  deadline = rxt_ms() + 5000;
  while (nj < 8 && rxt_ms() < deadline) {
    CHECK(rx_queue_fetch(q, 8, 500, jobs + nj, &n) != RX_EINVAL);
    nj += n;
  }
  CHECK_EQ_INT(nj, 8);
  char list[600] = "";
  for (size_t i = 0; i < nj; i++) {
    strcat(list, jobs[i].token);
    strcat(list, i % 2 ? "," : " ");
  }
  CHECK_EQ_INT(rx_queue_ack(q, jobs[0].token), 0);
  size_t acked = 0;
  CHECK_EQ_INT(rx_queue_ack_many(q, list, strlen(list), &acked), RX_ESTALE);
  CHECK_EQ_INT(acked, 7);
  CHECK(strstr(rx_queue_errstr(q), "1 of 8"));

  /* Dead letters across partitions: listed in one order, in pages. */
  for (int i = 0; i < 6; i++) {
    char id[32];
    snprintf(id, sizeof id, "dead:%d", i);
    CHECK_EQ_INT(sched(q, id, id, 0), 0);
  }
  nj = 0;
  deadline = rxt_ms() + 5000;
  while (nj < 6 && rxt_ms() < deadline) {
    CHECK(rx_queue_fetch(q, 6, 500, jobs + nj, &n) != RX_EINVAL);
    nj += n;
  }
  CHECK_EQ_INT(nj, 6);
  CHECK_EQ_INT(rx_queue_extend(q, jobs[0].token, 10000), 0);
  int dead = 0;
  CHECK_EQ_INT(rx_queue_retry(q, jobs[0].token, 0, "boom", 4, &dead), 0);
  CHECK_EQ_INT(dead, 0);
  for (size_t i = 1; i < 6; i++) CHECK_EQ_INT(rx_queue_fail(q, jobs[i].token, "bad", 3), 0);
  CHECK_EQ_INT(rx_queue_fail(q, jobs[1].token, "bad", 3), RX_ESTALE);
  char after[RX_QUEUE_TOKEN_SIZE] = "", toks[5][RX_QUEUE_TOKEN_SIZE];
  int listed = 0;
  for (int page = 0; page < 5; page++) {
    size_t k = 0;
    CHECK_EQ_INT(rx_queue_dead_list(q, after, 2, &k), 0);
    if (k == 0) break;
    for (size_t i = 0; i < k; i++) {
      const rx_job *d = rx_queue_dead(q, i);
      CHECK(d && listed < 5);
      CHECK_MEM(d->error, d->error_len, "bad", 3);
      CHECK_EQ_INT(token_part(d->token), rx_queue_partition_of(q, d->id, d->id_len));
      for (int j = 0; j < listed; j++) CHECK(strcmp(toks[j], d->token));
      memcpy(toks[listed++], d->token, RX_QUEUE_TOKEN_SIZE);
    }
    memcpy(after, rx_queue_dead(q, k - 1)->token, RX_QUEUE_TOKEN_SIZE);
  }
  CHECK_EQ_INT(listed, 5);
  size_t count = 0;
  CHECK_EQ_INT(rx_queue_dead_requeue(q, toks[2], 0, &count), 0);
  CHECK_EQ_INT(count, 1);
  CHECK_EQ_INT(rx_queue_dead_requeue(q, toks[2], 0, &count), RX_NOMATCH);
  CHECK_EQ_INT(rx_queue_dead_purge(q, NULL, &count), 0);
  CHECK_EQ_INT(count, 4);
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.dead, 0);
  CHECK_EQ_INT(st.dead_total, 5);
  CHECK_EQ_INT(st.failures, 6);
  /* The retried and the requeued one come back. */
  nj = 0;
  deadline = rxt_ms() + 5000;
  while (nj < 2 && rxt_ms() < deadline) {
    CHECK(rx_queue_fetch(q, 6, 500, jobs + nj, &n) != RX_EINVAL);
    nj += n;
  }
  CHECK_EQ_INT(nj, 2);
  CHECK_EQ_INT(rx_queue_ack_jobs(q, jobs, nj, NULL), 0);

  /* Batches spread over partitions; generated ids are kept. */
  for (int i = 0; i < 60; i++) CHECK_EQ_INT(rx_queue_batch_add(q, NULL, 0, "b", 1, 0, 0), 0);
  CHECK_EQ_INT(rx_queue_batch_add(q, "fixed", 5, "b", 1, 0, 0), 0);
  CHECK_EQ_INT(rx_queue_batch_count(q), 61);
  CHECK_EQ_INT(rx_queue_batch_send(q), 0);
  int per[4] = {0};
  for (size_t i = 0; i < 61; i++) {
    int outcome = -1;
    const char *id;
    size_t idl;
    long long due;
    CHECK_EQ_INT(rx_queue_batch_result(q, i, &outcome, &id, &idl, &due), 0);
    CHECK_EQ_INT(outcome, RX_SCHED_ADDED);
    CHECK(due > 0);
    per[rx_queue_partition_of(q, id, idl)]++;
  }
  for (int p = 0; p < 4; p++) CHECKF(per[p] > 3, "partition %d got %d of the batch", p, per[p]);
  CHECK_EQ_INT(rx_queue_batch_result(q, 61, NULL, NULL, NULL, NULL), RX_EINVAL);
  /* Sent again: the same messages, kept. */
  CHECK_EQ_INT(rx_queue_batch_send(q), 0);
  int outcome = -1;
  CHECK_EQ_INT(rx_queue_batch_result(q, 60, &outcome, NULL, NULL, NULL), 0);
  CHECK_EQ_INT(outcome, RX_SCHED_EXISTS);
  rx_queue_batch_clear(q);
  CHECK_EQ_INT(rx_queue_batch_count(q), 0);
  nj = 0;
  deadline = rxt_ms() + 5000;
  while (nj < 61 && rxt_ms() < deadline) {
    rx_job bj[61];
    CHECK(rx_queue_fetch(q, 61, 500, bj, &n) != RX_EINVAL);
    if (n) CHECK_EQ_INT(rx_queue_ack_jobs(q, bj, n, NULL), 0);
    nj += n;
  }
  CHECK_EQ_INT(nj, 61);

  /* Waiting: a wakeup, a timeout, and a producer's hint from afar. */
  rx_queue_wakeup(q);
  long long t0 = rxt_ms();
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 5000, jobs, &n), RX_WOKEN);
  CHECK(rxt_ms() - t0 < 500);
  t0 = rxt_ms();
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 300, jobs, &n), RX_TIMEOUT);
  CHECKF(rxt_ms() - t0 >= 290 && rxt_ms() - t0 < 1000, "%lld ms", rxt_ms() - t0);
  waiter_arg a;
  memset(&a, 0, sizeof a);
  a.q = qnew(srv.url, "sp", 4);
  CHECK(a.q);
  CHECK_EQ_INT(rx_queue_set(a.q, "block_cap_ms", "5000"), 0);
  /* The consumer learns every partition's state, then blocks. */
  CHECK_EQ_INT(rx_queue_fetch(a.q, 1, 0, jobs, &n), RX_TIMEOUT);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, blocked_fetch, &a) == 0);
  rxt_sleep_ms(300);
  t0 = rxt_ms();
  CHECK_EQ_INT(sched(q, "late", "x", 0), 0);
  pthread_join(th, NULL);
  long long woke = rxt_ms() - t0;
  CHECKF(a.rc == RX_OK && !strcmp(a.id, "late"), "rc %d id %s", a.rc, a.id);
  CHECKF(woke < 500, "the hint took %lld ms", woke);
  fprintf(stderr, "  a blocked consumer had the message %lld ms after it was scheduled\n", woke);
  /* A due time on another partition than the one hinted ends the wait too. */
  CHECK_EQ_INT(sched(q, "soon", "x", 400), 0);
  t0 = rxt_ms();
  CHECK_EQ_INT(rx_queue_fetch(a.q, 1, 3000, jobs, &n), RX_OK);
  CHECKF(rxt_ms() - t0 >= 350 && rxt_ms() - t0 < 900, "%lld ms", rxt_ms() - t0);
  CHECK_EQ_INT(rx_queue_ack(a.q, jobs[0].token), 0);
  rx_queue_free(a.q);

  /* WAIT with no replica: scheduled, but reported as not confirmed. */
  CHECK_EQ_INT(rx_queue_set(q, "wait_replicas", "1"), 0);
  CHECK_EQ_INT(rx_queue_set(q, "wait_timeout_ms", "100"), 0);
  CHECK_EQ_INT(rx_queue_set(q, "wait_timeout_ms", "0"), RX_EINVAL);
  char out_id[RX_QUEUE_GEN_ID_SIZE] = "";
  outcome = -1;
  t0 = rxt_ms();
  int rc = rx_queue_schedule(q, NULL, 0, "w", 1, 60000, 0, out_id, sizeof out_id, &outcome, NULL);
  CHECK_EQ_INT(rc, RX_ETIMEDOUT);
  CHECK(rxt_ms() - t0 >= 90);
  CHECK(strstr(rx_queue_errstr(q), "0 of 1 replicas"));
  CHECK_EQ_INT(outcome, RX_SCHED_ADDED);
  CHECK_EQ_INT(strlen(out_id), 12);
  CHECK_EQ_INT(rx_queue_cancel(q, out_id, 12), 0); /* it was scheduled */
  CHECK_EQ_INT(rx_queue_batch_add(q, "wb", 2, "x", 1, 60000, 0), 0);
  CHECK_EQ_INT(rx_queue_batch_send(q), RX_ETIMEDOUT);
  CHECK_EQ_INT(rx_queue_cancel(q, "wb", 2), 0);
  CHECK_EQ_INT(rx_queue_set(q, "wait_replicas", "0"), 0);
  rx_queue_free(q);

  /* One partition on a standalone server: WAIT works there too. */
  q = qnew(srv.url, "sp1", 1);
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "wait_replicas", "1"), 0);
  CHECK_EQ_INT(rx_queue_set(q, "wait_timeout_ms", "50"), 0);
  CHECK_EQ_INT(rx_queue_schedule(q, "a", 1, "x", 1, 0, 0, NULL, 0, NULL, NULL), RX_ETIMEDOUT);
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 1000, jobs, &n), RX_OK);
  CHECK(strchr(jobs[0].token, ':') == NULL); /* one partition: plain tokens */
  CHECK_EQ_INT(rx_queue_ack(q, jobs[0].token), 0);
  rx_queue_free(q);
}

/* ------------------------------------------------------------ cluster: one partition */

static void test_cluster_one_partition(void) {
  CHECK(cluster_up);
  rx_queue *q = qnew(cl.url, "c1", 1);
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "wait_replicas", "1"), 0);
  CHECK_EQ_INT(rx_queue_set(q, "wait_timeout_ms", "2000"), 0);
  CHECK_EQ_INT(sched(q, "one", "payload", 0), 0);
  rxt_server *owner = rxt_cluster_owner(&cl, rx_cluster_keyslot("c1", 2));
  CHECK(owner);
  CHECK_EQ_INT(key_count(owner, "c1", "z"), 1);
  /* WAIT confirmed it: the replica has it too. */
  rxt_server *rep = rxt_cluster_replica_of(&cl, owner);
  CHECK(rep);
  rxt_raw raw;
  CHECK(rxt_raw_open(rep, &raw) == 0);
  const char *ro[1] = {"READONLY"}, *zc[2] = {"ZCARD", "rx:{c1}:z"};
  CHECK(rxt_raw_send(&raw, 1, ro, NULL) == 0 && rxt_raw_read(&raw, 2000, NULL));
  CHECK(rxt_raw_send(&raw, 2, zc, NULL) == 0);
  const char *zr = rxt_raw_read(&raw, 2000, NULL);
  int on_replica = zr && !strncmp(zr, ":1", 2);
  rxt_raw_close(&raw);
  CHECKF(on_replica, "the replica has %s", zr ? zr : "(no reply)");
  rx_job j;
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 2000, &j, &n), RX_OK);
  CHECK_MEM(j.payload, j.payload_len, "payload", 7);
  CHECK(strchr(j.token, ':') == NULL);
  CHECK_EQ_INT(rx_queue_ack(q, j.token), 0);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.acked, 1);
  CHECK(rx_queue_conn(q) != NULL);
  rx_queue_free(q);
}

/* ------------------------------------------------------------ cluster: 3,000 messages */

#define NMSG 3000
#define NPART 6

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int seen[NMSG];
static int durable[NMSG];
static long long part_msgs[NPART];
static atomic_int stop_consumers, produced, consumer_errors, producer_errors, not_confirmed, ack_errors;

typedef struct prod_arg {
  int from, to;
  int batch;     /* 0: one schedule per message */
  int wait;      /* wait_replicas=1; retry until confirmed */
  int generated; /* generated ids */
  int ok;
} prod_arg;

static void *producer(void *p) {
  prod_arg *a = p;
  rx_queue *q = qnew(cl.url, "orders", NPART);
  if (!q) return NULL;
  if (a->wait) {
    rx_queue_set(q, "wait_replicas", "1");
    rx_queue_set(q, "wait_timeout_ms", "200");
  }
  a->ok = 1;
  for (int i = a->from; i < a->to;) {
    int end = a->batch ? (i + a->batch < a->to ? i + a->batch : a->to) : i + 1;
    long long deadline = rxt_ms() + 30000;
    for (;;) {
      int rc;
      if (a->batch) {
        if (rx_queue_batch_count(q) == 0) {
          for (int k = i; k < end; k++) {
            char id[32], pl[32];
            snprintf(id, sizeof id, "m:%d", k);
            snprintf(pl, sizeof pl, "%d", k);
            rx_queue_batch_add(q, id, strlen(id), pl, strlen(pl), k % 7 * 20, 0);
          }
        }
        rc = rx_queue_batch_send(q);
      } else {
        char id[32], pl[32];
        snprintf(id, sizeof id, "m:%d", i);
        snprintf(pl, sizeof pl, "%d", i);
        rc = rx_queue_schedule(q, a->generated ? NULL : id, a->generated ? 0 : strlen(id), pl,
                               strlen(pl), i % 5 * 30, 0, NULL, 0, NULL, NULL);
      }
      if (rc == RX_OK) break;
      /* A failover under way: the same ids again (kept if they made it),
       * until the replicas confirm them. */
      if (rc == RX_ETIMEDOUT && a->wait && strstr(rx_queue_errstr(q), "replicas confirmed"))
        not_confirmed++;
      else if (producer_errors++ < 5)
        fprintf(stderr, "  producer: %s: %s\n", rx_errname(rc), rx_queue_errstr(q));
      if (rxt_ms() > deadline) {
        fprintf(stderr, "  producer gave up at %d: %s\n", i, rx_queue_errstr(q));
        a->ok = 0;
        rx_queue_free(q);
        return NULL;
      }
      rxt_sleep_ms(50);
    }
    if (a->batch) rx_queue_batch_clear(q);
    pthread_mutex_lock(&mu);
    for (int k = i; k < end; k++) durable[k] = a->wait;
    pthread_mutex_unlock(&mu);
    produced += end - i;
    i = end;
  }
  rx_queue_free(q);
  return NULL;
}

static void *consumer(void *p) {
  (void)p;
  rx_queue *q = qnew(cl.url, "orders", NPART);
  if (!q) return NULL;
  rx_queue_set(q, "visibility_timeout_ms", "3000");
  rx_queue_set(q, "block_cap_ms", "500");
  rx_job jobs[50];
  while (!stop_consumers) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 50, 200, jobs, &n);
    if (rc < 0) {
      if (consumer_errors++ < 5)
        fprintf(stderr, "  consumer: %s: %s\n", rx_errname(rc), rx_queue_errstr(q));
      rxt_sleep_ms(20);
      continue;
    }
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n; i++) {
      int idx = atoi(jobs[i].payload);
      if (idx >= 0 && idx < NMSG) seen[idx]++;
      int part = token_part(jobs[i].token);
      if (part >= 0 && part < NPART) part_msgs[part]++;
    }
    pthread_mutex_unlock(&mu);
    /* An ack lost in a failover means a redelivery, never a loss. */
    if (n) {
      int rc2 = rx_queue_ack_jobs(q, jobs, n, NULL);
      if (rc2 != RX_OK && ack_errors++ < 5)
        fprintf(stderr, "  ack: %s: %s\n", rx_errname(rc2), rx_queue_errstr(q));
    }
  }
  rx_queue_free(q);
  return NULL;
}

/* Waits until every message in [from, to) was delivered; how many were not. */
static int wait_seen(int from, int to, int timeout_ms) {
  long long deadline = rxt_ms() + timeout_ms;
  for (;;) {
    int missing = 0;
    pthread_mutex_lock(&mu);
    for (int i = from; i < to; i++) missing += seen[i] == 0;
    pthread_mutex_unlock(&mu);
    if (!missing || rxt_ms() > deadline) return missing;
    rxt_sleep_ms(20);
  }
}

static void wait_produced(int n, int timeout_ms) {
  long long deadline = rxt_ms() + timeout_ms;
  while (produced < n && rxt_ms() < deadline) rxt_sleep_ms(2);
}

/* Per-node view: which master serves each partition now. */
static void print_distribution(const char *when) {
  char err[256];
  rx_queue *q = rx_queue_new(cl.url, "orders", err, sizeof err);
  if (!q) return;
  rx_queue_set(q, "partitions", "6");
  long long per_node[RXT_CLUSTER_MAX] = {0};
  fprintf(stderr, "  %s:\n", when);
  pthread_mutex_lock(&mu);
  for (int p = 0; p < NPART; p++) {
    const char *name = rx_queue_partition_name(q, p);
    int slot = rx_cluster_keyslot(name, strlen(name));
    rxt_server *o = rxt_cluster_owner(&cl, slot);
    int idx = o ? rxt_cluster_index(&cl, o) : -1;
    fprintf(stderr, "    partition %d %-14s slot %5d on 127.0.0.1:%d: %lld deliveries\n", p, name,
            slot, o ? o->port : 0, part_msgs[p]);
    if (idx >= 0) per_node[idx] += part_msgs[p];
  }
  for (int i = 0; i < cl.count; i++)
    if (per_node[i])
      fprintf(stderr, "    node 127.0.0.1:%d: %lld deliveries\n", cl.node[i].port, per_node[i]);
  pthread_mutex_unlock(&mu);
  rx_queue_free(q);
}

/* Waits until s is a replica whose link to its master is up. */
static int replica_synced(rxt_server *s, int timeout_ms) {
  long long deadline = rxt_ms() + timeout_ms;
  for (;;) {
    const char *argv[3] = {"INFO", "replication", NULL};
    char *r = rxt_cmd(s, argv);
    int ok = r && strstr(r, "role:slave") && strstr(r, "master_link_status:up");
    free(r);
    if (ok) return 1;
    if (rxt_ms() > deadline) return 0;
    rxt_sleep_ms(50);
  }
}

static void test_cluster_partitioned(void) {
  CHECK(cluster_up);
  long long t0 = rxt_ms();
  memset(seen, 0, sizeof seen);
  pthread_t cons[2], prod;
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&cons[i], NULL, consumer, NULL) == 0);

  /* Phase 1: 1,000 messages, one schedule each. */
  prod_arg a1 = {0, 1000, 0, 0, 0, 0};
  CHECK(pthread_create(&prod, NULL, producer, &a1) == 0);
  pthread_join(prod, NULL);
  CHECK(a1.ok);
  int missing = wait_seen(0, 1000, 20000);
  CHECKF(missing == 0, "%d of the first 1,000 were not delivered", missing);
  fprintf(stderr, "  1,000 messages scheduled and delivered in %lld ms\n", rxt_ms() - t0);
  print_distribution("after 1,000 messages");

  /* Phase 2: 1,000 more in batches confirmed by WAIT; a master is killed
   * and its replica promoted mid-run, then the old master comes back as
   * its replica (WAIT can be satisfied again). */
  char err[256];
  rx_queue *probe = rx_queue_new(cl.url, "orders", err, sizeof err);
  CHECK(probe);
  rx_queue_set(probe, "partitions", "6");
  char p0[64];
  snprintf(p0, sizeof p0, "%s", rx_queue_partition_name(probe, 0));
  rxt_server *victim = rxt_cluster_owner(&cl, rx_cluster_keyslot(p0, strlen(p0)));
  rx_queue_free(probe);
  CHECK(victim);
  int victim_port = victim->port;
  long long t1 = rxt_ms();
  prod_arg a2 = {1000, 2000, 25, 1, 0, 0};
  CHECK(pthread_create(&prod, NULL, producer, &a2) == 0);
  wait_produced(1300, 20000);
  /* Killed mid-run; its slots stay dead for 800 ms (connections refused,
   * calls retried), then its replica takes over. */
  rxt_server *promoted = rxt_cluster_replica_of(&cl, victim);
  CHECK(promoted);
  long long tk = rxt_ms();
  int at_kill = produced;
  rxt_server_kill(victim);
  rxt_sleep_ms(800);
  {
    const char *argv[4] = {"CLUSTER", "FAILOVER", "TAKEOVER", NULL};
    char *r = rxt_cmd(promoted, argv);
    int ok = r && !strncmp(r, "+OK", 3);
    free(r);
    CHECK(ok);
  }
  CHECK_EQ_INT(rxt_cluster_wait_ok(&cl, 15000), 0);
  CHECK(rxt_cluster_owner(&cl, rx_cluster_keyslot(p0, strlen(p0))) == promoted);
  fprintf(stderr,
          "  killed the master 127.0.0.1:%d at %d messages; 127.0.0.1:%d took over %lld ms "
          "later, at %d messages\n",
          victim_port, at_kill, promoted->port, rxt_ms() - tk, (int)produced);
  CHECK_EQ_INT(rxt_server_restart(victim), 0);
  int synced = replica_synced(victim, 20000);
  fprintf(stderr, "  the old master %s a replica of the new one %lld ms after the kill\n",
          synced ? "was" : "was NOT yet", rxt_ms() - tk);
  pthread_join(prod, NULL);
  CHECK(a2.ok);
  missing = wait_seen(1000, 2000, 30000);
  int lost_durable = 0;
  pthread_mutex_lock(&mu);
  for (int i = 1000; i < 2000; i++) lost_durable += durable[i] && !seen[i];
  pthread_mutex_unlock(&mu);
  CHECKF(lost_durable == 0, "%d messages confirmed by WAIT were lost", lost_durable);
  CHECKF(missing == 0, "%d of the second 1,000 were not delivered", missing);
  fprintf(stderr,
          "  1,000 messages through the failover in %lld ms (%d sends not yet confirmed by a "
          "replica, sent again)\n",
          rxt_ms() - t1, (int)not_confirmed);
  CHECK_EQ_INT(rxt_cluster_wait_ok(&cl, 10000), 0);
  print_distribution("after the failover");

  /* Phase 3: 1,000 more with generated ids while one partition's slot
   * migrates to another master (TRYAGAIN/ASK while it moves, then MOVED). */
  probe = rx_queue_new(cl.url, "orders", err, sizeof err);
  CHECK(probe);
  rx_queue_set(probe, "partitions", "6");
  const char *p1 = rx_queue_partition_name(probe, 1);
  int slot = rx_cluster_keyslot(p1, strlen(p1));
  char p1name[64];
  snprintf(p1name, sizeof p1name, "%s", p1);
  rx_queue_free(probe);
  rxt_server *from = rxt_cluster_owner(&cl, slot), *to = NULL;
  CHECK(from);
  for (int i = 0; i < cl.count && !to; i++)
    if (&cl.node[i] != from && cl.node[i].pid > 0 && rxt_cluster_is_master(&cl.node[i]))
      to = &cl.node[i];
  CHECK(to);
  long long t2 = rxt_ms();
  prod_arg a3 = {2000, 3000, 0, 0, 1, 0};
  CHECK(pthread_create(&prod, NULL, producer, &a3) == 0);
  wait_produced(2300, 20000);
  long long tm = rxt_ms();
  CHECK_EQ_INT(rxt_cluster_migrate_begin(&cl, slot, from, to), 0);
  rxt_sleep_ms(300); /* the partition's scripts are refused meanwhile */
  CHECK_EQ_INT(rxt_cluster_migrate_keys(&cl, slot, from, to), 0);
  rxt_sleep_ms(100);
  CHECK_EQ_INT(rxt_cluster_migrate_end(&cl, slot, from, to), 0);
  fprintf(stderr, "  slot %d (partition %s) moved from :%d to :%d in %lld ms, at %d messages\n",
          slot, p1name, from->port, to->port, rxt_ms() - tm, (int)produced);
  pthread_join(prod, NULL);
  CHECK(a3.ok);
  missing = wait_seen(2000, 3000, 30000);
  CHECKF(missing == 0, "%d of the last 1,000 were not delivered", missing);
  CHECK_EQ_INT(key_count(to, p1name, "s"), 1); /* the partition lives there now */
  {
    char sl[16];
    snprintf(sl, sizeof sl, "%d", slot);
    const char *argv[4] = {"CLUSTER", "COUNTKEYSINSLOT", sl, NULL};
    char *r = rxt_cmd(from, argv);
    CHECKF(r && !strncmp(r, ":0", 2), "the old owner still has %s", r ? r : "(no reply)");
    free(r);
  }
  fprintf(stderr, "  1,000 messages through the migration in %lld ms\n", rxt_ms() - t2);

  stop_consumers = 1;
  for (int i = 0; i < 2; i++) pthread_join(cons[i], NULL);
  int dups = 0, never = 0;
  for (int i = 0; i < NMSG; i++) {
    never += seen[i] == 0;
    dups += seen[i] > 1 ? seen[i] - 1 : 0;
  }
  print_distribution("in all");
  fprintf(stderr,
          "  %d messages: %d never delivered, %d redeliveries; %d producer, %d fetch and %d ack "
          "errors; %lld ms\n",
          NMSG, never, dups, (int)producer_errors, (int)consumer_errors, (int)ack_errors,
          rxt_ms() - t0);
  CHECK_EQ_INT(never, 0);
  /* Nothing is left behind. */
  rx_queue *q = qnew(cl.url, "orders", NPART);
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "visibility_timeout_ms", "3000"), 0);
  rx_queue_stats st;
  long long deadline = rxt_ms() + 15000;
  for (;;) {
    CHECKF(rx_queue_stats_get(q, &st) == 0, "%s", rx_queue_errstr(q));
    if (st.scheduled + st.ready + st.in_flight == 0 || rxt_ms() > deadline) break;
    /* Deliveries whose ack was lost in the failover are reclaimed. */
    rx_job jobs[50];
    size_t n = 0;
    if (rx_queue_fetch(q, 50, 500, jobs, &n) == RX_OK) rx_queue_ack_jobs(q, jobs, n, NULL);
  }
  CHECKF(st.scheduled + st.ready + st.in_flight == 0, "left: %lld scheduled, %lld ready, %lld in flight",
         st.scheduled, st.ready, st.in_flight);
  CHECK_EQ_INT(st.dead, 0);
  rx_queue_free(q);
}

/* ------------------------------------------------------------ timers */

/* Timers are a queue underneath, so on a cluster URL with partitions they
 * spread over the masters; every promise holds there: a re-touch pushes the
 * deadline back and replaces the data, a stopped timer never fires, every
 * other one fires once, with its data, not before its deadline. */
static void test_cluster_timers(void) {
  CHECK(cluster_up);
  char err[256];
  rx_timers *t = rx_timers_new(cl.url, "ctm", err, sizeof err);
  CHECKF(t != NULL, "%s", err);
  if (!t) return;
  CHECK_EQ_INT(rx_timers_set(t, "partitions", "3"), 0);
  enum { N = 30 };
  char id[N][8];
  for (int i = 0; i < N; i++) {
    char data[16];
    snprintf(id[i], sizeof id[i], "d%d", i);
    snprintf(data, sizeof data, "v%d", i);
    CHECKF(rx_timers_touch(t, id[i], strlen(id[i]), 300, data, strlen(data)) == 0, "%s",
           rx_timers_errstr(t));
  }
  int armed = -1;
  long long due0 = 0;
  CHECK_EQ_INT(rx_timers_touch_ex(t, "d0", 2, 1200, 0, "late", 4, &armed, &due0), 0);
  CHECK_EQ_INT(armed, 0); /* it was armed: the deadline moved */
  CHECK_EQ_INT(rx_timers_stop(t, "d1", 2), 0);
  CHECK_EQ_INT(rx_timers_stop(t, "d1", 2), RX_NOMATCH);
  /* The timers' partitions live on more than one master. */
  int masters_used = 0;
  for (int m = 0; m < cl.count; m++) {
    int has = 0;
    for (int p = 0; p < 3; p++) {
      const char *qn = rx_queue_partition_name(rx_timers_queue(t), p);
      CHECK(qn != NULL);
      if (qn && rxt_cluster_owner(&cl, rx_cluster_keyslot(qn, strlen(qn))) == &cl.node[m]) has = 1;
    }
    masters_used += has;
  }
  CHECKF(masters_used >= 2, "partitions on %d master(s)", masters_used);

  int times[N] = {0}, fired = 0;
  long long deadline = rxt_ms() + 6000;
  while (rxt_ms() < deadline && fired < N - 1) {
    rx_job f[16];
    size_t n = 0;
    int rc = rx_timers_watch(t, 16, 500, f, &n);
    if (rc == RX_TIMEOUT) continue;
    CHECKF(rc == 0, "watch %d: %s", rc, rx_timers_errstr(t));
    if (rc) break;
    long long now = rx_now_ms();
    for (size_t i = 0; i < n; i++) {
      int k = atoi(f[i].id + 1);
      CHECK(k >= 0 && k < N);
      if (k < 0 || k >= N) continue;
      times[k]++;
      fired++;
      CHECK(now >= f[i].due_ms - 2);
      if (k == 0) {
        CHECK_MEM(f[i].payload, f[i].payload_len, "late", 4);
        CHECK_EQ_INT(f[i].due_ms, due0);
      } else {
        char data[16];
        snprintf(data, sizeof data, "v%d", k);
        CHECK_MEM(f[i].payload, f[i].payload_len, data, strlen(data));
      }
      CHECK_EQ_INT(rx_timers_ack(t, f[i].token), 0);
    }
  }
  CHECK_EQ_INT(fired, N - 1);
  for (int i = 0; i < N; i++) CHECKF(times[i] == (i == 1 ? 0 : 1), "%s fired %d times", id[i], times[i]);
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(t, 4, 300, NULL, &n), RX_TIMEOUT);
  rx_timers_free(t);
}

/* rx_queue_ack_fetch across partitions: the acks go to their partitions,
 * then the fetch; a stale one is counted out, not an error. */
static void test_partitions_ack_fetch(void) {
  rx_queue *q = qnew(srv.url, "spaf", 3);
  CHECK(q);
  for (int i = 0; i < 60; i++) {
    char pl[16];
    snprintf(pl, sizeof pl, "%d", i);
    CHECK_EQ_INT(sched(q, NULL, pl, 0), 0);
  }
  size_t n = 0, acked = 0, total = 0, got = 0;
  int rc = rx_queue_ack_fetch(q, NULL, 0, &acked, 20, 2000, NULL, &n);
  CHECKF(rc == 0, "ack_fetch %d: %s", rc, rx_queue_errstr(q));
  got = n;
  for (int round = 0; round < 40 && got < 60; round++) {
    size_t prev = n;
    rc = rx_queue_ack_fetch(q, rx_queue_job(q, 0), prev, &acked, 20, 2000, NULL, &n);
    CHECKF(rc == 0, "ack_fetch %d: %s", rc, rx_queue_errstr(q));
    CHECK_EQ_INT(acked, prev);
    total += acked;
    got += n;
  }
  CHECK_EQ_INT(got, 60);
  /* The last batch, one of it acked already: stale, counted out. */
  size_t last = n;
  CHECK(last >= 2);
  /* A bad max is refused before anything is acked. */
  CHECK_EQ_INT(rx_queue_ack_fetch(q, rx_queue_job(q, 0), last, &acked, 0, 0, NULL, &n),
               RX_EINVAL);
  CHECK_EQ_INT(acked, 0);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  CHECK_EQ_INT(rx_queue_ack_fetch(q, rx_queue_job(q, 0), last, &acked, 20, 0, NULL, &n),
               RX_TIMEOUT);
  CHECK_EQ_INT(acked, last - 1);
  total += acked + 1;
  CHECK_EQ_INT(total, 60);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.scheduled + st.ready + st.in_flight, 0);
  CHECK_EQ_INT(st.acked, 60);

  /* The same with the tokens as text (rx_queue_ack_many_fetch): a
   * partition's tokens carry it ("2:..."), mixed across partitions. */
  for (int i = 0; i < 30; i++) CHECK_EQ_INT(sched(q, NULL, "t", 0), 0);
  CHECK_EQ_INT(rx_queue_ack_many_fetch(q, NULL, 0, &acked, 20, 2000, NULL, &n), 0);
  got = n;
  total = 0;
  for (int round = 0; round < 40; round++) {
    char text[2048];
    size_t len = 0, prev = n;
    for (size_t i = 0; i < prev; i++)
      len += (size_t)snprintf(text + len, sizeof text - len, "%s ", rx_queue_job(q, i)->token);
    CHECK(strchr(text, ':') != NULL);
    rc = rx_queue_ack_many_fetch(q, text, len, &acked, 20, got < 30 ? 2000 : 0, NULL, &n);
    CHECKF(rc == 0 || (rc == RX_TIMEOUT && got == 30), "ack_many_fetch %d: %s", rc,
           rx_queue_errstr(q));
    CHECK_EQ_INT(acked, prev);
    total += acked;
    got += n;
    if (rc == RX_TIMEOUT) break;
  }
  CHECK_EQ_INT(got, 30);
  CHECK_EQ_INT(total, 30);
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.acked, 90);
  rx_queue_free(q);
}

/* ------------------------------------------------------------ main */

int main(void) {
  long long t0 = rxt_ms();
  RUN(test_naming);
  if (rxt_server_start(&srv, NULL) != 0) {
    fprintf(stderr, "cannot start redis-server\n");
    return 1;
  }
  RUN(test_standalone_partitions);
  RUN(test_partitions_ack_fetch);
  cluster_up = rxt_cluster_start(&cl, 3, 1) == 0;
  fprintf(stderr, "  cluster %s in %lld ms\n", cluster_up ? "up" : "FAILED", rxt_ms() - t0);
  RUN(test_cluster_one_partition);
  RUN(test_cluster_partitioned);
  RUN(test_cluster_timers);
  rxt_cluster_cleanup(&cl);
  rxt_server_cleanup(&srv);
  fprintf(stderr, "  total %lld ms\n", rxt_ms() - t0);
  return TEST_REPORT();
}
