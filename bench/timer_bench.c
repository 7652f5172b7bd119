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
 * Beside touch and batch it prints baselines measured in the same run, on
 * the same live set, through the same client library, so a reader sees
 * what bounds the figures on this machine: PING (the round-trip floor),
 * and a plain ZADD + HSET of the same ids (pipelined, one round trip per
 * touch; in the batch case 1,000 members per command), which is what a
 * touch does minus the script. The server's own time per call comes from
 * INFO commandstats (usec_per_call) of the same run.
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

#include "rx_private.h"
#include "bench_util.h"
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

static const char DATA[16] = "last-payload-016";

static int dev_id(char *buf, size_t len, long i) { return snprintf(buf, len, "device:%ld", i); }

static rx_conn *copen(void) {
  char err[256];
  rx_conn *c = rx_conn_new(srv.url, err, sizeof err);
  if (!c || rx_conn_connect(c) != RX_OK) {
    fprintf(stderr, "rx_conn: %s\n", c ? rx_conn_errstr(c) : err);
    exit(1);
  }
  return c;
}

/* Reads n pipelined replies and fails on an error reply. */
static void read_n(rx_conn *c, long n) {
  for (long i = 0; i < n; i++) {
    rx_reply *r = NULL;
    if (rx_conn_get_reply(c, &r) != RX_OK || r->type == RX_REPLY_ERROR) {
      fprintf(stderr, "baseline: %s\n", r ? r->str : rx_conn_errstr(c));
      exit(1);
    }
    rx_reply_free(r);
  }
}

/* A record as the queue's script writes it (core/lua/queue.lua: 0x01, the
 * enqueue ms in 6 big-endian bytes, the payload), so the timers written by
 * the baselines stay valid timers. */
static size_t record(char *out, long long now) {
  out[0] = 1;
  for (int k = 0; k < 6; k++) out[1 + k] = (char)(now >> (8 * (5 - k)));
  memcpy(out + 7, DATA, sizeof DATA);
  return 7 + sizeof DATA;
}

static uint64_t next_rand(uint64_t *seed) {
  *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return *seed >> 33;
}

static int want(const char *name) { return !only || !strcmp(only, name); }

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
  long long m0 = rxb_used_memory(&srv);
  long long f0 = rx_monotonic_ms();
  if (LIVE > 0) batch_touch(t, LIVE, 3600000, 10000, 0);
  long long m1 = rxb_used_memory(&srv);
  printf("  arming %ld live timers           %10.1f s\n", LIVE,
         (rx_monotonic_ms() - f0) / 1000.0);
  if (want("memory") && LIVE > 0)
    printf("  memory per live timer            %10.1f B       (16-byte data, ids \"device:N\")\n",
           (double)(m1 - m0) / LIVE);

  const char *zkey = "rx:{timer:bench}:z", *mkey = "rx:{timer:bench}:m";
  uint64_t range = (uint64_t)(LIVE > 0 ? LIVE : 1);
  if (want("touch")) {
    long n = N / 2 < 50000 ? N / 2 : 50000;
    rx_conn *c = copen();
    /* Baselines first, on the same ids as the touches below. */
    uint64_t seed = 777;
    rxb_reset_stats(&srv);
    long long t0 = rx_monotonic_ms();
    for (long i = 0; i < n; i++) {
      const char *a[1] = {"PING"};
      rx_reply *r = NULL;
      if (rx_conn_command(c, &r, 1, a, NULL) != RX_OK) die(t, "PING");
      rx_reply_free(r);
    }
    double ping_s = (rx_monotonic_ms() - t0) / 1000.0;
    t0 = rx_monotonic_ms();
    for (long i = 0; i < n; i++) {
      char id[32], sc[24], rec[32];
      int l = dev_id(id, sizeof id, (long)(next_rand(&seed) % range));
      snprintf(sc, sizeof sc, "%lld", rx_now_ms() + 3600000);
      size_t rl = record(rec, rx_now_ms());
      const char *za[4] = {"ZADD", zkey, sc, id};
      const char *ha[4] = {"HSET", mkey, id, rec};
      size_t zl[4] = {4, strlen(zkey), strlen(sc), (size_t)l};
      size_t hl[4] = {4, strlen(mkey), (size_t)l, rl};
      if (rx_conn_append(c, 4, za, zl) != RX_OK || rx_conn_append(c, 4, ha, hl) != RX_OK) {
        fprintf(stderr, "append: %s\n", rx_conn_errstr(c));
        exit(1);
      }
      read_n(c, 2);
    }
    double raw_s = (rx_monotonic_ms() - t0) / 1000.0;
    double ping_us = rxb_usec_per_call(&srv, "ping"), zadd_us = rxb_usec_per_call(&srv, "zadd"),
           hset_us = rxb_usec_per_call(&srv, "hset");
    seed = 12345;
    rxb_reset_stats(&srv);
    double sc = rxb_server_cpu(&srv), cc = rxb_client_cpu();
    t0 = rx_monotonic_ms();
    for (long i = 0; i < n; i++) {
      char id[32];
      int l = dev_id(id, sizeof id, (long)(next_rand(&seed) % range));
      if (rx_timers_touch(t, id, (size_t)l, 3600000, DATA, sizeof DATA)) die(t, "touch");
    }
    double s = (rx_monotonic_ms() - t0) / 1000.0;
    sc = rxb_server_cpu(&srv) - sc;
    cc = rxb_client_cpu() - cc;
    printf("  touch, one call each             %10.0f /s      goal >= 20000   "
           "(cpu: server %.0f%%, client %.0f%%; server %.1f us/call)\n",
           n / s, 100 * sc / s, 100 * cc / s, rxb_usec_per_call(&srv, "evalsha"));
    printf("    baseline PING, one call each   %10.0f /s      (server %.2f us/call)\n",
           n / ping_s, ping_us);
    printf("    baseline ZADD+HSET, one r.t.   %10.0f /s      (server %.1f + %.1f us/call)\n",
           n / raw_s, zadd_us, hset_us);
    rx_conn_free(c);
  }
  if (want("batch")) {
    long n = N * 5;
    /* The baseline: ZADD and HSET of 1,000 members each, ten pairs per
     * round trip (10,000 touches, the shape of one batch send). */
    rx_conn *c = copen();
    enum { PER = 1000, PAIRS = 10 };
    char (*ids)[32] = malloc(sizeof *ids * PER), (*scs)[24] = malloc(sizeof *scs * PER);
    const char **za = malloc(sizeof *za * (2 + 2 * PER)), **ha = malloc(sizeof *ha * (2 + 2 * PER));
    size_t *zl = malloc(sizeof *zl * (2 + 2 * PER)), *hl = malloc(sizeof *hl * (2 + 2 * PER));
    char rec[32];
    if (!ids || !scs || !za || !ha || !zl || !hl) die(t, "malloc");
    long raw_n = N * 2;
    rxb_reset_stats(&srv);
    double sc = rxb_server_cpu(&srv);
    long long t0 = rx_monotonic_ms();
    for (long i = 0; i < raw_n;) {
      long sent = 0;
      for (int p = 0; p < PAIRS && i < raw_n; p++) {
        size_t rl = record(rec, rx_now_ms());
        za[0] = "ZADD", zl[0] = 4, za[1] = zkey, zl[1] = strlen(zkey);
        ha[0] = "HSET", hl[0] = 4, ha[1] = mkey, hl[1] = strlen(mkey);
        int k = 0;
        for (; k < PER && i < raw_n; k++, i++) {
          int l = dev_id(ids[k], sizeof ids[k], (i + 104729) % (long)range);
          int sl = snprintf(scs[k], sizeof scs[k], "%lld", rx_now_ms() + 3600000);
          za[2 + 2 * k] = scs[k], zl[2 + 2 * k] = (size_t)sl;
          za[3 + 2 * k] = ids[k], zl[3 + 2 * k] = (size_t)l;
          ha[2 + 2 * k] = ids[k], hl[2 + 2 * k] = (size_t)l;
          ha[3 + 2 * k] = rec, hl[3 + 2 * k] = rl;
        }
        if (rx_conn_append(c, 2 + 2 * k, za, zl) != RX_OK ||
            rx_conn_append(c, 2 + 2 * k, ha, hl) != RX_OK) {
          fprintf(stderr, "append: %s\n", rx_conn_errstr(c));
          exit(1);
        }
        sent += 2;
      }
      read_n(c, sent);
    }
    double raw_s = (rx_monotonic_ms() - t0) / 1000.0;
    double raw_sc = rxb_server_cpu(&srv) - sc;
    free(ids), free(scs), free(za), free(ha), free(zl), free(hl);
    rx_conn_free(c);
    rxb_reset_stats(&srv);
    double cc = rxb_client_cpu();
    sc = rxb_server_cpu(&srv);
    t0 = rx_monotonic_ms();
    batch_touch(t, n, 3600000, 10000, 7919);
    double s = (rx_monotonic_ms() - t0) / 1000.0;
    sc = rxb_server_cpu(&srv) - sc;
    cc = rxb_client_cpu() - cc;
    printf("  touch, batches of 10000          %10.0f /s      goal >= 150000  "
           "(cpu: server %.0f%%, client %.0f%%; server %.2f us/touch)\n",
           n / s, 100 * sc / s, 100 * cc / s, 1e6 * sc / n);
    printf("    baseline ZADD+HSET x1000, 10/r.t. %7.0f /s      (server %.2f us/touch)\n",
           raw_n / raw_s, 1e6 * raw_sc / raw_n);
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
    qsort(late, (size_t)n, sizeof *late, rxb_cmp_ll);
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
