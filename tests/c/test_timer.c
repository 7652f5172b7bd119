/* Timers, the expiry bridge and once-only claims against a real
 * redis-server: firing on time and with the last data, touches that reset,
 * stop, a deadline that passed while no watcher ran, concurrent touchers in
 * other processes that must never see their timers fire, batches, the edge
 * cases timer.h documents (a touch while a firing is in flight, a
 * redelivery superseded by a touch), the bridge on real `expired` events,
 * and four processes racing for the same claims. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reactis/reactis.h"
#include "reactis/timer.h"
#include "server.h"
#include "test.h"

static rxt_server srv;

static rx_timers *tnew(const char *name) {
  char err[256];
  rx_timers *t = rx_timers_new(srv.url, name, err, sizeof err);
  if (!t) fprintf(stderr, "rx_timers_new(%s): %s\n", name, err);
  return t;
}

static int touch(rx_timers *t, const char *id, long long ttl, const char *data) {
  int rc = rx_timers_touch(t, id, strlen(id), ttl, data, data ? strlen(data) : 0);
  if (rc) fprintf(stderr, "touch %s: %s\n", id, rx_timers_errstr(t));
  return rc;
}

static char *cmd(const char *a0, const char *a1, const char *a2, const char *a3) {
  const char *argv[5] = {a0, a1, a2, a3, NULL};
  return rxt_cmd(&srv, argv);
}

static void cmd0(const char *a0, const char *a1, const char *a2, const char *a3) {
  free(cmd(a0, a1, a2, a3));
}

/* ------------------------------------------------------------ timers */

static void test_fire_on_time_with_data(void) {
  rx_timers *t = tnew("ontime");
  CHECK(t);
  CHECK_STR(rx_timers_name(t), "ontime");
  CHECK(rx_timers_queue(t) != NULL);
  CHECK_STR(rx_queue_name(rx_timers_queue(t)), "timer:ontime");
  CHECK_EQ_INT(rx_timers_set(t, "block_cap_ms", "5000"), 0);
  /* Out of order; binary data; the last touch's data wins. */
  CHECK_EQ_INT(touch(t, "c", 300, "old"), 0);
  CHECK_EQ_INT(rx_timers_touch(t, "c", 1, 300, "th\0ree", 6), 0);
  CHECK_EQ_INT(touch(t, "a", 100, "one"), 0);
  CHECK_EQ_INT(touch(t, "b", 200, NULL), 0);
  char got[4] = {0};
  int ng = 0;
  long long worst = 0;
  while (ng < 3) {
    rx_job fired[4];
    size_t n = 0;
    int rc = rx_timers_watch(t, 4, 3000, fired, &n);
    CHECKF(rc == 0, "watch %d: %s", rc, rx_timers_errstr(t));
    long long now = rx_now_ms();
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = &fired[i];
      CHECK(j == &fired[i] && rx_timers_fired(t, i) != NULL);
      got[ng++] = j->id[0];
      CHECK(now >= j->due_ms - 2); /* never before the deadline */
      if (now - j->due_ms > worst) worst = now - j->due_ms;
      if (j->id[0] == 'a') CHECK_MEM(j->payload, j->payload_len, "one", 3);
      if (j->id[0] == 'b') CHECK_EQ_INT(j->payload_len, 0);
      if (j->id[0] == 'c') CHECK_MEM(j->payload, j->payload_len, "th\0ree", 6);
      CHECK_EQ_INT(j->attempt, 1);
      CHECK_EQ_INT(rx_timers_ack(t, j->token), 0);
    }
  }
  CHECK_STR(got, "abc");
  CHECKF(worst < 150, "fired %lld ms late", worst);
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(t, 4, 0, NULL, &n), RX_TIMEOUT);
  CHECK_EQ_INT(n, 0);
  rx_timers_free(t);
}

static void test_touch_resets_and_outcome(void) {
  rx_timers *t = tnew("reset");
  CHECK(t);
  int armed = -1;
  long long due = 0, due2 = 0;
  CHECK_EQ_INT(rx_timers_touch_ex(t, "x", 1, 300, 0, "1", 1, &armed, &due), 0);
  CHECK_EQ_INT(armed, 1);
  CHECK(due > rx_now_ms() + 200);
  long long t0 = rx_monotonic_ms();
  /* Touched every 100 ms for a second: it must not fire meanwhile. */
  for (int k = 0; k < 10; k++) {
    size_t n = 0;
    int rc = rx_timers_watch(t, 1, 100, NULL, &n);
    CHECKF(rc == RX_TIMEOUT, "fired while being touched (rc %d, round %d)", rc, k);
    char d[8];
    snprintf(d, sizeof d, "%d", k);
    CHECK_EQ_INT(rx_timers_touch_ex(t, "x", 1, 300, 0, d, strlen(d), &armed, &due2), 0);
    CHECK_EQ_INT(armed, 0);
  }
  CHECK(due2 > due);
  /* Then it fires once, ~300 ms after the last touch, with the last data. */
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(t, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 1);
  const rx_job *j = rx_timers_fired(t, 0);
  CHECK_MEM(j->payload, j->payload_len, "9", 1);
  CHECK_EQ_INT(j->due_ms, due2);
  CHECK(rx_monotonic_ms() - t0 >= 1000 + 250);
  CHECK_EQ_INT(rx_timers_ack(t, j->token), 0);
  CHECK_EQ_INT(rx_timers_watch(t, 10, 400, NULL, &n), RX_TIMEOUT);
  /* An absolute deadline. */
  CHECK_EQ_INT(rx_timers_touch_ex(t, "abs", 3, rx_now_ms() + 100, RX_SCHED_AT, "", 0, &armed,
                                  &due),
               0);
  CHECK_EQ_INT(armed, 1);
  CHECK_EQ_INT(rx_timers_watch(t, 10, 2000, NULL, &n), 0);
  CHECK_MEM(rx_timers_fired(t, 0)->id, rx_timers_fired(t, 0)->id_len, "abs", 3);
  CHECK_EQ_INT(rx_timers_ack(t, rx_timers_fired(t, 0)->token), 0);
  rx_timers_free(t);
}

/* The last entry of a timer set's wake stream, as raw reply text. */
static char *last_hint(const char *set) {
  char key[128];
  snprintf(key, sizeof key, "rx:{timer:%s}:w", set);
  const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", "1", NULL};
  return rxt_cmd(&srv, argv);
}

/* One touch, or (batch) a batch of two: the id and a later filler. */
static int touch_via(rx_timers *t, int batch, const char *id, long long ttl, const char *data,
                     int *armed, long long *due) {
  if (!batch)
    return rx_timers_touch_ex(t, id, strlen(id), ttl, 0, data, strlen(data), armed, due);
  int rc = rx_timers_batch_add(t, id, strlen(id), ttl, data, strlen(data));
  if (!rc) rc = rx_timers_batch_add(t, "zz-filler", 9, 3600000, "", 0);
  if (!rc) rc = rx_timers_batch_send(t);
  if (!rc) rc = rx_timers_batch_result(t, 0, armed, due);
  return rc;
}

/* A single touch runs a lean path of the script of its own; a batch of two
 * runs the general schedule operation. Both must give the same outcomes,
 * due times, data and wake hints: a hint when a timer becomes the
 * earliest, none when a later one is touched or the earliest pushed back. */
static void test_one_and_batch_paths_agree(void) {
  for (int batch = 0; batch < 2; batch++) {
    char set[16];
    snprintf(set, sizeof set, "paths%d", batch);
    rx_timers *t = tnew(set);
    CHECK(t);
    int armed = -1;
    long long due_a = 0, due = 0;
    char *h0 = last_hint(set);
    CHECK_EQ_INT(touch_via(t, batch, "a", 60000, "1", &armed, &due_a), 0);
    CHECK_EQ_INT(armed, 1);
    char *h1 = last_hint(set);
    CHECKF(h0 && h1 && strcmp(h0, h1), "batch %d: no hint for the first timer", batch);
    CHECK_EQ_INT(touch_via(t, batch, "b", 120000, "2", &armed, &due), 0);
    CHECK_EQ_INT(armed, 1);
    CHECK(due > due_a + 50000);
    char *h2 = last_hint(set);
    CHECKF(h2 && !strcmp(h1, h2), "batch %d: a hint for a later timer", batch);
    CHECK_EQ_INT(touch_via(t, batch, "a", 180000, "3", &armed, &due), 0);
    CHECK_EQ_INT(armed, 0);
    CHECK(due > due_a + 110000);
    char *h3 = last_hint(set);
    CHECKF(h3 && !strcmp(h2, h3), "batch %d: a hint for pushing the earliest back", batch);
    CHECK_EQ_INT(touch_via(t, batch, "c", 5000, "4", &armed, &due), 0);
    CHECK_EQ_INT(armed, 1);
    char *h4 = last_hint(set);
    CHECKF(h4 && strcmp(h3, h4), "batch %d: no hint for a new earliest", batch);
    /* Replaced data is what fires. */
    CHECK_EQ_INT(touch_via(t, batch, "b", 0, "5", &armed, &due), 0);
    CHECK_EQ_INT(armed, 0);
    size_t n = 0;
    CHECK_EQ_INT(rx_timers_watch(t, 10, 2000, NULL, &n), 0);
    CHECK_EQ_INT(n, 1);
    const rx_job *j = rx_timers_fired(t, 0);
    CHECK_MEM(j->id, j->id_len, "b", 1);
    CHECK_MEM(j->payload, j->payload_len, "5", 1);
    CHECK_EQ_INT(j->due_ms, due);
    CHECK_EQ_INT(rx_timers_ack(t, j->token), 0);
    CHECK_EQ_INT(rx_timers_stop(t, "a", 1), 0);
    CHECK_EQ_INT(rx_timers_stop(t, "c", 1), 0);
    CHECK_EQ_INT(rx_timers_stop(t, "zz-filler", 9), batch ? 0 : RX_NOMATCH);
    free(h0), free(h1), free(h2), free(h3), free(h4);
    rx_timers_free(t);
  }
}

static void test_stop_and_args(void) {
  rx_timers *t = tnew("stop");
  CHECK(t);
  CHECK_EQ_INT(touch(t, "s1", 200, "d"), 0);
  CHECK_EQ_INT(touch(t, "s2", 200, "d"), 0);
  CHECK_EQ_INT(rx_timers_stop(t, "s1", 2), 0);
  CHECK_EQ_INT(rx_timers_stop(t, "s1", 2), RX_NOMATCH);
  CHECK_EQ_INT(rx_timers_stop(t, "never", 5), RX_NOMATCH);
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(t, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_MEM(rx_timers_fired(t, 0)->id, rx_timers_fired(t, 0)->id_len, "s2", 2);
  CHECK_EQ_INT(rx_timers_ack(t, rx_timers_fired(t, 0)->token), 0);
  CHECK_EQ_INT(rx_timers_watch(t, 10, 500, NULL, &n), RX_TIMEOUT);
  /* Arguments. */
  CHECK_EQ_INT(rx_timers_touch(t, NULL, 0, 10, "", 0), RX_EINVAL);
  CHECK(strstr(rx_timers_errstr(t), "no timer id") != NULL);
  CHECK_EQ_INT(rx_timers_err(t), RX_EINVAL);
  CHECK_EQ_INT(rx_timers_touch(t, "x", 1, -5, "", 0), RX_EINVAL);
  CHECK(strstr(rx_timers_errstr(t), "negative") != NULL);
  CHECK_EQ_INT(rx_timers_touch_ex(t, "x", 1, 5, 64, "", 0, NULL, NULL), RX_EINVAL);
  CHECK_EQ_INT(rx_timers_stop(t, "", 0), RX_EINVAL);
  CHECK_EQ_INT(rx_timers_batch_add(t, "x", 1, -1, "", 0), RX_EINVAL);
  CHECK_EQ_INT(rx_timers_set(t, "max_payload", "4"), 0);
  CHECK_EQ_INT(touch(t, "big", 10, "12345"), RX_ETOOBIG);
  CHECK_EQ_INT(rx_timers_err(t), RX_ETOOBIG);
  char big[RX_QUEUE_ID_MAX + 1];
  memset(big, 'i', sizeof big);
  CHECK_EQ_INT(rx_timers_touch(t, big, sizeof big, 10, "", 0), RX_EINVAL);
  CHECK_EQ_INT(rx_timers_set(t, "no_such_option", "1"), RX_EURL);
  char err[256];
  CHECK(rx_timers_new(srv.url, "a{b}", err, sizeof err) == NULL);
  CHECK(strstr(err, "timer set name") != NULL);
  CHECK(rx_timers_new(srv.url, "", err, sizeof err) == NULL);
  CHECK(rx_timers_new("nope://x", "ok", err, sizeof err) == NULL);
  char longname[RX_TIMERS_NAME_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  CHECK(rx_timers_new(srv.url, longname, err, sizeof err) == NULL);
  longname[RX_TIMERS_NAME_MAX] = '\0';
  rx_timers *ok = rx_timers_new(srv.url, longname, err, sizeof err);
  CHECK(ok != NULL);
  rx_timers_free(ok);
  rx_timers_free(NULL);
  CHECK_EQ_INT(rx_timers_touch(NULL, "x", 1, 1, "", 0), RX_EINVAL);
  rx_timers_free(t);
}

static void test_fires_when_no_watcher_ran(void) {
  rx_timers *p = tnew("offline");
  CHECK(p);
  for (int i = 0; i < 20; i++) {
    char id[16];
    snprintf(id, sizeof id, "d%d", i);
    CHECK_EQ_INT(touch(p, id, 100, id), 0);
  }
  rx_timers_free(p);
  rxt_sleep_ms(600); /* every deadline passes while nobody watches */
  rx_timers *w = tnew("offline");
  CHECK(w);
  int seen[20] = {0}, total = 0;
  while (total < 20) {
    size_t n = 0;
    int rc = rx_timers_watch(w, 100, 2000, NULL, &n);
    CHECKF(rc == 0, "watch %d after %d: %s", rc, total, rx_timers_errstr(w));
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_timers_fired(w, i);
      int k = atoi(j->id + 1);
      CHECK(k >= 0 && k < 20);
      CHECK_MEM(j->payload, j->payload_len, j->id, j->id_len);
      CHECK(j->delivered_ms - j->due_ms >= 400); /* it was overdue, and came */
      seen[k]++;
      total++;
      CHECK_EQ_INT(rx_timers_ack(w, j->token), 0);
    }
  }
  for (int k = 0; k < 20; k++) CHECK_EQ_INT(seen[k], 1);
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(w, 100, 300, NULL, &n), RX_TIMEOUT);
  rx_timers_free(w);
}

static void test_batch(void) {
  rx_timers *t = tnew("batch");
  CHECK(t);
  enum { N = 2500 };
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "b%d", i);
    CHECK_EQ_INT(rx_timers_batch_add(t, id, strlen(id), 400, id, strlen(id)), 0);
  }
  /* The same id twice in one batch: the last touch wins. */
  CHECK_EQ_INT(rx_timers_batch_add(t, "b0", 2, 400, "last", 4), 0);
  CHECK_EQ_INT(rx_timers_batch_count(t), N + 1);
  CHECK_EQ_INT(rx_timers_batch_send(t), 0);
  int armed = -1;
  long long due = 0;
  CHECK_EQ_INT(rx_timers_batch_result(t, 0, &armed, &due), 0);
  CHECK_EQ_INT(armed, 1);
  CHECK(due > 0);
  CHECK_EQ_INT(rx_timers_batch_result(t, N, &armed, NULL), 0);
  CHECK_EQ_INT(armed, 0);
  CHECK_EQ_INT(rx_timers_batch_result(t, N + 1, &armed, NULL), RX_EINVAL);
  rx_timers_batch_clear(t);
  CHECK_EQ_INT(rx_timers_batch_count(t), 0);
  rxt_sleep_ms(200);
  /* A second batch resets every one of them before the first deadline. */
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "b%d", i);
    CHECK_EQ_INT(rx_timers_batch_add(t, id, strlen(id), 600, "2", 1), 0);
  }
  CHECK_EQ_INT(rx_timers_batch_send(t), 0);
  for (size_t i = 0; i < N; i++) {
    CHECK_EQ_INT(rx_timers_batch_result(t, i, &armed, NULL), 0);
    CHECK_EQ_INT(armed, 0);
  }
  long long sent = rx_monotonic_ms();
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(t, 1000, 5000, NULL, &n), 0);
  CHECKF(rx_monotonic_ms() - sent >= 550, "fired %lld ms after the reset",
         rx_monotonic_ms() - sent);
  int total = 0;
  for (;;) {
    for (size_t i = 0; i < n; i++) {
      CHECK_MEM(rx_timers_fired(t, i)->payload, rx_timers_fired(t, i)->payload_len, "2", 1);
    }
    CHECK_EQ_INT(rx_queue_ack_jobs(rx_timers_queue(t), rx_timers_fired(t, 0), n, NULL), 0);
    total += (int)n;
    if (total >= N) break;
    CHECK_EQ_INT(rx_timers_watch(t, 1000, 3000, NULL, &n), 0);
  }
  CHECK_EQ_INT(total, N);
  CHECK_EQ_INT(rx_timers_watch(t, 1000, 300, NULL, &n), RX_TIMEOUT);
  rx_timers_free(t);
}

/* Children touch the same 50 ids every 100 ms with a ttl of 500 ms for
 * about 3 s, each in its own process with its own handle, while the parent
 * watches: nothing may fire while they touch; after they stop, each id
 * fires exactly once. */
static void test_concurrent_touchers(void) {
  enum { IDS = 50, KIDS = 3, ROUNDS = 30 };
  int pfd[2];
  CHECK(pipe(pfd) == 0);
  pid_t kids[KIDS];
  for (int k = 0; k < KIDS; k++) {
    kids[k] = fork();
    CHECK(kids[k] >= 0);
    if (kids[k] == 0) {
      close(pfd[0]);
      rx_timers *c = tnew("toucher");
      if (!c) _exit(2);
      long long next = rx_monotonic_ms();
      for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < IDS; i++) {
          char id[16], d[32];
          snprintf(id, sizeof id, "dev%d", i);
          snprintf(d, sizeof d, "kid%d round%d", k, r);
          if (rx_timers_batch_add(c, id, strlen(id), 500, d, strlen(d)) != 0) _exit(3);
        }
        if (rx_timers_batch_send(c) != 0) _exit(4);
        next += 100;
        long long wait = next - rx_monotonic_ms();
        if (wait > 0) rxt_sleep_ms((int)wait);
      }
      /* The last touch was sent before this: report when. */
      char line[32];
      int n = snprintf(line, sizeof line, "%lld\n", rx_now_ms());
      if (write(pfd[1], line, (size_t)n) < 0) _exit(5);
      rx_timers_free(c);
      _exit(0);
    }
  }
  close(pfd[1]);
  rx_timers *w = tnew("toucher");
  CHECK(w);
  int seen[IDS] = {0}, total = 0;
  long long early = 0, last_touch = 0, min_due = -1;
  int done_kids = 0;
  long long until = rx_monotonic_ms() + ROUNDS * 100 + 6000;
  while (rx_monotonic_ms() < until && (total < IDS || done_kids < KIDS)) {
    size_t n = 0;
    int rc = rx_timers_watch(w, 100, 200, NULL, &n);
    CHECKF(rc == 0 || rc == RX_TIMEOUT, "watch %d: %s", rc, rx_timers_errstr(w));
    for (size_t i = 0; rc == 0 && i < n; i++) {
      const rx_job *j = rx_timers_fired(w, i);
      int k = atoi(j->id + 3);
      CHECK(k >= 0 && k < IDS);
      seen[k]++;
      total++;
      if (done_kids < KIDS) early++;
      if (min_due < 0 || j->due_ms < min_due) min_due = j->due_ms;
      CHECK_EQ_INT(rx_timers_ack(w, j->token), 0);
    }
    /* Collect the children's "last touch" times as they finish. */
    for (;;) {
      int status;
      pid_t p = waitpid(-1, &status, WNOHANG);
      if (p <= 0) break;
      CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "toucher exited with %d",
             WEXITSTATUS(status));
      done_kids++;
    }
  }
  char buf[256];
  ssize_t got = read(pfd[0], buf, sizeof buf - 1);
  close(pfd[0]);
  CHECK(got > 0);
  buf[got] = '\0';
  for (char *s = buf; *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : s + strlen(s)) {
    long long v = atoll(s);
    if (v > last_touch) last_touch = v;
  }
  CHECK_EQ_INT(done_kids, KIDS);
  CHECKF(early == 0, "%lld timers fired while being touched", early);
  CHECK_EQ_INT(total, IDS);
  for (int k = 0; k < IDS; k++) CHECKF(seen[k] == 1, "dev%d fired %d times", k, seen[k]);
  /* Every deadline is the last touch + 500 ms (the children report the
   * time after their last touch, so allow for that report's delay). */
  CHECKF(min_due >= last_touch + 500 - 150, "a deadline %lld ms after the last touch",
         min_due - last_touch);
  /* And not again. */
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(w, 100, 700, NULL, &n), RX_TIMEOUT);
  rx_timers_free(w);
}

/* A touch while a firing is in flight arms a new timer; stop then stops
 * that one only; the firing in flight can still be acked. */
static void test_touch_while_firing(void) {
  rx_timers *t = tnew("inflight");
  CHECK(t);
  CHECK_EQ_INT(touch(t, "x", 50, "first"), 0);
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(t, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 1);
  char token[RX_QUEUE_TOKEN_SIZE];
  strcpy(token, rx_timers_fired(t, 0)->token);
  CHECK_EQ_INT(rx_timers_stop(t, "x", 1), RX_NOMATCH); /* fired: not armed */
  int armed = 0;
  CHECK_EQ_INT(rx_timers_touch_ex(t, "x", 1, 200, 0, "second", 6, &armed, NULL), 0);
  CHECK_EQ_INT(armed, 1);
  CHECK_EQ_INT(rx_timers_ack(t, token), 0);
  CHECK_EQ_INT(rx_timers_watch(t, 10, 2000, NULL, &n), 0);
  CHECK_MEM(rx_timers_fired(t, 0)->payload, rx_timers_fired(t, 0)->payload_len, "second", 6);
  CHECK_EQ_INT(rx_timers_ack(t, rx_timers_fired(t, 0)->token), 0);
  rx_timers_free(t);
}

/* A firing whose watcher died is redelivered after the visibility timeout,
 * unless the id was touched again meanwhile: then the armed timer
 * supersedes it. */
static void test_redelivery_and_supersede(void) {
  rx_timers *a = tnew("redeliver");
  rx_timers *b = tnew("redeliver");
  CHECK(a && b);
  CHECK_EQ_INT(rx_timers_set(a, "visibility_timeout_ms", "300"), 0);
  CHECK_EQ_INT(rx_timers_set(b, "visibility_timeout_ms", "300"), 0);
  CHECK_EQ_INT(rx_timers_set(a, "consumer", "dies"), 0);
  CHECK_EQ_INT(touch(a, "kept", 20, "k"), 0);
  CHECK_EQ_INT(touch(a, "gone", 20, "g"), 0);
  rxt_sleep_ms(50);
  size_t n = 0;
  CHECK_EQ_INT(rx_timers_watch(a, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 2); /* both fired; "a" never acks: it died */
  /* "gone" is touched again (the device came back): its old firing is
   * superseded; "kept" is redelivered. */
  int armed = 0;
  CHECK_EQ_INT(rx_timers_touch_ex(b, "gone", 4, 60000, 0, "back", 4, &armed, NULL), 0);
  CHECK_EQ_INT(armed, 1);
  int kept = 0, gone = 0;
  long long until = rx_monotonic_ms() + 2500;
  while (rx_monotonic_ms() < until) {
    int rc = rx_timers_watch(b, 10, 300, NULL, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
      const rx_job *j = rx_timers_fired(b, i);
      if (j->id_len == 4 && !memcmp(j->id, "kept", 4)) {
        kept++;
        CHECK_EQ_INT(j->crashes, 1);
      } else {
        gone++;
      }
      CHECK_EQ_INT(rx_timers_ack(b, j->token), 0);
    }
  }
  CHECK_EQ_INT(kept, 1);
  CHECK_EQ_INT(gone, 0);
  CHECK_EQ_INT(rx_timers_stop(b, "gone", 4), 0); /* the new one was armed */
  rx_timers_free(a);
  rx_timers_free(b);
}

static void test_wakeup(void) {
  rx_timers *t = tnew("wake");
  CHECK(t);
  rx_timers_wakeup(t);
  size_t n = 0;
  long long t0 = rx_monotonic_ms();
  CHECK_EQ_INT(rx_timers_watch(t, 1, 5000, NULL, &n), RX_WOKEN);
  CHECK(rx_monotonic_ms() - t0 < 1000);
  rx_timers_free(t);
}

/* ------------------------------------------------------------ claims */

static rx_conn *cnew(void) {
  char err[256];
  rx_conn *c = rx_conn_new(srv.url, err, sizeof err);
  if (!c) fprintf(stderr, "rx_conn_new: %s\n", err);
  return c;
}

static void test_claim_once(void) {
  rx_conn *c = cnew();
  CHECK(c);
  int won = -1;
  CHECK_EQ_INT(rx_claim_once(c, "jobs", 4, "42", 2, 60000, &won), 0);
  CHECK_EQ_INT(won, 1);
  CHECK_EQ_INT(rx_claim_once(c, "jobs", 4, "42", 2, 60000, &won), 0);
  CHECK_EQ_INT(won, 0);
  CHECK_EQ_INT(rx_claim_once(c, "jobs", 4, "43", 2, 60000, &won), 0);
  CHECK_EQ_INT(won, 1);
  CHECK_EQ_INT(rx_claim_once(c, "other", 5, "42", 2, 60000, &won), 0);
  CHECK_EQ_INT(won, 1);
  /* The documented key, with a ttl. */
  char *r = cmd("PTTL", "rx:claim:{jobs}:42", NULL, NULL);
  CHECK(r && r[0] == ':' && atoll(r + 1) > 50000);
  free(r);
  /* Binary ids. */
  CHECK_EQ_INT(rx_claim_once(c, "bin", 3, "a\0b", 3, 60000, &won), 0);
  CHECK_EQ_INT(won, 1);
  CHECK_EQ_INT(rx_claim_once(c, "bin", 3, "a\0c", 3, 60000, &won), 0);
  CHECK_EQ_INT(won, 1);
  /* After the ttl it can be claimed again. */
  CHECK_EQ_INT(rx_claim_once(c, "short", 5, "1", 1, 100, &won), 0);
  CHECK_EQ_INT(won, 1);
  CHECK_EQ_INT(rx_claim_once(c, "short", 5, "1", 1, 100, &won), 0);
  CHECK_EQ_INT(won, 0);
  rxt_sleep_ms(250);
  CHECK_EQ_INT(rx_claim_once(c, "short", 5, "1", 1, 100, &won), 0);
  CHECK_EQ_INT(won, 1);
  /* Arguments. */
  CHECK_EQ_INT(rx_claim_once(c, "a{b", 3, "1", 1, 100, &won), RX_EINVAL);
  CHECK(strstr(rx_conn_errstr(c), "claim name") != NULL);
  CHECK_EQ_INT(rx_claim_once(c, "", 0, "1", 1, 100, &won), RX_EINVAL);
  CHECK_EQ_INT(rx_claim_once(c, "n", 1, "", 0, 100, &won), RX_EINVAL);
  CHECK_EQ_INT(rx_claim_once(c, "n", 1, "1", 1, 0, &won), RX_EINVAL);
  CHECK_EQ_INT(won, 0);
  CHECK_EQ_INT(rx_claim_once(NULL, "n", 1, "1", 1, 10, &won), RX_EINVAL);
  rx_conn_free(c);
}

/* Four processes race for the same 200 ids: each id is won exactly once. */
static void test_claim_race(void) {
  enum { KIDS = 4, IDS = 200 };
  int pfd[KIDS][2];
  pid_t kids[KIDS];
  int go[2];
  CHECK(pipe(go) == 0);
  for (int k = 0; k < KIDS; k++) {
    CHECK(pipe(pfd[k]) == 0);
    kids[k] = fork();
    CHECK(kids[k] >= 0);
    if (kids[k] == 0) {
      close(pfd[k][0]);
      close(go[1]);
      rx_conn *c = cnew();
      if (!c || rx_conn_connect(c) != 0) _exit(2);
      char x;
      if (read(go[0], &x, 1) < 0) _exit(3); /* all start together */
      unsigned char won_ids[IDS];
      for (int i = 0; i < IDS; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        int won = 0;
        if (rx_claim_once(c, "race", 4, id, strlen(id), 60000, &won) != 0) _exit(4);
        won_ids[i] = (unsigned char)won;
      }
      if (write(pfd[k][1], won_ids, IDS) != IDS) _exit(5);
      rx_conn_free(c);
      _exit(0);
    }
    close(pfd[k][1]);
  }
  close(go[0]);
  rxt_sleep_ms(100);
  close(go[1]); /* EOF: go */
  int count[IDS] = {0}, per_kid[KIDS] = {0};
  for (int k = 0; k < KIDS; k++) {
    unsigned char won_ids[IDS];
    size_t have = 0;
    ssize_t r;
    while (have < IDS && (r = read(pfd[k][0], won_ids + have, IDS - have)) > 0) have += (size_t)r;
    close(pfd[k][0]);
    int status;
    waitpid(kids[k], &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d exited %d", k,
           WEXITSTATUS(status));
    CHECK_EQ_INT(have, IDS);
    for (int i = 0; i < IDS; i++) {
      count[i] += won_ids[i];
      per_kid[k] += won_ids[i];
    }
  }
  for (int i = 0; i < IDS; i++) CHECKF(count[i] == 1, "id %d won %d times", i, count[i]);
  fprintf(stderr, "  wins per process: %d %d %d %d\n", per_kid[0], per_kid[1], per_kid[2],
          per_kid[3]);
}

/* ------------------------------------------------------------ the bridge */

static int next_expiry(rx_sub *s, rx_bridge *b, rx_conn *c, int timeout_ms, rx_expiry *out) {
  long long until = rx_monotonic_ms() + timeout_ms;
  while (rx_monotonic_ms() < until) {
    rx_event ev;
    int rc = rx_sub_next(s, 200, &ev);
    if (rc == RX_TIMEOUT) continue;
    if (rc != RX_OK) return rc;
    if (ev.kind != RX_EV_PMESSAGE) continue;
    rc = rx_bridge_take(b, c, ev.channel, ev.channel_len, ev.data, ev.data_len, out);
    if (rc == RX_NOMATCH) continue;
    return rc;
  }
  return RX_TIMEOUT;
}

static void test_bridge(void) {
  cmd0("CONFIG", "SET", "notify-keyspace-events", "Ex");
  char err[256];
  rx_bridge *b = rx_bridge_new("session:{id}", 12, NULL, 0, 0, err, sizeof err);
  CHECKF(b, "%s", err);
  size_t sl = 0;
  CHECK_STR(rx_template_source(rx_bridge_shadow(b), &sl), "shadow:session:{id}");
  CHECK_EQ_INT(rx_template_count(rx_bridge_template(b)), 1);
  rx_sub *s = rx_sub_new(srv.url, err, sizeof err);
  rx_conn *c = cnew();
  CHECK(s && c);
  CHECK_EQ_INT(rx_bridge_subscribe(b, s, 0), 0);
  cmd0("SET", "shadow:session:42", "alice's cart", NULL);
  cmd0("SET", "other:1", "x", NULL);
  cmd0("PEXPIRE", "other:1", "50", NULL);
  cmd0("SET", "session:42", "token", NULL);
  cmd0("PEXPIRE", "session:42", "80", NULL);
  rx_expiry e;
  CHECK_EQ_INT(next_expiry(s, b, c, 5000, &e), 0);
  CHECK_MEM(e.key, e.key_len, "session:42", 10);
  CHECK_EQ_INT(e.db, 0);
  CHECK_EQ_INT(e.ncaps, 1);
  CHECK_MEM(e.caps[0].ptr, e.caps[0].len, "42", 2);
  CHECK_MEM(e.shadow_key, e.shadow_key_len, "shadow:session:42", 17);
  CHECK(e.value != NULL);
  CHECK_MEM(e.value, e.value_len, "alice's cart", 12);
  char *r = cmd("EXISTS", "shadow:session:42", NULL, NULL);
  CHECK_STR(r, ":0\r\n"); /* taken: deleted */
  free(r);
  /* A key without a shadow: value NULL. */
  cmd0("SET", "session:7", "t", NULL);
  cmd0("PEXPIRE", "session:7", "30", NULL);
  CHECK_EQ_INT(next_expiry(s, b, c, 5000, &e), 0);
  CHECK_MEM(e.caps[0].ptr, e.caps[0].len, "7", 1);
  CHECK(e.value == NULL);
  /* Synthetic notifications: the keyspace form works too; other events,
   * other keys and other databases are not for this bridge. */
  cmd0("SET", "shadow:session:9", "nine", NULL);
  const char *ks = "__keyspace@0__:session:9";
  CHECK_EQ_INT(rx_bridge_take(b, c, ks, strlen(ks), "del", 3, &e), RX_NOMATCH);
  CHECK_EQ_INT(rx_bridge_take(b, c, "__keyevent@1__:expired", 22, "session:9", 9, &e),
               RX_NOMATCH);
  CHECK_EQ_INT(rx_bridge_take(b, c, "__keyevent@0__:expired", 22, "sessions", 8, &e),
               RX_NOMATCH);
  CHECK_EQ_INT(rx_bridge_take(b, c, "chat", 4, "session:9", 9, &e), RX_NOMATCH);
  CHECK_EQ_INT(rx_bridge_take(b, c, ks, strlen(ks), "expired", 7, &e), 0);
  CHECK_MEM(e.value, e.value_len, "nine", 4);
  /* Of two bridges that see the same event, one gets the value. */
  cmd0("SET", "shadow:session:10", "ten", NULL);
  rx_bridge *b2 = rx_bridge_new("session:{id}", 12, NULL, 0, 0, err, sizeof err);
  CHECK(b2);
  CHECK_EQ_INT(rx_bridge_take(b, c, "__keyevent@0__:expired", 22, "session:10", 10, &e), 0);
  CHECK(e.value != NULL);
  CHECK_EQ_INT(rx_bridge_take(b2, c, "__keyevent@0__:expired", 22, "session:10", 10, &e), 0);
  CHECK(e.value == NULL);
  rx_bridge_free(b2);
  /* KEEP reads without deleting; a custom shadow template. */
  rx_bridge *k = rx_bridge_new("user:{uid}:{part}", 17, "data:{part}:{uid}", 17, RX_BRIDGE_KEEP,
                               err, sizeof err);
  CHECKF(k, "%s", err);
  cmd0("SET", "data:avatar:u1", "png", NULL);
  CHECK_EQ_INT(rx_bridge_take(k, c, "__keyevent@0__:expired", 22, "user:u1:avatar", 14, &e), 0);
  CHECK_EQ_INT(e.ncaps, 2);
  CHECK_MEM(e.caps[0].ptr, e.caps[0].len, "u1", 2);
  CHECK_MEM(e.caps[1].ptr, e.caps[1].len, "avatar", 6);
  CHECK_MEM(e.value, e.value_len, "png", 3);
  r = cmd("GET", "data:avatar:u1", NULL, NULL);
  CHECK(r && strstr(r, "png"));
  free(r);
  rx_bridge_free(k);
  /* Malformed templates. */
  CHECK(rx_bridge_new("session:{id", 11, NULL, 0, 0, err, sizeof err) == NULL);
  CHECK(strstr(err, "key template") != NULL);
  CHECK(rx_bridge_new("session:{id}", 12, "s:{other}", 9, 0, err, sizeof err) == NULL);
  CHECK(strstr(err, "{other}") != NULL);
  CHECK(rx_bridge_new("session:{id}", 12, NULL, 0, 99, err, sizeof err) == NULL);
  rx_bridge_free(NULL);
  rx_sub_free(s);
  rx_conn_free(c);
  rx_bridge_free(b);
}

int main(void) {
  signal(SIGPIPE, SIG_DFL);
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  RUN(test_fire_on_time_with_data);
  RUN(test_touch_resets_and_outcome);
  RUN(test_one_and_batch_paths_agree);
  RUN(test_stop_and_args);
  RUN(test_fires_when_no_watcher_ran);
  RUN(test_batch);
  RUN(test_concurrent_touchers);
  RUN(test_touch_while_firing);
  RUN(test_redelivery_and_supersede);
  RUN(test_wakeup);
  RUN(test_claim_once);
  RUN(test_claim_race);
  RUN(test_bridge);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
