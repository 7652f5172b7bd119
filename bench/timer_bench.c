/* timer_bench — figures for resettable timers (timer.h) against a
 * redis-server it starts (loopback, no persistence). Prints, does not
 * judge; the goals of issue 6 are printed beside each figure. Every figure
 * is taken with LIVE timers armed (far in the future) in the same set.
 *
 *   touch      one rx_timers_touch per call (one round trip), resetting
 *              random live timers                       goal >= 20,000/s
 *   batch      rx_timers_batch_*, 10,000 touches per send goal >= 150,000/s
 *   lateness   N timers due evenly over 10 s among the live ones, one
 *              watcher (fetch 100, batched acks); lateness = receipt -
 *              deadline                                 goal p99 <= 5 ms
 *   memory     used_memory per live timer (16-byte data)
 *
 *   timer_bench [--live M] [--n N] [--only NAME]
 *     M: live timers (default 1000000); N: touches / timers (default 100000)
 */
#include <reactis/reactis.h>
#include <reactis/timer.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rx_private.h"
#include "server.h"

static rxt_server srv;
static long N = 100000, LIVE = 1000000;
static const char *only;

static rx_timers *topen(const char *name) {
  char err[256];
  rx_timers *t = rx_timers_new(srv.url, name, err, sizeof err);
  if (!t) {
    fprintf(stderr, "rx_timers_new: %s\n", err);
    exit(1);
  }
  return t;
}

static void die(rx_timers *t, const char *what) {
  fprintf(stderr, "%s: %s\n", what, rx_timers_errstr(t));
  exit(1);
}

static long long used_memory(void) {
  const char *a[] = {"INFO", "memory", NULL};
  char *r = rxt_cmd(&srv, a);
  long long v = -1;
  if (r) {
    const char *p = strstr(r, "used_memory:");
    if (p) v = atoll(p + strlen("used_memory:"));
    free(r);
  }
  return v;
}

static double server_cpu(void) {
  const char *a[] = {"INFO", "cpu", NULL};
  char *r = rxt_cmd(&srv, a);
  double v = 0;
  if (r) {
    const char *p = strstr(r, "used_cpu_user:");
    if (p) v += atof(p + strlen("used_cpu_user:"));
    p = strstr(r, "used_cpu_sys:");
    if (p) v += atof(p + strlen("used_cpu_sys:"));
    free(r);
  }
  return v;
}

static double client_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static int want(const char *name) { return !only || !strcmp(only, name); }

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static const char DATA[16] = "last-payload-016";

static int dev_id(char *buf, size_t len, long i) { return snprintf(buf, len, "device:%ld", i); }

/* Touches ids [0, n) with ttl, in sends of `per`. */
static void batch_touch(rx_timers *t, long n, long long ttl, long per, long offset) {
  for (long i = 0; i < n;) {
    for (long k = 0; k < per && i < n; k++, i++) {
      char id[32];
      int l = dev_id(id, sizeof id, (i + offset) % (LIVE > 0 ? LIVE : 1));
      if (rx_timers_batch_add(t, id, (size_t)l, ttl, DATA, sizeof DATA)) die(t, "batch_add");
    }
    if (rx_timers_batch_send(t)) die(t, "batch_send");
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--n")) N = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--live")) LIVE = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    else {
      fprintf(stderr, "usage: timer_bench [--live M] [--n N] [--only NAME]\n");
      return 2;
    }
  }
  if (N < 1000) N = 1000;
  signal(SIGPIPE, SIG_IGN);
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  printf("reactis %s timer_bench, %ld live timers, n=%ld, redis-server on loopback\n",
         rx_version(), LIVE, N);
  rx_timers *t = topen("bench");

  /* The live timers: due in an hour, reset by the figures below. */
  long long m0 = used_memory();
  long long f0 = rx_monotonic_ms();
  if (LIVE > 0) batch_touch(t, LIVE, 3600000, 10000, 0);
  long long m1 = used_memory();
  printf("  arming %ld live timers           %10.1f s\n", LIVE,
         (rx_monotonic_ms() - f0) / 1000.0);
  if (want("memory") && LIVE > 0)
    printf("  memory per live timer            %10.1f B       (16-byte data, ids \"device:N\")\n",
           (double)(m1 - m0) / LIVE);

  if (want("touch")) {
    long n = N / 2 < 50000 ? N / 2 : 50000;
    uint64_t seed = 12345;
    double sc = server_cpu(), cc = client_cpu();
    long long t0 = rx_monotonic_ms();
    for (long i = 0; i < n; i++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      char id[32];
      int l = dev_id(id, sizeof id, (long)((seed >> 33) % (uint64_t)(LIVE > 0 ? LIVE : 1)));
      if (rx_timers_touch(t, id, (size_t)l, 3600000, DATA, sizeof DATA)) die(t, "touch");
    }
    double s = (rx_monotonic_ms() - t0) / 1000.0;
    sc = server_cpu() - sc;
    cc = client_cpu() - cc;
    printf("  touch, one call each             %10.0f /s      goal >= 20000   "
           "(cpu: server %.0f%%, client %.0f%%)\n",
           n / s, 100 * sc / s, 100 * cc / s);
  }
  if (want("batch")) {
    long n = N * 5;
    double sc = server_cpu(), cc = client_cpu();
    long long t0 = rx_monotonic_ms();
    batch_touch(t, n, 3600000, 10000, 7919);
    double s = (rx_monotonic_ms() - t0) / 1000.0;
    sc = server_cpu() - sc;
    cc = client_cpu() - cc;
    printf("  touch, batches of 10000          %10.0f /s      goal >= 150000  "
           "(cpu: server %.0f%%, client %.0f%%; server %.2f us/touch)\n",
           n / s, 100 * sc / s, 100 * cc / s, 1e6 * sc / n);
  }
  if (want("lateness")) {
    rx_timers *w = topen("bench");
    long n = N / 5 < 20000 ? N / 5 : 20000;
    long long start = rx_now_ms() + 2000;
    for (long i = 0; i < n;) {
      for (long k = 0; k < 1000 && i < n; k++, i++) {
        char id[32];
        int l = snprintf(id, sizeof id, "late:%ld", i);
        /* Absolute deadlines through the batch: ttl from now. */
        long long ttl = start + i * 10000 / n - rx_now_ms();
        if (rx_timers_batch_add(t, id, (size_t)l, ttl < 0 ? 0 : ttl, DATA, sizeof DATA))
          die(t, "batch_add");
      }
      if (rx_timers_batch_send(t)) die(t, "batch_send");
    }
    long long *late = malloc(sizeof *late * (size_t)n);
    long got = 0;
    while (got < n) {
      size_t k = 0;
      int rc = rx_timers_watch(w, 100, 5000, NULL, &k);
      if (rc < 0) die(w, "watch");
      if (rc) {
        fprintf(stderr, "lateness: watch timed out after %ld\n", got);
        exit(1);
      }
      long long now = rx_now_ms();
      for (size_t i = 0; i < k && got < n; i++) late[got++] = now - rx_timers_fired(w, i)->due_ms;
      if (rx_queue_ack_jobs(rx_timers_queue(w), rx_timers_fired(w, 0), k, NULL)) die(w, "ack");
    }
    qsort(late, (size_t)n, sizeof *late, cmp_ll);
    printf("  firing lateness, %ld over 10 s  p50 %lld  p99 %lld  p99.9 %lld  max %lld ms"
           "   goal p99 <= 5\n",
           n, late[n / 2], late[n * 99 / 100], late[n * 999 / 1000], late[n - 1]);
    free(late);
    rx_timers_free(w);
  }
  rx_timers_free(t);
  rxt_server_cleanup(&srv);
  return 0;
}
