/* The delayed queue against real redis-server processes: due order and
 * punctuality, cancel/reschedule/run_now, duplicate ids, batches, a backlog
 * that fell due while no consumer ran, a consumer killed with SIGKILL
 * mid-batch, a Redis restart with AOF, retries with backoff, dead letters,
 * stale acks, lease extension, NOSCRIPT recovery, size limits, wrong key
 * types, wakeups and the maxmemory warning. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reactis/queue.h"
#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_server srv;

static rx_queue *qnew_url(const char *url, const char *name) {
  char err[256];
  rx_queue *q = rx_queue_new(url, name, err, sizeof err);
  if (!q) fprintf(stderr, "rx_queue_new(%s): %s\n", name, err);
  return q;
}
static rx_queue *qnew(const char *name) { return qnew_url(srv.url, name); }

static int sched(rx_queue *q, const char *id, const char *payload, long long delay) {
  int rc = rx_queue_schedule(q, id, id ? strlen(id) : 0, payload, strlen(payload), delay, 0,
                             NULL, 0, NULL, NULL);
  if (rc) fprintf(stderr, "schedule: %s\n", rx_queue_errstr(q));
  return rc;
}

static void rcmd(const char *a0, const char *a1, const char *a2, const char *a3) {
  const char *argv[5] = {a0, a1, a2, a3, NULL};
  char *r = rxt_cmd(&srv, argv);
  free(r);
}

/* ------------------------------------------------------------ basics */

static void test_order_and_fields(void) {
  rx_queue *q = qnew("order");
  CHECK(q);
  long long t0 = rx_now_ms();
  /* Scheduled out of order; delivered by due time. Binary payloads. */
  CHECK_EQ_INT(rx_queue_schedule(q, "c", 1, "three\0x", 7, 300, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(sched(q, "a", "one", 100), 0);
  CHECK_EQ_INT(sched(q, "b", "two", 200), 0);
  char got[4] = {0};
  int ng = 0;
  while (ng < 3) {
    size_t n = 0;
    rx_job jobs[10];
    int rc = rx_queue_fetch(q, 10, 3000, jobs, &n);
    CHECKF(rc == 0, "fetch %d: %s", rc, rx_queue_errstr(q));
    for (size_t i = 0; i < n; i++) {
      rx_job *j = &jobs[i];
      CHECK_EQ_INT(j->id_len, 1);
      got[ng++] = j->id[0];
      CHECK_EQ_INT(j->attempt, 1);
      CHECK_EQ_INT(j->failures, 0);
      CHECK_EQ_INT(j->crashes, 0);
      CHECK(j->enqueued_ms >= t0 - 1000 && j->enqueued_ms <= t0 + 1000);
      CHECK(j->delivered_ms >= j->due_ms); /* never before due */
      CHECK(rx_now_ms() >= j->due_ms - 5);  /* client clock agrees */
      CHECKF(j->delivered_ms - j->due_ms < 500, "late by %lld ms",
             j->delivered_ms - j->due_ms);
      CHECK_EQ_INT(j->error_len, 0);
      if (j->id[0] == 'c') CHECK_MEM(j->payload, j->payload_len, "three\0x", 7);
      if (j->id[0] == 'a') CHECK_MEM(j->payload, j->payload_len, "one", 3);
      CHECK_EQ_INT(rx_queue_ack(q, j->token), 0);
    }
  }
  CHECK_STR(got, "abc");
  /* Acked messages leave nothing behind but the group and counters. */
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.scheduled + st.ready + st.in_flight + st.dead, 0);
  CHECK_EQ_INT(st.acked, 3);
  CHECK_EQ_INT(st.consumers, 1);
  /* A second ack of the same token is refused. */
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 0, NULL, &n), RX_TIMEOUT);
  rx_queue_free(q);
}

static void test_not_before_due(void) {
  rx_queue *q = qnew("punctual");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "block_cap_ms", "5000"), 0);
  long long worst = 0, sum = 0;
  for (int k = 0; k < 8; k++) {
    long long delay = 150 + 37 * k;
    long long due = 0;
    CHECK_EQ_INT(rx_queue_schedule(q, NULL, 0, "p", 1, delay, 0, NULL, 0, NULL, &due), 0);
    size_t n = 0;
    CHECK_EQ_INT(rx_queue_fetch(q, 1, 3000, NULL, &n), 0);
    long long now = rx_now_ms();
    const rx_job *j = rx_queue_job(q, 0);
    CHECK(j && j->due_ms == due);
    CHECK(now >= due - 2); /* the server's clock is the same one here */
    if (now - due > worst) worst = now - due;
    sum += now - due;
    CHECK_EQ_INT(rx_queue_ack(q, j->token), 0);
  }
  /* Redis' own blocking timeouts tick at 100 ms (lateness would average
   * 50 ms); ours must not. Loose bounds: the machine may be busy. */
  CHECKF(sum / 8 < 20 && worst < 80, "mean lateness %lld ms, worst %lld ms", sum / 8, worst);
  rx_queue_free(q);
}

static void test_cancel_reschedule_run_now(void) {
  rx_queue *q = qnew("manage");
  CHECK(q);
  CHECK_EQ_INT(sched(q, "A", "a", 60000), 0);
  CHECK_EQ_INT(sched(q, "B", "b", 60000), 0);
  CHECK_EQ_INT(sched(q, "C", "c", 60000), 0);
  CHECK_EQ_INT(rx_queue_cancel(q, "A", 1), 0);
  CHECK_EQ_INT(rx_queue_cancel(q, "A", 1), RX_NOMATCH);
  CHECK_EQ_INT(rx_queue_cancel(q, "nope", 4), RX_NOMATCH);
  CHECK_EQ_INT(rx_queue_run_now(q, "B", 1), 0);
  CHECK_EQ_INT(rx_queue_reschedule(q, "C", 1, 200, 0), 0);
  CHECK_EQ_INT(rx_queue_reschedule(q, "nope", 4, 200, 0), RX_NOMATCH);
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 1000, NULL, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_MEM(rx_queue_job(q, 0)->id, 1, "B", 1);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  /* Delivered: no longer waiting. */
  CHECK_EQ_INT(rx_queue_cancel(q, "B", 1), RX_NOMATCH);
  CHECK_EQ_INT(rx_queue_run_now(q, "B", 1), RX_NOMATCH);
  long long t = rx_now_ms();
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
  CHECK_MEM(rx_queue_job(q, 0)->id, 1, "C", 1);
  CHECK(rx_now_ms() - t >= 100);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  /* Absolute due times. */
  long long at = rx_now_ms() + 100, due = 0;
  CHECK_EQ_INT(rx_queue_schedule(q, "D", 1, "d", 1, at, RX_SCHED_AT, NULL, 0, NULL, &due), 0);
  CHECK_EQ_INT(due, at);
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
  CHECK(rx_now_ms() >= at - 2);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 0, NULL, &n), RX_TIMEOUT);
  rx_queue_free(q);
}

static void test_duplicate_ids(void) {
  rx_queue *q = qnew("dups");
  CHECK(q);
  int oc = -1;
  long long due1 = 0, due2 = 0;
  char id[64];
  CHECK_EQ_INT(rx_queue_schedule(q, "AAA", 3, "first", 5, 500, 0, id, sizeof id, &oc, &due1), 0);
  CHECK_EQ_INT(oc, RX_SCHED_ADDED);
  CHECK_STR(id, "AAA");
  /* Default: keep the waiting one and report it. */
  CHECK_EQ_INT(rx_queue_schedule(q, "AAA", 3, "second", 6, 5000, 0, NULL, 0, &oc, &due2), 0);
  CHECK_EQ_INT(oc, RX_SCHED_EXISTS);
  CHECK_EQ_INT(due2, due1);
  /* Replace: new payload and due time. */
  CHECK_EQ_INT(rx_queue_schedule(q, "AAA", 3, "third", 5, 0, RX_SCHED_REPLACE, NULL, 0, &oc,
                                 &due2),
               0);
  CHECK_EQ_INT(oc, RX_SCHED_REPLACED);
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 1000, NULL, &n), 0);
  CHECK_EQ_INT(n, 1);
  const rx_job *j = rx_queue_job(q, 0);
  CHECK_MEM(j->payload, j->payload_len, "third", 5);
  char tok[RX_QUEUE_TOKEN_SIZE];
  strcpy(tok, j->token);
  /* In flight, the id is free again: a new message. */
  CHECK_EQ_INT(rx_queue_schedule(q, "AAA", 3, "fourth", 6, 0, 0, NULL, 0, &oc, NULL), 0);
  CHECK_EQ_INT(oc, RX_SCHED_ADDED);
  CHECK_EQ_INT(rx_queue_ack(q, tok), 0);
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 1000, NULL, &n), 0);
  CHECK_MEM(rx_queue_job(q, 0)->payload, rx_queue_job(q, 0)->payload_len, "fourth", 6);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  /* Generated ids are unique and 12 characters. */
  char g1[RX_QUEUE_GEN_ID_SIZE], g2[RX_QUEUE_GEN_ID_SIZE];
  CHECK_EQ_INT(rx_queue_schedule(q, NULL, 0, "x", 1, 60000, 0, g1, sizeof g1, &oc, NULL), 0);
  CHECK_EQ_INT(rx_queue_schedule(q, NULL, 0, "x", 1, 60000, 0, g2, sizeof g2, &oc, NULL), 0);
  CHECK_EQ_INT(strlen(g1), 12);
  CHECK(strcmp(g1, g2) != 0);
  CHECK_EQ_INT(rx_queue_cancel(q, g1, 12), 0);
  CHECK_EQ_INT(rx_queue_cancel(q, g2, 12), 0);
  rx_queue_free(q);
}

static void test_batch(void) {
  rx_queue *q = qnew("batch");
  CHECK(q);
  enum { N = 2500 };
  for (int i = 0; i < N; i++) {
    char id[32], p[32];
    snprintf(id, sizeof id, "m%d", i);
    snprintf(p, sizeof p, "payload %d", i);
    /* Descending delays: delivery order must be by due, not by insertion. */
    CHECK_EQ_INT(rx_queue_batch_add(q, i % 10 == 9 ? NULL : id, strlen(id), p, strlen(p),
                                    (N - i) / 50, 0),
                 0);
  }
  /* A duplicate inside the batch: kept once. */
  CHECK_EQ_INT(rx_queue_batch_add(q, "m0", 2, "dup", 3, 0, 0), 0);
  CHECK_EQ_INT(rx_queue_batch_count(q), N + 1);
  CHECK_EQ_INT(rx_queue_batch_send(q), 0);
  int oc;
  const char *id;
  size_t idl;
  CHECK_EQ_INT(rx_queue_batch_result(q, 0, &oc, &id, &idl, NULL), 0);
  CHECK_EQ_INT(oc, RX_SCHED_ADDED);
  CHECK_MEM(id, idl, "m0", 2);
  CHECK_EQ_INT(rx_queue_batch_result(q, N, &oc, NULL, NULL, NULL), 0);
  CHECK_EQ_INT(oc, RX_SCHED_EXISTS);
  CHECK_EQ_INT(rx_queue_batch_result(q, 9, &oc, &id, &idl, NULL), 0);
  CHECK_EQ_INT(idl, 12);
  CHECK_EQ_INT(rx_queue_batch_result(q, N + 1, &oc, NULL, NULL, NULL), RX_EINVAL);
  int total = 0;
  long long last_due = 0;
  while (total < N) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 100, 3000, NULL, &n);
    CHECKF(rc == 0, "fetch %d after %d: %s", rc, total, rx_queue_errstr(q));
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      CHECK(j->due_ms >= last_due);
      last_due = j->due_ms;
    }
    CHECK_EQ_INT(rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL), 0);
    total += (int)n;
  }
  CHECK_EQ_INT(total, N);
  rx_queue_batch_clear(q);
  CHECK_EQ_INT(rx_queue_batch_count(q), 0);
  rx_queue_free(q);
}

/* ------------------------------------------------------------ failures */

static void test_all_offline(void) {
  rx_queue *p = qnew("offline");
  CHECK(p);
  enum { N = 1000 };
  for (int i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "o%d", i);
    CHECK_EQ_INT(rx_queue_batch_add(p, id, strlen(id), id, strlen(id), 1000 + i, 0), 0);
  }
  CHECK_EQ_INT(rx_queue_batch_send(p), 0);
  rx_queue_free(p);
  rxt_sleep_ms(5000); /* every message falls due while no consumer runs */
  rx_queue *q = qnew("offline");
  CHECK(q);
  static unsigned char seen[N];
  memset(seen, 0, sizeof seen);
  int total = 0;
  while (total < N) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 200, 2000, NULL, &n);
    CHECKF(rc == 0, "fetch %d after %d: %s", rc, total, rx_queue_errstr(q));
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      int k = atoi(j->id + 1);
      CHECK(k >= 0 && k < N && !seen[k]);
      seen[k] = 1;
      total++;
    }
    CHECK_EQ_INT(rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL), 0);
  }
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.scheduled + st.ready + st.in_flight, 0);
  rx_queue_free(q);
}

static void test_kill9_mid_batch(void) {
  rx_queue *p = qnew("kill");
  CHECK(p);
  enum { N = 300 };
  for (int i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "k%d", i);
    CHECK_EQ_INT(rx_queue_batch_add(p, id, strlen(id), "x", 1, 0, 0), 0);
  }
  CHECK_EQ_INT(rx_queue_batch_send(p), 0);
  rx_queue_free(p);
  int pfd[2];
  CHECK(pipe(pfd) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    /* The victim: fetches 50, acks 20 of them, then hangs holding 30. */
    close(pfd[0]);
    rx_queue *c = qnew("kill");
    if (!c) _exit(2);
    rx_queue_set(c, "consumer", "victim");
    size_t n = 0;
    if (rx_queue_fetch(c, 50, 2000, NULL, &n) != 0 || n != 50) _exit(3);
    rx_queue_ack_jobs(c, rx_queue_job(c, 0), 20, NULL);
    char t[40];
    int tl = snprintf(t, sizeof t, "T%lld\n", rx_queue_job(c, 0)->delivered_ms);
    if (write(pfd[1], t, (size_t)tl) < 0) _exit(4);
    for (size_t i = 20; i < n; i++) {
      const rx_job *j = rx_queue_job(c, i);
      if (write(pfd[1], j->id, j->id_len) < 0 || write(pfd[1], "\n", 1) < 0) _exit(4);
    }
    close(pfd[1]);
    for (;;) pause();
  }
  close(pfd[1]);
  char held[4096];
  size_t hl = 0;
  ssize_t r;
  while (hl < sizeof held - 1 && (r = read(pfd[0], held + hl, sizeof held - 1 - hl)) > 0)
    hl += (size_t)r;
  held[hl] = '\0';
  close(pfd[0]);
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  int nheld = -1; /* the first line is the delivery time */
  for (size_t i = 0; i < hl; i++) nheld += held[i] == '\n';
  CHECK_EQ_INT(nheld, 30);
  CHECK(held[0] == 'T');
  long long victim_delivered = atoll(held + 1);

  rx_queue *q = qnew("kill");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "visibility_timeout_ms", "1000"), 0);
  static int count[N];
  memset(count, 0, sizeof count);
  int total = 0, redelivered = 0;
  long long first_redelivery = 0;
  while (total < N - 20) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 50, 5000, NULL, &n);
    CHECKF(rc == 0, "fetch %d after %d: %s", rc, total, rx_queue_errstr(q));
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      int k = atoi(j->id + 1);
      CHECK(k >= 0 && k < N);
      count[k]++;
      total++;
      if (j->crashes) {
        redelivered++;
        CHECK_EQ_INT(j->attempt, 2);
        CHECK(strstr(j->error, "lease expired") != NULL);
        if (!first_redelivery) first_redelivery = j->delivered_ms;
      }
    }
    CHECK_EQ_INT(rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL), 0);
  }
  /* The 30 held ones came back, after the visibility timeout; no other
   * message came twice, and the 20 the victim acked never came. */
  CHECK_EQ_INT(redelivered, 30);
  CHECKF(first_redelivery - victim_delivered >= 1000, "redelivered %lld ms after delivery",
         first_redelivery - victim_delivered);
  for (int k = 0; k < N; k++) CHECK(count[k] <= 1);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.crashes, 30);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.acked, N);
  rx_queue_free(q);
}

static void test_restart_aof(void) {
  rxt_server s;
  const char *args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
  CHECK(rxt_server_start(&s, args) == 0);
  rx_queue *p = qnew_url(s.url, "aof");
  rx_queue *c = qnew_url(s.url, "aof");
  CHECK(p && c);
  rx_queue_set(c, "visibility_timeout_ms", "1500");
  enum { N = 400 };
  static int seen[N];
  memset(seen, 0, sizeof seen);
  int scheduled = 0, got = 0, restarted = 0;
  long long deadline = rx_now_ms() + 30000;
  while ((scheduled < N || got < N) && rx_now_ms() < deadline) {
    if (scheduled < N) {
      char id[32];
      snprintf(id, sizeof id, "r%d", scheduled);
      /* Only a schedule the server confirmed counts. */
      if (rx_queue_schedule(p, id, strlen(id), id, strlen(id), scheduled % 3 ? 0 : 300, 0, NULL,
                            0, NULL, NULL) == 0)
        scheduled++;
    }
    if (scheduled == N / 2 && !restarted) {
      restarted = 1;
      rxt_server_kill(&s); /* no clean shutdown: AOF with fsync always */
      CHECK(rxt_server_restart(&s) == 0);
    }
    size_t n = 0;
    int rc = rx_queue_fetch(c, 20, 50, NULL, &n);
    if (rc == 0) {
      for (size_t i = 0; i < n; i++) {
        const rx_job *j = rx_queue_job(c, i);
        int k = atoi(j->id + 1);
        if (k >= 0 && k < N && !seen[k]) {
          seen[k] = 1;
          got++;
        }
      }
      rx_queue_ack_jobs(c, rx_queue_job(c, 0), n, NULL);
    } else if (rc < 0) {
      rxt_sleep_ms(20); /* the server is restarting or loading */
    }
  }
  CHECK(restarted);
  CHECK_EQ_INT(scheduled, N);
  CHECKF(got == N, "got %d of %d", got, N);
  rx_queue_free(p);
  rx_queue_free(c);
  rxt_server_cleanup(&s);
}

static void test_retry_backoff_dead(void) {
  rx_queue *q = qnew("retry");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "max_attempts", "3"), 0);
  CHECK_EQ_INT(rx_queue_set(q, "backoff_base_ms", "100"), 0);
  CHECK_EQ_INT(sched(q, "R", "rp", 0), 0);
  size_t n = 0;
  long long last = 0;
  for (int attempt = 1; attempt <= 3; attempt++) {
    CHECK_EQ_INT(rx_queue_fetch(q, 1, 3000, NULL, &n), 0);
    const rx_job *j = rx_queue_job(q, 0);
    long long now = rx_now_ms();
    CHECK_EQ_INT(j->attempt, attempt);
    CHECK_EQ_INT(j->failures, attempt - 1);
    CHECK_MEM(j->payload, j->payload_len, "rp", 2);
    if (attempt > 1) {
      CHECK(strncmp(j->error, "boom", 4) == 0);
      /* backoff: 100 ms * 2^(attempt-2), times 0.5..1 */
      long long min = 50LL << (attempt - 2);
      CHECKF(now - last >= min - 5, "attempt %d after %lld ms", attempt, now - last);
    }
    char err[32];
    snprintf(err, sizeof err, "boom %d", attempt);
    int dead = -1;
    last = rx_now_ms();
    CHECK_EQ_INT(rx_queue_retry(q, j->token, -1, err, strlen(err), &dead), 0);
    CHECK_EQ_INT(dead, attempt == 3);
  }
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 300, NULL, &n), RX_TIMEOUT);
  /* The dead letter keeps everything. */
  CHECK_EQ_INT(rx_queue_dead_list(q, NULL, 10, &n), 0);
  CHECK_EQ_INT(n, 1);
  const rx_job *d = rx_queue_dead(q, 0);
  CHECK_MEM(d->id, d->id_len, "R", 1);
  CHECK_MEM(d->payload, d->payload_len, "rp", 2);
  CHECK_MEM(d->error, d->error_len, "boom 3", 6);
  CHECK_EQ_INT(d->attempt, 3);
  CHECK_EQ_INT(d->failures, 3);
  /* Explicit fail goes straight to the dead letters. */
  CHECK_EQ_INT(sched(q, "F", "fp", 0), 0);
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 3000, NULL, &n), 0);
  CHECK_EQ_INT(rx_queue_fail(q, rx_queue_job(q, 0)->token, "bad input", 9), 0);
  CHECK_EQ_INT(rx_queue_dead_list(q, NULL, 10, &n), 0);
  CHECK_EQ_INT(n, 2);
  char second[RX_QUEUE_TOKEN_SIZE];
  strcpy(second, rx_queue_dead(q, 1)->token);
  CHECK_EQ_INT(rx_queue_dead_list(q, rx_queue_dead(q, 0)->token, 10, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_MEM(rx_queue_dead(q, 0)->id, 1, "F", 1);
  /* Requeue one: fresh attempts. */
  size_t cnt = 0;
  CHECK_EQ_INT(rx_queue_dead_requeue(q, second, 0, &cnt), 0);
  CHECK_EQ_INT(cnt, 1);
  CHECK_EQ_INT(rx_queue_dead_requeue(q, second, 0, &cnt), RX_NOMATCH);
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 3000, NULL, &n), 0);
  CHECK_MEM(rx_queue_job(q, 0)->id, 1, "F", 1);
  CHECK_EQ_INT(rx_queue_job(q, 0)->attempt, 1);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  /* Requeue all, then purge. */
  CHECK_EQ_INT(rx_queue_dead_requeue(q, NULL, 60000, &cnt), 0);
  CHECK_EQ_INT(cnt, 1);
  CHECK_EQ_INT(rx_queue_cancel(q, "R", 1), 0);
  CHECK_EQ_INT(sched(q, "P", "pp", 0), 0);
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 3000, NULL, &n), 0);
  CHECK_EQ_INT(rx_queue_fail(q, rx_queue_job(q, 0)->token, NULL, 0), 0);
  CHECK_EQ_INT(rx_queue_dead_purge(q, NULL, &cnt), 0);
  CHECK_EQ_INT(cnt, 1);
  CHECK_EQ_INT(rx_queue_dead_list(q, NULL, 10, &n), 0);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(rx_queue_dead_purge(q, "1-1", &cnt), RX_NOMATCH);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.failures, 5);
  CHECK_EQ_INT(st.dead_total, 3);
  CHECK_EQ_INT(st.crashes, 0);
  rx_queue_free(q);
}

static void test_dead_cap(void) {
  rx_queue *q = qnew("deadcap");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "dead_max", "5"), 0);
  for (int i = 0; i < 12; i++) CHECK_EQ_INT(sched(q, NULL, "x", 0), 0);
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(q, 100, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 12);
  for (size_t i = 0; i < n; i++) CHECK_EQ_INT(rx_queue_fail(q, rx_queue_job(q, i)->token, "e", 1), 0);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.dead, 5);
  CHECK_EQ_INT(st.dead_total, 12);
  rx_queue_free(q);
}

static void test_stale_ack_and_extend(void) {
  rx_queue *a = qnew("stale"), *b = qnew("stale");
  CHECK(a && b);
  CHECK_EQ_INT(rx_queue_set(a, "visibility_timeout_ms", "300"), 0);
  CHECK_EQ_INT(rx_queue_set(b, "visibility_timeout_ms", "300"), 0);
  CHECK_EQ_INT(sched(a, "S", "s", 0), 0);
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(a, 1, 2000, NULL, &n), 0);
  char tok_a[RX_QUEUE_TOKEN_SIZE];
  strcpy(tok_a, rx_queue_job(a, 0)->token);
  rxt_sleep_ms(450);
  CHECK_EQ_INT(rx_queue_fetch(b, 1, 2000, NULL, &n), 0);
  CHECK_MEM(rx_queue_job(b, 0)->id, 1, "S", 1);
  CHECK_EQ_INT(rx_queue_job(b, 0)->crashes, 1);
  /* a's delivery was reclaimed: its ack, retry, extend are refused. */
  CHECK_EQ_INT(rx_queue_ack(a, tok_a), RX_ESTALE);
  CHECK(strstr(rx_queue_errstr(a), "no longer pending") != NULL);
  CHECK_EQ_INT(rx_queue_retry(a, tok_a, 0, "x", 1, NULL), RX_ESTALE);
  CHECK_EQ_INT(rx_queue_extend(a, tok_a, 1000), RX_ESTALE);
  CHECK_EQ_INT(rx_queue_ack(b, rx_queue_job(b, 0)->token), 0);
  CHECK_EQ_INT(rx_queue_ack(b, rx_queue_job(b, 0)->token), RX_ESTALE);
  CHECK_EQ_INT(rx_queue_ack(b, "garbage"), RX_EINVAL);

  /* Extending a lease, also past the visibility timeout, keeps it. */
  CHECK_EQ_INT(sched(a, "E", "e", 0), 0);
  CHECK_EQ_INT(rx_queue_fetch(a, 1, 2000, NULL, &n), 0);
  strcpy(tok_a, rx_queue_job(a, 0)->token);
  CHECK_EQ_INT(rx_queue_extend(a, tok_a, 1200), 0);
  rxt_sleep_ms(500);
  CHECK_EQ_INT(rx_queue_fetch(b, 1, 300, NULL, &n), RX_TIMEOUT);
  CHECK_EQ_INT(rx_queue_extend(a, tok_a, 0), 0); /* one more visibility timeout */
  rxt_sleep_ms(200);
  CHECK_EQ_INT(rx_queue_fetch(b, 1, 0, NULL, &n), RX_TIMEOUT);
  CHECK_EQ_INT(rx_queue_ack(a, tok_a), 0);
  rx_queue_free(a);
  rx_queue_free(b);
}

/* rx_queue_ack_fetch: the previous fetch's jobs acked by the next fetch's
 * script call; stale ones counted out, not an error; the acks happen even
 * when the fetch then waits and times out; bad input refused. */
static void test_ack_fetch(void) {
  rx_queue *a = qnew("ackfetch"), *b = qnew("ackfetch");
  CHECK(a && b);
  for (int i = 0; i < 25; i++) {
    char p[8];
    snprintf(p, sizeof p, "m%d", i);
    CHECK_EQ_INT(sched(a, NULL, p, 0), 0);
  }
  size_t n = 0, acked = 99, total = 0, got = 0;
  CHECK_EQ_INT(rx_queue_ack_fetch(a, NULL, 0, &acked, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(acked, 0);
  CHECK_EQ_INT(n, 10);
  got = n;
  while (got < 25) {
    size_t prev = n;
    int rc = rx_queue_ack_fetch(a, rx_queue_job(a, 0), prev, &acked, 10, 2000, NULL, &n);
    CHECKF(rc == 0, "ack_fetch %d: %s", rc, rx_queue_errstr(a));
    CHECK_EQ_INT(acked, prev);
    total += acked;
    got += n;
  }
  CHECK_EQ_INT(got, 25);
  /* The last five: acked by a fetch that finds nothing and times out. */
  size_t last = n;
  CHECK_EQ_INT(rx_queue_ack_fetch(a, rx_queue_job(a, 0), last, &acked, 10, 150, NULL, &n),
               RX_TIMEOUT);
  CHECK_EQ_INT(acked, last);
  total += acked;
  CHECK_EQ_INT(total, 25);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(a, &st), 0);
  CHECK_EQ_INT(st.ready + st.in_flight + st.scheduled, 0);
  CHECK_EQ_INT(st.acked, 25);

  /* A job acked elsewhere already is stale: counted out, the rest acked. */
  CHECK_EQ_INT(sched(a, NULL, "x", 0), 0);
  CHECK_EQ_INT(sched(a, NULL, "y", 0), 0);
  CHECK_EQ_INT(rx_queue_fetch(a, 2, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(rx_queue_ack(b, rx_queue_job(a, 1)->token), 0);
  CHECK_EQ_INT(rx_queue_ack_fetch(a, rx_queue_job(a, 0), 2, &acked, 10, 0, NULL, &n),
               RX_TIMEOUT);
  CHECK_EQ_INT(acked, 1);
  CHECK_EQ_INT(rx_queue_stats_get(a, &st), 0);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.acked, 27);

  /* Bad input: no tokens, too many, a job without a token. */
  CHECK_EQ_INT(rx_queue_ack_fetch(a, NULL, 3, &acked, 10, 0, NULL, &n), RX_EINVAL);
  rx_job empty;
  memset(&empty, 0, sizeof empty);
  CHECK_EQ_INT(rx_queue_ack_fetch(a, &empty, 1, &acked, 10, 0, NULL, &n), RX_EINVAL);
  CHECK(strstr(rx_queue_errstr(a), "no delivery token") != NULL);
  CHECK_EQ_INT(rx_queue_ack_fetch(a, &empty, 1001, &acked, 10, 0, NULL, &n), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_ack_fetch(a, NULL, 0, &acked, 0, 0, NULL, &n), RX_EINVAL);
  rx_queue_free(a);
  rx_queue_free(b);
}

/* rx_queue_ack_many_fetch: the same with the acks as text, as the bindings
 * hold them; a bad token is refused before anything is acked. */
static void test_ack_many_fetch(void) {
  rx_queue *a = qnew("ackmanyfetch");
  CHECK(a);
  for (int i = 0; i < 12; i++) CHECK_EQ_INT(sched(a, NULL, "t", 0), 0);
  size_t n = 0, acked = 99;
  CHECK_EQ_INT(rx_queue_ack_many_fetch(a, NULL, 0, &acked, 5, 2000, NULL, &n), 0);
  CHECK_EQ_INT(acked, 0);
  CHECK_EQ_INT(n, 5);
  size_t got = n, total = 0;
  char text[1024];
  while (got < 12) {
    size_t len = 0, prev = n;
    for (size_t i = 0; i < prev; i++) /* mixed separators, as ack_many takes them */
      len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? (i % 2 ? ", " : "\n") : " ",
                              rx_queue_job(a, i)->token);
    int rc = rx_queue_ack_many_fetch(a, text, len, &acked, 5, 2000, NULL, &n);
    CHECKF(rc == 0, "ack_many_fetch %d: %s", rc, rx_queue_errstr(a));
    CHECK_EQ_INT(acked, prev);
    total += acked;
    got += n;
  }
  CHECK_EQ_INT(got, 12);
  /* Bad input, refused before anything is acked: the two left stay pending. */
  size_t len = (size_t)snprintf(text, sizeof text, "%s %s not-a-token", rx_queue_job(a, 0)->token,
                                rx_queue_job(a, 1)->token);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(rx_queue_ack_many_fetch(a, text, len, &acked, 5, 0, NULL, &n), RX_EINVAL);
  CHECK_EQ_INT(acked, 0);
  char longtok[80];
  memset(longtok, '1', sizeof longtok);
  longtok[40] = '-';
  CHECK_EQ_INT(rx_queue_ack_many_fetch(a, longtok, sizeof longtok, &acked, 5, 0, NULL, &n),
               RX_EINVAL);
  CHECK(strstr(rx_queue_errstr(a), "is not a delivery token") != NULL);
  CHECK_EQ_INT(rx_queue_ack_many_fetch(a, "1-1\0002", 5, &acked, 5, 0, NULL, &n), RX_EINVAL);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(a, &st), 0);
  CHECK_EQ_INT(st.in_flight, 2);
  CHECK_EQ_INT(st.acked, total);
  rx_queue_free(a);
}

static void test_noscript_recovery(void) {
  rx_queue *q = qnew("noscript");
  CHECK(q);
  CHECK_EQ_INT(sched(q, "N1", "n", 0), 0);
  rcmd("SCRIPT", "FLUSH", NULL, NULL);
  CHECK_EQ_INT(sched(q, "N2", "n", 0), 0);
  rcmd("SCRIPT", "FLUSH", NULL, NULL);
  size_t n = 0;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 2);
  rcmd("SCRIPT", "FLUSH", NULL, NULL);
  CHECK_EQ_INT(rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL), 0);
  rcmd("SCRIPT", "FLUSH", NULL, NULL);
  for (int i = 0; i < 1500; i++) CHECK_EQ_INT(rx_queue_batch_add(q, NULL, 0, "b", 1, 0, 0), 0);
  CHECK_EQ_INT(rx_queue_batch_send(q), 0);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.ready, 1500);
  rx_queue_free(q);
}

static void test_limits_and_types(void) {
  rx_queue *q = qnew("limits");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_set(q, "max_payload", "100"), 0);
  char big[101];
  memset(big, 'b', sizeof big);
  CHECK_EQ_INT(rx_queue_schedule(q, "x", 1, big, 100, 0, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_schedule(q, "y", 1, big, 101, 0, 0, NULL, 0, NULL, NULL), RX_ETOOBIG);
  CHECK(strstr(rx_queue_errstr(q), "max_payload") != NULL);
  CHECK_EQ_INT(rx_queue_batch_add(q, "y", 1, big, 101, 0, 0), RX_ETOOBIG);
  CHECK_EQ_INT(rx_queue_set(q, "max_attempts", "0"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_set(q, "visibility_timeout_ms", "abc"), RX_EINVAL);
  CHECK_EQ_INT(rx_queue_set(q, "no_such_option", "1"), RX_EURL);
  CHECK_EQ_INT(rx_queue_set(q, "timeout", "3"), 0);
  char err[200];
  CHECK(rx_queue_new(srv.url, "bad{name}", err, sizeof err) == NULL);
  CHECK(strstr(err, "queue name") != NULL);
  CHECK(rx_queue_new("nosuch://x", "q", err, sizeof err) == NULL);
  rx_queue_free(q);

  /* A queue key of the wrong type: a clear error naming the key. */
  rcmd("SET", "rx:{wt}:z", "not a zset", NULL);
  q = qnew("wt");
  CHECK(q);
  CHECK_EQ_INT(sched(q, "x", "y", 0), RX_EWRONGTYPE);
  CHECK(strstr(rx_queue_errstr(q), "rx:{wt}:z") != NULL);
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 0, NULL, &n), RX_EWRONGTYPE);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), RX_EWRONGTYPE);
  rx_queue_free(q);
  rcmd("DEL", "rx:{wt}:z", NULL, NULL);
  rcmd("SET", "rx:{wt}:s", "not a stream", NULL);
  q = qnew("wt");
  CHECK(q);
  CHECK_EQ_INT(sched(q, "x", "y", 0), 0);
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 0, NULL, &n), RX_EWRONGTYPE);
  CHECK(strstr(rx_queue_errstr(q), "rx:{wt}:s") != NULL);
  rx_queue_free(q);
}

/* ------------------------------------------------------------ waiting */

typedef struct {
  rx_queue *q;
  int timeout;
  int rc;
  long long took;
  size_t n;
} fetch_arg;

static void *fetch_thread(void *p) {
  fetch_arg *a = p;
  long long t = rx_monotonic_ms();
  a->rc = rx_queue_fetch(a->q, 10, a->timeout, NULL, &a->n);
  a->took = rx_monotonic_ms() - t;
  return NULL;
}

static void test_wakeup_and_producer_wake(void) {
  rx_queue *q = qnew("wake");
  rx_queue *p = qnew("wake");
  CHECK(q && p);
  CHECK_EQ_INT(rx_queue_set(q, "block_cap_ms", "20000"), 0);
  /* rx_queue_wakeup ends a blocked fetch at once. */
  fetch_arg a = {q, -1, 99, 0, 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, fetch_thread, &a) == 0);
  rxt_sleep_ms(200);
  rx_queue_wakeup(q);
  pthread_join(th, NULL);
  CHECK_EQ_INT(a.rc, RX_WOKEN);
  CHECK(a.took < 1000);
  /* A producer scheduling a new earliest message wakes blocked consumers,
   * though their cap and the last due time are far away. */
  CHECK_EQ_INT(sched(p, "far", "f", 60000), 0);
  a.rc = 99;
  a.timeout = 10000;
  CHECK(pthread_create(&th, NULL, fetch_thread, &a) == 0);
  rxt_sleep_ms(300);
  long long t = rx_monotonic_ms();
  CHECK_EQ_INT(sched(p, "soon", "s", 100), 0);
  pthread_join(th, NULL);
  CHECK_EQ_INT(a.rc, 0);
  long long after = rx_monotonic_ms() - t;
  CHECKF(after >= 95 && after < 400, "delivered %lld ms after scheduling", after);
  CHECK_MEM(rx_queue_job(q, 0)->id, 4, "soon", 4);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  /* Same for "now". */
  a.rc = 99;
  CHECK(pthread_create(&th, NULL, fetch_thread, &a) == 0);
  rxt_sleep_ms(300);
  t = rx_monotonic_ms();
  CHECK_EQ_INT(sched(p, "now", "n", 0), 0);
  pthread_join(th, NULL);
  CHECK_EQ_INT(a.rc, 0);
  CHECKF(rx_monotonic_ms() - t < 100, "took %lld ms", rx_monotonic_ms() - t);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  /* A timeout is a normal outcome, on time. */
  t = rx_monotonic_ms();
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 150, NULL, &n), RX_TIMEOUT);
  CHECK(rx_monotonic_ms() - t >= 145 && rx_monotonic_ms() - t < 400);
  CHECK_EQ_INT(rx_queue_cancel(p, "far", 3), 0);
  rx_queue_free(q);
  rx_queue_free(p);
}

static void test_stats_and_warning(void) {
  rx_queue *q = qnew("stats");
  CHECK(q);
  CHECK_EQ_INT(sched(q, "s1", "a", 60000), 0);
  CHECK_EQ_INT(sched(q, "s2", "a", -500), 0); /* overdue by 500 ms */
  CHECK_EQ_INT(sched(q, "s3", "a", -100), 0);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.scheduled, 1);
  CHECK_EQ_INT(st.ready, 2);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK(st.lag_ms >= 500 && st.lag_ms < 1500);
  CHECK(st.next_due_ms > 0 && st.next_due_ms <= st.now_ms);
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(q, 1, 0, NULL, &n), 0);
  CHECK_MEM(rx_queue_job(q, 0)->id, 2, "s2", 2);
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK_EQ_INT(st.ready, 1);
  CHECK_EQ_INT(st.in_flight, 1);
  CHECK_EQ_INT(st.consumers, 1);
  CHECK_STR(rx_queue_warning(q), "");
  rx_queue_free(q);

  /* A server that may evict keys gets a warning. */
  rxt_server s;
  const char *args[] = {"--maxmemory-policy", "allkeys-lru", NULL};
  CHECK(rxt_server_start(&s, args) == 0);
  q = qnew_url(s.url, "warn");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_stats_get(q, &st), 0);
  CHECK(strstr(rx_queue_warning(q), "allkeys-lru") != NULL);
  rx_queue_free(q);
  rxt_server_cleanup(&s);
}

/* Several consumers on their own threads share the work: every message is
 * delivered exactly once when nobody crashes, in due order per consumer. */
enum { MC_N = 3000, MC_THREADS = 4 };
static unsigned char mc_seen[MC_N];
static pthread_mutex_t mc_lock = PTHREAD_MUTEX_INITIALIZER;
static int mc_total, mc_dups, mc_errors;

static void *mc_worker(void *arg) {
  (void)arg;
  rx_queue *q = qnew("many");
  if (!q) return NULL;
  long long last_due = 0;
  for (;;) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 50, 1500, NULL, &n);
    if (rc == RX_TIMEOUT) break;
    if (rc != 0) {
      pthread_mutex_lock(&mc_lock);
      mc_errors++;
      pthread_mutex_unlock(&mc_lock);
      break;
    }
    pthread_mutex_lock(&mc_lock);
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      int k = atoi(j->id + 1);
      if (k < 0 || k >= MC_N || mc_seen[k]) mc_dups++;
      else mc_seen[k] = 1;
      if (j->due_ms < last_due) mc_errors++;
      last_due = j->due_ms;
      mc_total++;
    }
    pthread_mutex_unlock(&mc_lock);
    if (rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL) != 0) mc_errors++;
  }
  rx_queue_free(q);
  return NULL;
}

static void test_many_consumers(void) {
  rx_queue *p = qnew("many");
  CHECK(p);
  for (int i = 0; i < MC_N; i++) {
    char id[32];
    snprintf(id, sizeof id, "c%d", i);
    CHECK_EQ_INT(rx_queue_batch_add(p, id, strlen(id), "x", 1, 200 + i % 700, 0), 0);
  }
  CHECK_EQ_INT(rx_queue_batch_send(p), 0);
  pthread_t th[MC_THREADS];
  for (int i = 0; i < MC_THREADS; i++) CHECK(pthread_create(&th[i], NULL, mc_worker, NULL) == 0);
  for (int i = 0; i < MC_THREADS; i++) pthread_join(th[i], NULL);
  CHECK_EQ_INT(mc_errors, 0);
  CHECK_EQ_INT(mc_dups, 0);
  CHECK_EQ_INT(mc_total, MC_N);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(p, &st), 0);
  CHECK_EQ_INT(st.acked, MC_N);
  CHECK_EQ_INT(st.in_flight + st.ready + st.scheduled, 0);
  rx_queue_free(p);
}

/* Cleanup: a consumer that leaves holding nothing is removed; one that
 * holds deliveries stays so they can be reclaimed. */
static void test_consumer_cleanup(void) {
  rx_queue *a = qnew("leave"), *b = qnew("leave");
  CHECK(a && b);
  rx_queue_set(a, "consumer", "ca");
  rx_queue_set(b, "consumer", "cb");
  CHECK_EQ_INT(sched(a, "1", "x", 0), 0);
  CHECK_EQ_INT(sched(a, "2", "x", 0), 0);
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(a, 1, 1000, NULL, &n), 0);
  CHECK_EQ_INT(rx_queue_fetch(b, 1, 1000, NULL, &n), 0);
  CHECK_EQ_INT(rx_queue_ack(b, rx_queue_job(b, 0)->token), 0);
  rx_queue_stats st;
  CHECK_EQ_INT(rx_queue_stats_get(b, &st), 0);
  CHECK_EQ_INT(st.consumers, 2);
  rx_queue_free(a); /* holds one: stays */
  rx_queue_free(b); /* holds none: leaves */
  a = qnew("leave");
  CHECK_EQ_INT(rx_queue_stats_get(a, &st), 0);
  CHECK_EQ_INT(st.consumers, 1);
  CHECK_EQ_INT(st.in_flight, 1);
  rx_queue_free(a);
}

int main(void) {
  signal(SIGPIPE, SIG_DFL);
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  RUN(test_order_and_fields);
  RUN(test_not_before_due);
  RUN(test_cancel_reschedule_run_now);
  RUN(test_duplicate_ids);
  RUN(test_batch);
  RUN(test_retry_backoff_dead);
  RUN(test_dead_cap);
  RUN(test_stale_ack_and_extend);
  RUN(test_ack_fetch);
  RUN(test_ack_many_fetch);
  RUN(test_noscript_recovery);
  RUN(test_limits_and_types);
  RUN(test_wakeup_and_producer_wake);
  RUN(test_stats_and_warning);
  RUN(test_consumer_cleanup);
  RUN(test_many_consumers);
  RUN(test_kill9_mid_batch);
  RUN(test_all_offline);
  RUN(test_restart_aof);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
