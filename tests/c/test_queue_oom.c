/* The queue on a Redis that is out of memory (maxmemory 2mb, noeviction):
 * scheduling fails with RX_EOOM and a message that says maxmemory; nothing
 * scheduled before is lost: the consumers drain the queue while the server
 * is still full; after CONFIG SET maxmemory the failed schedules (single
 * and batch) are sent again and delivered. Also: which maxmemory-policy
 * values rx_queue_warning() reports. */
#include <signal.h>

#include "reactis/queue.h"
#include "server.h"
#include "test.h"

static rxt_server srv;

enum { MAXMSG = 20000, PAYLOAD = 1000 };
static unsigned char accepted[MAXMSG], seen[MAXMSG];

static void payload_of(int k, char *buf) {
  memset(buf, 'a' + k % 26, PAYLOAD);
  snprintf(buf, 16, "o%d:", k);
}

static int cfg(const char *name, const char *value) {
  const char *argv[] = {"CONFIG", "SET", name, value, NULL};
  char *r = rxt_cmd(&srv, argv);
  int ok = r && !strncmp(r, "+OK", 3);
  free(r);
  return ok ? 0 : -1;
}

/* Fetches until `want` messages were seen (each at most once). */
static int drain(rx_queue *q, int want, int *dup, int *bad) {
  int got = 0;
  long long until = rxt_ms() + 20000;
  while (got < want && rxt_ms() < until) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 100, 1000, NULL, &n);
    if (rc == RX_TIMEOUT) continue;
    if (rc != RX_OK) {
      fprintf(stderr, "  fetch: %s %s\n", rx_errname(rc), rx_queue_errstr(q));
      return -1;
    }
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      int k = atoi(j->id + 1);
      char want_p[PAYLOAD];
      payload_of(k, want_p);
      if (k < 0 || k >= MAXMSG || j->payload_len != PAYLOAD ||
          memcmp(j->payload, want_p, PAYLOAD))
        (*bad)++;
      else if (seen[k]++)
        (*dup)++;
      else
        got++;
    }
    rc = rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL);
    if (rc != RX_OK) {
      fprintf(stderr, "  ack: %s %s\n", rx_errname(rc), rx_queue_errstr(q));
      return -1;
    }
  }
  return got;
}

static void test_out_of_memory(void) {
  char err[256];
  rx_queue *q = rx_queue_new(srv.url, "oom", err, sizeof err);
  CHECK(q);
  CHECK_STR(rx_queue_warning(q), ""); /* nothing read yet */
  char p[PAYLOAD];
  int n_ok = 0, n_fail = 0, first_fail = -1, n_late_ok = 0;
  int failed[64];
  /* Fill the server: half due now, half in 300 ms. */
  for (int k = 0; k < MAXMSG && n_fail < 20; k++) {
    char id[16];
    int il = snprintf(id, sizeof id, "o%d", k);
    payload_of(k, p);
    int rc = rx_queue_schedule(q, id, (size_t)il, p, PAYLOAD, k % 2 ? 300 : 0, 0, NULL, 0,
                               NULL, NULL);
    if (rc == RX_OK) {
      /* Near the limit the server may free a little memory between two
       * writes (a client's output buffer, lazy freeing), so a write after
       * a refusal can be accepted: what matters is that each accepted one
       * is delivered and each refused one is refused whole, typed. */
      if (n_fail) n_late_ok++;
      accepted[k] = 1;
      n_ok++;
      continue;
    }
    CHECKF(rc == RX_EOOM, "o%d: %s %s", k, rx_errname(rc), rx_queue_errstr(q));
    CHECKF(strstr(rx_queue_errstr(q), "maxmemory") != NULL, "unclear: %s", rx_queue_errstr(q));
    CHECK(strstr(rx_queue_errstr(q), "queue 'oom'") != NULL);
    if (first_fail < 0) {
      first_fail = k;
      printf("oom: refused after %d messages of %d bytes: %s\n", n_ok, PAYLOAD,
             rx_queue_errstr(q));
    }
    failed[n_fail++] = k;
  }
  CHECKF(n_fail == 20 && n_ok > 100, "accepted %d, refused %d", n_ok, n_fail);
  if (n_late_ok) printf("oom: %d accepted after the first refusal (memory freed)\n", n_late_ok);
  CHECK_STR(rx_queue_warning(q), ""); /* noeviction: no warning */

  /* From here on the server stays full whatever it frees: a limit well
   * below what it holds. */
  CHECK(cfg("maxmemory", "1mb") == 0);
  /* A batch is refused too, as a whole (the script's first write fails). */
  for (int k = MAXMSG - 50; k < MAXMSG; k++) {
    char id[16];
    int il = snprintf(id, sizeof id, "o%d", k);
    payload_of(k, p);
    CHECK_EQ_INT(rx_queue_batch_add(q, id, (size_t)il, p, PAYLOAD, 0, 0), 0);
  }
  CHECK_EQ_INT(rx_queue_batch_send(q), RX_EOOM);
  CHECK(strstr(rx_queue_errstr(q), "maxmemory") != NULL);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0); /* reads still work */
  CHECK_EQ_INT(st.scheduled + st.ready, n_ok); /* nothing of the batch got in */

  /* Consumers drain the full server: nothing accepted is lost. */
  rx_queue *c = rx_queue_new(srv.url, "oom", err, sizeof err);
  CHECK(c);
  int dup = 0, bad = 0;
  int got = drain(c, n_ok, &dup, &bad);
  CHECKF(got == n_ok, "drained %d of %d accepted", got, n_ok);
  CHECK_EQ_INT(dup, 0);
  CHECK_EQ_INT(bad, 0);
  for (int k = 0; k < MAXMSG; k++) CHECK(!seen[k] || accepted[k]);

  /* More memory: the refused schedules go through and are delivered. */
  CHECK(cfg("maxmemory", "64mb") == 0);
  for (int i = 0; i < n_fail; i++) {
    char id[16];
    int il = snprintf(id, sizeof id, "o%d", failed[i]);
    payload_of(failed[i], p);
    int outcome = -1;
    CHECKF(rx_queue_schedule(q, id, (size_t)il, p, PAYLOAD, 0, 0, NULL, 0, &outcome, NULL) == 0,
           "%s", rx_queue_errstr(q));
    CHECK_EQ_INT(outcome, RX_SCHED_ADDED);
  }
  CHECKF(rx_queue_batch_send(q) == 0, "%s", rx_queue_errstr(q));
  for (size_t i = 0; i < 50; i++) {
    int outcome = -1;
    CHECK_EQ_INT(rx_queue_batch_result(q, i, &outcome, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(outcome, RX_SCHED_ADDED);
  }
  got = drain(c, n_fail + 50, &dup, &bad);
  CHECKF(got == n_fail + 50, "delivered %d of %d retried", got, n_fail + 50);
  CHECK_EQ_INT(dup, 0);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(rx_queue_stats_get(c, &st), 0);
  CHECK_EQ_INT(st.scheduled + st.ready + st.in_flight + st.dead, 0);
  CHECK_EQ_INT(st.acked, n_ok + n_fail + 50);
  printf("oom: %d drained at maxmemory, %d refused then retried and delivered\n", n_ok,
         n_fail + 50);
  rx_queue_free(c);
  rx_queue_free(q);
}

/* rx_queue_warning: evicting policies are reported, others are not. */
static void test_policy_warning(void) {
  static const struct {
    const char *policy;
    int warns;
  } cases[] = {{"allkeys-lru", 1}, {"allkeys-lfu", 1}, {"allkeys-random", 1},
               {"volatile-lru", 0}, {"volatile-ttl", 0}, {"noeviction", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK(cfg("maxmemory-policy", cases[i].policy) == 0);
    rx_queue *q = rx_queue_new(srv.url, "warn", NULL, 0);
    CHECK(q);
    rx_queue_stats st;
    CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0); /* the first call reads INFO */
    const char *w = rx_queue_warning(q);
    if (cases[i].warns) {
      CHECKF(strstr(w, cases[i].policy) && strstr(w, "evict") && strstr(w, "noeviction"),
             "%s: \"%s\"", cases[i].policy, w);
    } else {
      CHECKF(!*w, "%s: \"%s\"", cases[i].policy, w);
    }
    rx_queue_free(q);
  }
  CHECK(cfg("maxmemory-policy", "noeviction") == 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *args[] = {"--maxmemory", "2mb", "--maxmemory-policy", "noeviction", NULL};
  if (rxt_server_start(&srv, args) != 0) return 1;
  RUN(test_out_of_memory);
  RUN(test_policy_warning);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
