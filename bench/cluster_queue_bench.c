/* cluster_queue_bench — the delayed queue on Redis Cluster with partitions,
 * against one partition on one server. Starts its own servers (loopback, no
 * persistence): one standalone redis-server, then a cluster of 3 masters,
 * then a cluster of 3 masters with a replica each (for WAIT). Prints, does
 * not judge.
 *
 *   schedule   one producer, one call (one round trip) per message
 *   batch      one producer, batches of 1,000 (split by partition)
 *   drain      N due messages, C consumers (threads, a handle each),
 *              fetch 100 + one batched ack per fetch
 *   wait       batches of 1,000 with wait_replicas=1 (replicas cluster)
 * and, for partitioned queues, where the messages went (per partition and
 * per node).
 *
 * On a machine with fewer cores than servers (this one has 2) a cluster
 * cannot be faster than one server: the three masters share the cores, and
 * every partition costs a round trip of its own. The point of partitions is
 * to spread a queue over machines; these figures show what the routing
 * costs where it cannot pay off.
 *
 *   cluster_queue_bench [--n N] [--consumers C] [--single S]
 *     N: messages for batch/drain/wait (default 60000)
 *     C: consumers for drain (default 2)
 *     S: messages for one-call schedule (default 10000)
 */
#include <pthread.h>
#include <reactis/queue.h>
#include <reactis/reactis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "rx_private.h"
#include "server.h"

static long N = 60000, SINGLE = 10000;
static int CONSUMERS = 2;

static rx_queue *qopen(const char *url, const char *name, int parts, int wait) {
  char err[256];
  rx_queue *q = rx_queue_new(url, name, err, sizeof err);
  if (!q) {
    fprintf(stderr, "rx_queue_new: %s\n", err);
    exit(1);
  }
  char v[16];
  snprintf(v, sizeof v, "%d", parts);
  if (rx_queue_set(q, "partitions", v) != RX_OK) {
    fprintf(stderr, "partitions: %s\n", rx_queue_errstr(q));
    exit(1);
  }
  if (wait) {
    rx_queue_set(q, "wait_replicas", "1");
    rx_queue_set(q, "wait_timeout_ms", "2000");
  }
  return q;
}

static void die(rx_queue *q, const char *what) {
  fprintf(stderr, "%s: %s\n", what, rx_queue_errstr(q));
  exit(1);
}

static double secs_since(long long t0) { return (double)(rx_monotonic_ms() - t0) / 1000.0; }

/* ------------------------------------------------------------ phases */

static double run_single(const char *url, const char *name, int parts) {
  rx_queue *q = qopen(url, name, parts, 0);
  long long t0 = rx_monotonic_ms();
  for (long i = 0; i < SINGLE; i++) {
    char id[32];
    int n = snprintf(id, sizeof id, "s%ld", i);
    if (rx_queue_schedule(q, id, (size_t)n, "x", 1, 3600000, 0, NULL, 0, NULL, NULL))
      die(q, "schedule");
  }
  double s = secs_since(t0);
  rx_queue_free(q);
  return (double)SINGLE / s;
}

static double run_batch(const char *url, const char *name, int parts, int wait) {
  rx_queue *q = qopen(url, name, parts, wait);
  static const char payload[100] = {0};
  long long t0 = rx_monotonic_ms();
  for (long i = 0; i < N;) {
    for (int k = 0; k < 1000 && i < N; k++, i++)
      if (rx_queue_batch_add(q, NULL, 0, payload, sizeof payload, 0, 0)) die(q, "batch_add");
    if (rx_queue_batch_send(q)) die(q, "batch_send");
    rx_queue_batch_clear(q);
  }
  double s = secs_since(t0);
  rx_queue_free(q);
  return (double)N / s;
}

typedef struct drain_arg {
  const char *url, *name;
  int parts;
  atomic_long *left;
} drain_arg;

static void *drainer(void *p) {
  drain_arg *a = p;
  rx_queue *q = qopen(a->url, a->name, a->parts, 0);
  rx_job jobs[100];
  while (atomic_load(a->left) > 0) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 100, 200, jobs, &n);
    if (rc < 0) die(q, "fetch");
    if (!n) continue;
    if (rx_queue_ack_jobs(q, jobs, n, NULL)) die(q, "ack");
    atomic_fetch_sub(a->left, (long)n);
  }
  rx_queue_free(q);
  return NULL;
}

/* Drains what run_batch left (N due messages). */
static double run_drain(const char *url, const char *name, int parts) {
  atomic_long left = N;
  drain_arg a = {url, name, parts, &left};
  pthread_t th[16];
  long long t0 = rx_monotonic_ms();
  for (int i = 0; i < CONSUMERS; i++) pthread_create(&th[i], NULL, drainer, &a);
  for (int i = 0; i < CONSUMERS; i++) pthread_join(th[i], NULL);
  return (double)N / secs_since(t0);
}

/* Where the waiting messages of a partitioned queue are, per node. */
static void distribution(rxt_cluster *c, rxt_server *single, const char *url, const char *name,
                         int parts) {
  rx_queue *q = qopen(url, name, parts, 0);
  long long per_node[RXT_CLUSTER_MAX + 1] = {0};
  printf("    where %ld messages went:\n", N);
  for (int p = 0; p < parts; p++) {
    const char *pn = rx_queue_partition_name(q, p);
    rxt_server *s = c ? rxt_cluster_owner(c, rx_cluster_keyslot(pn, strlen(pn))) : single;
    char key[300];
    snprintf(key, sizeof key, "rx:{%s}:z", pn);
    const char *a[3] = {"ZCARD", key, NULL};
    char *r = s ? rxt_cmd(s, a) : NULL;
    long long k = r && r[0] == ':' ? atoll(r + 1) : -1;
    free(r);
    int idx = c && s ? rxt_cluster_index(c, s) : 0;
    if (idx >= 0 && k > 0) per_node[idx] += k;
    printf("      partition %d %-16s slot %5d  127.0.0.1:%-5d %7lld\n", p, pn,
           rx_cluster_keyslot(pn, strlen(pn)), s ? s->port : 0, k);
  }
  int nodes = c ? c->count : 1;
  for (int i = 0; i < nodes; i++)
    if (per_node[i])
      printf("      node 127.0.0.1:%-5d %7lld (%.1f%%)\n", c ? c->node[i].port : single->port,
             per_node[i], 100.0 * (double)per_node[i] / (double)N);
  rx_queue_free(q);
}

typedef struct row {
  const char *what;
  double single, batch, drain, wait;
} row;

static row measure(const char *what, rxt_cluster *c, rxt_server *s, const char *url,
                   const char *name, int parts, int wait) {
  row r = {what, 0, 0, 0, 0};
  char nm[64];
  printf("  %s\n", what);
  fflush(stdout);
  snprintf(nm, sizeof nm, "%s-s", name);
  r.single = run_single(url, nm, parts);
  if (wait) {
    snprintf(nm, sizeof nm, "%s-w", name);
    r.wait = run_batch(url, nm, parts, 1);
  }
  r.batch = run_batch(url, name, parts, 0);
  if (parts > 1) distribution(c, s, url, name, parts);
  r.drain = run_drain(url, name, parts);
  printf("    schedule %7.0f/s  batch %7.0f/s  drain(%d) %7.0f/s", r.single, r.batch, CONSUMERS,
         r.drain);
  if (wait) printf("  batch+WAIT %7.0f/s", r.wait);
  printf("\n");
  fflush(stdout);
  return r;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--n") && i + 1 < argc)
      N = atol(argv[++i]);
    else if (!strcmp(argv[i], "--consumers") && i + 1 < argc)
      CONSUMERS = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--single") && i + 1 < argc)
      SINGLE = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: cluster_queue_bench [--n N] [--consumers C] [--single S]\n");
      return 2;
    }
  }
  if (N < 1000 || CONSUMERS < 1 || CONSUMERS > 16 || SINGLE < 1) return 2;
  printf("reactis %s cluster_queue_bench: n=%ld, %d consumers, loopback\n", rx_version(), N,
         CONSUMERS);
  row rows[6];
  int nr = 0;

  rxt_server srv;
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  rows[nr++] = measure("standalone, 1 partition", NULL, &srv, srv.url, "b1", 1, 0);
  rows[nr++] = measure("standalone, 6 partitions", NULL, &srv, srv.url, "b6", 6, 0);
  rxt_server_cleanup(&srv);

  rxt_cluster c;
  if (rxt_cluster_start(&c, 3, 0) != 0) return 1;
  rows[nr++] = measure("cluster 3 masters, 1 partition", &c, NULL, c.url, "c1", 1, 0);
  rows[nr++] = measure("cluster 3 masters, 6 partitions", &c, NULL, c.url, "c6", 6, 0);
  rxt_cluster_cleanup(&c);

  if (rxt_cluster_start(&c, 3, 1) != 0) return 1;
  rows[nr++] = measure("cluster 3+3 replicas, 1 partition", &c, NULL, c.url, "r1", 1, 1);
  rows[nr++] = measure("cluster 3+3 replicas, 6 partitions", &c, NULL, c.url, "r6", 6, 1);
  rxt_cluster_cleanup(&c);

  printf("\n| setup | schedule/s (1 call each) | batch/s (1,000 per send) | drain/s (%d consumers) | "
         "batch+WAIT 1/s |\n| --- | ---: | ---: | ---: | ---: |\n",
         CONSUMERS);
  for (int i = 0; i < nr; i++) {
    printf("| %s | %.0f | %.0f | %.0f |", rows[i].what, rows[i].single, rows[i].batch,
           rows[i].drain);
    if (rows[i].wait > 0)
      printf(" %.0f |\n", rows[i].wait);
    else
      printf(" |\n");
  }
  return 0;
}
