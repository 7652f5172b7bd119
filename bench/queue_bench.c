/* queue_bench — figures for the delayed queue against a redis-server it
 * starts (loopback, no persistence). Prints, does not judge; the goals from
 * the design are printed beside each figure.
 *
 *   drain      N immediately-due no-op messages, one consumer, fetch 100 +
 *              one batched ack per fetch                  goal >= 70,000 msg/s
 *   schedule   one call (one round trip) per message      goal >= 20,000/s
 *   batch      rx_queue_batch_*, 10,000 per send (one round trip: ten
 *              pipelined script calls of 1,000)           goal >= 200,000/s
 *   lateness   N messages due evenly over 10 s, scheduled beforehand, one
 *              consumer; lateness = receipt - due         goal p99 <= 5 ms,
 *                                                          max <= 25 ms
 *              and where the late ones lost their time (fetch and ack
 *              times, due before the fetch was called, promoted late,
 *              server time per call, and how much 1 ms sleeps overran)
 *   memory     used_memory per waiting message, 100-byte payload,
 *              generated ids                               goal <= 300 B
 *   flat       schedule and fetch+ack rates with 10,000 and 1,000,000
 *              other messages waiting                      goal within 2x
 *
 *   queue_bench [--n N] [--big M] [--only NAME]
 *     N: messages for drain/batch/lateness/memory (default 100000)
 *     M: waiting messages for the "flat" high mark (default 1000000)
 */
#include <reactis/queue.h>
#include <reactis/reactis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rx_private.h"
#include "bench_util.h"
#include "server.h"

static rxt_server srv;
static long N = 100000, BIG = 1000000;
static const char *only;

static rx_queue *qopen(const char *name) {
  char err[256];
  rx_queue *q = rx_queue_new(srv.url, name, err, sizeof err);
  if (!q) {
    fprintf(stderr, "rx_queue_new: %s\n", err);
    exit(1);
  }
  return q;
}

static void die(rx_queue *q, const char *what) {
  fprintf(stderr, "%s: %s\n", what, rx_queue_errstr(q));
  exit(1);
}

static void flush_all(void) {
  const char *a[] = {"FLUSHALL", NULL};
  free(rxt_cmd(&srv, a));
}

/* The machine's own noise: a thread that sleeps 1 ms at a time and records
 * by how much each sleep overran, while the lateness case runs. On a shared
 * machine a late message often is a descheduled process, not the queue. */
static volatile int probe_stop;
static long probe_n;
static long long probe_us[200000];

static void *probe(void *arg) {
  (void)arg;
  while (!probe_stop && probe_n < (long)(sizeof probe_us / sizeof probe_us[0])) {
    struct timespec a, b, d = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    nanosleep(&d, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    probe_us[probe_n++] =
        (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000 - 1000;
  }
  return NULL;
}

/* Schedules n messages in batches of `per` (sent as pipelined script calls
 * of 1,000 messages each). */
static void batch_fill_per(rx_queue *q, long n, long long when, int at, size_t plen, long per) {
  char payload[256];
  memset(payload, 'p', sizeof payload);
  for (long i = 0; i < n;) {
    long k = 0;
    for (; k < per && i < n; k++, i++)
      if (rx_queue_batch_add(q, NULL, 0, payload, plen, when, at ? RX_SCHED_AT : 0))
        die(q, "batch_add");
    if (rx_queue_batch_send(q)) die(q, "batch_send");
  }
}

static void batch_fill(rx_queue *q, long n, long long when, int at, size_t plen) {
  batch_fill_per(q, n, when, at, plen, 10000);
}

/* Fetches and acks until `count` messages came; returns seconds. */
static double drain(rx_queue *q, long count) {
  long got = 0;
  long long t0 = rx_monotonic_ms();
  while (got < count) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 100, 5000, NULL, &n);
    if (rc < 0) die(q, "fetch");
    if (rc) {
      fprintf(stderr, "drain: fetch timed out after %ld\n", got);
      exit(1);
    }
    if (rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL)) die(q, "ack");
    got += (long)n;
  }
  return (rx_monotonic_ms() - t0) / 1000.0;
}

static double schedule_single(rx_queue *q, long count) {
  char payload[100];
  memset(payload, 'x', sizeof payload);
  long long t0 = rx_monotonic_ms();
  for (long i = 0; i < count; i++)
    if (rx_queue_schedule(q, NULL, 0, payload, sizeof payload, 3600000, 0, NULL, 0, NULL,
                          NULL))
      die(q, "schedule");
  return (rx_monotonic_ms() - t0) / 1000.0;
}

static int want(const char *name) { return !only || !strcmp(only, name); }

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--n")) N = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--big")) BIG = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    else {
      fprintf(stderr, "usage: queue_bench [--n N] [--big M] [--only NAME]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  printf("reactis %s queue_bench, n=%ld, redis-server on loopback\n", rx_version(), N);

  if (want("drain")) {
    flush_all();
    rx_queue *q = qopen("bench");
    batch_fill(q, N, 0, 0, 16);
    double sc = rxb_server_cpu(&srv), cc = rxb_client_cpu();
    double s = drain(q, N);
    sc = rxb_server_cpu(&srv) - sc;
    cc = rxb_client_cpu() - cc;
    printf("  drain (1 consumer, fetch 100)   %10.0f msg/s   goal >= 70000   "
           "(cpu: server %.0f%%, client %.0f%%)\n",
           N / s, 100 * sc / s, 100 * cc / s);
    rx_queue_free(q);
  }
  if (want("schedule")) {
    flush_all();
    rx_queue *q = qopen("bench");
    long n = N / 5 < 20000 ? N / 5 : 20000;
    /* The round-trip floor of this machine: one PING per call. */
    {
      rx_conn *c = rx_queue_conn(q);
      const char *a[1] = {"PING"};
      long long t0 = rx_monotonic_ms();
      for (long i = 0; i < n; i++) {
        rx_reply *r = NULL;
        if (rx_conn_command(c, &r, 1, a, NULL)) die(q, "PING");
        rx_reply_free(r);
      }
      double s = (rx_monotonic_ms() - t0) / 1000.0;
      printf("  (baseline: PING, one call each   %10.0f /s, the round-trip floor here)\n", n / s);
    }
    double sc = rxb_server_cpu(&srv), cc = rxb_client_cpu();
    double s = schedule_single(q, n);
    sc = rxb_server_cpu(&srv) - sc;
    cc = rxb_client_cpu() - cc;
    printf("  schedule, one call each          %10.0f msg/s   goal >= 20000   "
           "(cpu: server %.0f%%, client %.0f%%)\n",
           n / s, 100 * sc / s, 100 * cc / s);
    rx_queue_free(q);
  }
  if (want("batch")) {
    flush_all();
    rx_queue *q = qopen("bench");
    long long t0 = rx_monotonic_ms();
    double sc = rxb_server_cpu(&srv), cc = rxb_client_cpu();
    batch_fill_per(q, N, 3600000, 0, 100, 10000);
    double s = (rx_monotonic_ms() - t0) / 1000.0;
    sc = rxb_server_cpu(&srv) - sc;
    cc = rxb_client_cpu() - cc;
    printf("  schedule, batches of 10000       %10.0f msg/s   goal >= 200000  "
           "(cpu: server %.0f%%, client %.0f%%; server %.2f us/msg)\n",
           N / s, 100 * sc / s, 100 * cc / s, 1e6 * sc / N);
    rx_queue_free(q);
  }
  if (want("lateness")) {
    flush_all();
    rx_queue *q = qopen("bench");
    rx_queue *p = qopen("bench");
    long long start = rx_now_ms() + 2000;
    /* Due times spread evenly over 10 s, scheduled beforehand. */
    char payload[16] = "lateness-bench";
    for (long i = 0; i < N;) {
      for (long k = 0; k < 1000 && i < N; k++, i++)
        if (rx_queue_batch_add(p, NULL, 0, payload, sizeof payload, start + i * 10000 / N,
                               RX_SCHED_AT))
          die(p, "batch_add");
      if (rx_queue_batch_send(p)) die(p, "batch_send");
    }
    long long *late = malloc(sizeof *late * (size_t)N);
    long got = 0;
    pthread_t pt;
    probe_stop = 0;
    probe_n = 0;
    int probing = pthread_create(&pt, NULL, probe, NULL) == 0;
    rxb_reset_stats(&srv);
    /* Where a late message lost its time: already due when the fetch that
     * delivered it was called (the loop was busy or descheduled), promoted
     * late by the server (its clock at promotion), or in the reply's way
     * back. Counted for the messages more than 5 ms late. */
    long over = 0, due_before_call = 0, promoted_late = 0, fetches = 0, full = 0;
    long long fetch_ms = 0, ack_ms = 0, ack_max = 0, gap_max = 0, last_end = 0;
    while (got < N) {
      size_t n = 0;
      long long called = rx_now_ms();
      if (last_end && called - last_end > gap_max) gap_max = called - last_end;
      int rc = rx_queue_fetch(q, 100, 5000, NULL, &n);
      if (rc < 0) die(q, "fetch");
      long long now = rx_now_ms();
      fetch_ms += now - called;
      fetches++;
      full += n == 100;
      for (size_t i = 0; i < n && got < N; i++) {
        const rx_job *j = rx_queue_job(q, i);
        late[got++] = now - j->due_ms;
        if (now - j->due_ms > 5) {
          over++;
          due_before_call += j->due_ms + 5 < called;
          promoted_late += j->delivered_ms - j->due_ms > 5;
        }
      }
      if (n && rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL)) die(q, "ack");
      last_end = rx_now_ms();
      ack_ms += last_end - now;
      if (last_end - now > ack_max) ack_max = last_end - now;
    }
    probe_stop = 1;
    if (probing) pthread_join(pt, NULL);
    qsort(late, (size_t)N, sizeof *late, rxb_cmp_ll);
    qsort(probe_us, (size_t)probe_n, sizeof probe_us[0], rxb_cmp_ll);
    printf("  lateness over 10 s (ms)          p50 %lld  p99 %lld  p99.9 %lld  max %lld  min %lld"
           "   goal p99 <= 5, max <= 25\n",
           late[N / 2], late[N * 99 / 100], late[N * 999 / 1000], late[N - 1], late[0]);
    printf("    %ld fetches (%ld full), %.2f ms in fetch and %.2f ms in ack per fetch (max %lld, "
           "loop overhead max %lld); "
           "%ld messages > 5 ms late: %ld due 5 ms before their fetch was called, %ld "
           "promoted > 5 ms late\n",
           fetches, full, (double)fetch_ms / fetches, (double)ack_ms / fetches, ack_max,
           gap_max, over,
           due_before_call, promoted_late);
    printf("    server: %.1f us per script call (fetch or ack), %.1f us per XREADGROUP; "
           "1 ms sleeps on this machine overran by p99 %.1f, max %.1f ms\n",
           rxb_usec_per_call(&srv, "evalsha"), rxb_usec_per_call(&srv, "xreadgroup"),
           probe_n ? probe_us[probe_n * 99 / 100] / 1000.0 : -1.0,
           probe_n ? probe_us[probe_n - 1] / 1000.0 : -1.0);
    free(late);
    rx_queue_free(q);
    rx_queue_free(p);
  }
  if (want("memory")) {
    flush_all();
    rx_queue *q = qopen("bench");
    long long m0 = rxb_used_memory(&srv);
    batch_fill(q, N, 3600000, 0, 100);
    long long m1 = rxb_used_memory(&srv);
    printf("  memory per waiting message       %10.1f B       goal <= 300 (100-byte payload)\n",
           (double)(m1 - m0) / N);
    rx_queue_free(q);
  }
  if (want("flat")) {
    long marks[2] = {10000, BIG};
    double sched_rate[2], fetch_rate[2];
    for (int m = 0; m < 2; m++) {
      flush_all();
      rx_queue *q = qopen("bench");
      batch_fill(q, marks[m], 7200000, 0, 16); /* far future: stays waiting */
      long k = 5000;
      sched_rate[m] = k / schedule_single(q, k); /* due in an hour: adds to the pile */
      batch_fill(q, k, 0, 0, 16);                /* due now */
      fetch_rate[m] = k / drain(q, k);
      rx_queue_free(q);
    }
    printf("  flat: schedule/s with %ld / %ld waiting   %.0f / %.0f  (ratio %.2f)\n", marks[0],
           marks[1], sched_rate[0], sched_rate[1], sched_rate[0] / sched_rate[1]);
    printf("  flat: fetch+ack/s with %ld / %ld waiting  %.0f / %.0f  (ratio %.2f)   goal "
           "ratio <= 2\n",
           marks[0], marks[1], fetch_rate[0], fetch_rate[1], fetch_rate[0] / fetch_rate[1]);
  }
  rxt_server_cleanup(&srv);
  return 0;
}
