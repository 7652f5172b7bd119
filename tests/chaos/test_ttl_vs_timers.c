/* The "200,000 other TTL keys" scenario of DESIGN.md section 7, measured:
 * a server holds 200,000 keys with TTLs (an hour away), then 2,000 plain
 * keys and 2,000 timers fall due at the same moment, ~3 s from now. For 30
 * seconds after that moment it counts the timers that fired (and how late)
 * and the `expired` notifications that arrived for the plain keys (and how
 * late). Both figures are printed; only the timer side is asserted: every
 * timer fired, none early, p99 lateness < 200 ms. The notification side is
 * Redis's active expiry at work: it samples keys with TTLs a few times per
 * second and gives up early when few of them are stale, so with 1% of them
 * due it finds only a trickle, and `expired` fires when the key is deleted.
 * The test ends early when both sides are complete (~35 s at most). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactis/reactis.h"
#include "server.h"
#include "test.h"

enum { OTHERS = 200000, DUE = 2000, WATCH_MS = 30000, LEAD_MS = 3000 };

static rxt_server srv;
static long long due_at; /* epoch ms every due key and timer falls due */

typedef struct watcher {
  long long late[DUE];
  int fired, early, dup, errors;
  unsigned char seen[DUE];
  volatile int stop;
} watcher;

static void *watch_timers(void *arg) {
  watcher *w = arg;
  char err[256];
  rx_timers *t = rx_timers_new(srv.url, "ttlvs", err, sizeof err);
  if (!t) {
    w->errors++;
    return NULL;
  }
  long long end = due_at + WATCH_MS;
  while (!w->stop && rx_now_ms() < end && w->fired < DUE) {
    size_t n = 0;
    int rc = rx_timers_watch(t, 500, 200, NULL, &n);
    if (rc < 0) {
      w->errors++;
      rxt_sleep_ms(50);
      continue;
    }
    if (rc != RX_OK) continue;
    long long now = rx_now_ms();
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_timers_fired(t, i);
      int k = atoi(j->id + 2);
      if (k < 0 || k >= DUE) continue;
      if (w->seen[k]++) {
        w->dup++;
        continue;
      }
      if (now < due_at - 2) w->early++;
      w->late[w->fired++] = now - due_at;
    }
    if (rx_queue_ack_jobs(rx_timers_queue(t), rx_timers_fired(t, 0), n, NULL) < 0) w->errors++;
  }
  rx_timers_free(t);
  return NULL;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

/* Pipelined SETs: n keys prefix<i> with PX/PXAT ms, 1000 per flush. */
static int set_keys(rx_conn *c, const char *prefix, int n, const char *unit, long long ms) {
  char msbuf[24];
  snprintf(msbuf, sizeof msbuf, "%lld", ms);
  for (int i = 0; i < n;) {
    int k = 0;
    for (; k < 1000 && i < n; k++, i++) {
      char key[32];
      snprintf(key, sizeof key, "%s%d", prefix, i);
      const char *a[5] = {"SET", key, "v", unit, msbuf};
      if (rx_conn_append(c, 5, a, NULL) != RX_OK) return -1;
    }
    for (; k > 0; k--) {
      rx_reply *r = NULL;
      if (rx_conn_get_reply(c, &r) != RX_OK) return -1;
      int bad = r->type == RX_REPLY_ERROR;
      rx_reply_free(r);
      if (bad) return -1;
    }
  }
  return 0;
}

static void test_ttl_vs_timers(void) {
  char err[256];
  rx_conn *c = rx_conn_new(srv.url, err, sizeof err);
  CHECK(c);
  long long t0 = rx_monotonic_ms();
  CHECK_EQ_INT(set_keys(c, "other:", OTHERS, "PX", 3600000), 0);
  fprintf(stderr, "  %d keys with TTLs set in %lld ms\n", OTHERS, rx_monotonic_ms() - t0);

  rx_sub *s = rx_sub_new(srv.url, err, sizeof err);
  CHECK(s);
  const char *pat = "__keyevent@0__:expired";
  CHECK_EQ_INT(rx_sub_psubscribe(s, pat, strlen(pat)), 0);

  due_at = rx_now_ms() + LEAD_MS;
  CHECK_EQ_INT(set_keys(c, "due:", DUE, "PXAT", due_at), 0);
  rx_timers *p = rx_timers_new(srv.url, "ttlvs", err, sizeof err);
  CHECK(p);
  /* Half one call each with the absolute deadline, half in one batch
   * (whose ttl is taken from the clock now: the same moment). */
  for (int i = 0; i < DUE; i++) {
    char id[16];
    int l = snprintf(id, sizeof id, "t:%d", i);
    if (i < DUE / 2) {
      CHECK_EQ_INT(rx_timers_touch_ex(p, id, (size_t)l, due_at, RX_SCHED_AT, "d", 1, NULL, NULL),
                   0);
    } else {
      CHECK_EQ_INT(rx_timers_batch_add(p, id, (size_t)l, due_at - rx_now_ms(), "d", 1), 0);
    }
  }
  CHECK_EQ_INT(rx_timers_batch_send(p), 0);
  rx_timers_free(p);
  CHECK(rx_now_ms() < due_at - 500); /* all set well before the moment */

  static watcher w;
  memset(&w, 0, sizeof w);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, watch_timers, &w) == 0);

  /* The expired events of the due keys, as they come. */
  static unsigned char seen[DUE];
  memset(seen, 0, sizeof seen);
  int expired = 0, at1 = -1, at5 = -1, at10 = -1;
  long long first_late = -1, last_late = -1;
  long long end = due_at + WATCH_MS;
  while (rx_now_ms() < end && (expired < DUE || w.fired < DUE)) {
    rx_event ev;
    int rc = rx_sub_next(s, 100, &ev);
    long long now = rx_now_ms();
    if (at1 < 0 && now >= due_at + 1000) at1 = expired;
    if (at5 < 0 && now >= due_at + 5000) at5 = expired;
    if (at10 < 0 && now >= due_at + 10000) at10 = expired;
    if (rc != RX_OK || ev.kind != RX_EV_PMESSAGE) continue;
    if (ev.data_len < 5 || memcmp(ev.data, "due:", 4)) continue;
    int k = atoi(ev.data + 4);
    if (k < 0 || k >= DUE || seen[k]++) continue;
    expired++;
    if (first_late < 0) first_late = now - due_at;
    last_late = now - due_at;
  }
  w.stop = 1;
  pthread_join(th, NULL);
  long long waited = rx_now_ms() - due_at;

  qsort(w.late, (size_t)w.fired, sizeof w.late[0], cmp_ll);
  long long p50 = w.fired ? w.late[w.fired / 2] : -1;
  long long p99 = w.fired ? w.late[(w.fired * 99) / 100 - (w.fired >= 100 ? 1 : 0)] : -1;
  long long mx = w.fired ? w.late[w.fired - 1] : -1;
  printf("ttl_vs_timers: %d other keys with TTLs; %d timers and %d plain keys due at once; "
         "watched %lld ms\n",
         OTHERS, DUE, DUE, waited);
  printf("  timers:          %d/%d fired, none early: %s, duplicates %d; lateness p50 %lld "
         "p99 %lld max %lld ms\n",
         w.fired, DUE, w.early ? "NO" : "yes", w.dup, p50, p99, mx);
  printf("  expired events:  %d/%d arrived (after 1 s: %d, 5 s: %d, 10 s: %d); first %lld ms "
         "late, last %lld ms late\n",
         expired, DUE, at1 < 0 ? expired : at1, at5 < 0 ? expired : at5,
         at10 < 0 ? expired : at10, first_late, last_late);
  fflush(stdout);
  rx_sub_free(s);
  rx_conn_free(c);
  CHECK_EQ_INT(w.errors, 0);
  CHECK_EQ_INT(w.fired, DUE);
  CHECK_EQ_INT(w.early, 0);
  CHECK_EQ_INT(w.dup, 0);
  CHECKF(p99 < 200, "timer p99 lateness %lld ms", p99);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *args[] = {"--notify-keyspace-events", "Ex", NULL};
  if (rxt_server_start(&srv, args) != 0) return 1;
  RUN(test_ttl_vs_timers);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
