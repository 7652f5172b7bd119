/* Queue chaos: real worker processes killed with SIGKILL, a redis-server
 * killed with SIGKILL and restarted from its AOF, SCRIPT FLUSH and CLIENT
 * KILL — while N messages with random delays fall due over D seconds.
 *
 * Setup: redis-server with appendonly yes and appendfsync always. The test
 * schedules N messages (ids m0..m<N-1>, payload "p:<id>") due at random
 * times over D seconds, then starts 4 consumer processes
 * (tests/chaos/chaos_consumer.c) with a visibility timeout of 2 s. Each
 * consumer appends a line per delivery to its own log (id, server time of
 * the delivery, due time, attempt, token) and only then acks, logging the
 * outcome of the ack (confirmed, or stale) with the wall time it returned.
 *
 * Chaos, during D seconds: a random consumer is killed with SIGKILL every
 * 0.5-1 s and a new one started; redis-server is killed with SIGKILL and
 * restarted twice (at 30% and 70% of D); SCRIPT FLUSH at 45% and CLIENT KILL
 * TYPE normal at 55%. Then the consumers drain the queue.
 *
 * Checks, from the consumers' logs and the queue's stats:
 *   - every message was delivered at least once (none lost) and the queue
 *     is empty: scheduled 0, ready 0, in flight 0, dead 0, acked == N;
 *   - no delivery before its due time, by the server's clock (delivered_ms
 *     against the due time the producer got back when scheduling);
 *   - duplicates are bounded by the deliveries at risk at each kill: for a
 *     killed consumer, the deliveries it had logged but whose ack it had not
 *     seen confirmed; for a redis kill or CLIENT KILL, every logged delivery
 *     made before it whose ack was not confirmed before it;
 *   - a delivery whose ack was confirmed is never followed by another
 *     delivery of the same message (a confirmed ack is durable);
 *   - payloads arrive unchanged.
 * Figures are printed on stdout.
 *
 * CI mode (the default): N = 20,000, D = 20 s, about 30 s in all. Soak mode
 * (RX_CHAOS_SOAK=1): N = 100,000, D = 60 s. RX_CHAOS_N, RX_CHAOS_D (seconds)
 * and RX_CHAOS_SEED override. Every loop is bounded in time; consumers and
 * servers are killed at exit, and consumers also die with this process
 * (PR_SET_PDEATHSIG). */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reactis/reactis.h"
#include "server.h"
#include "test.h"

#define QNAME "chaos"
#define VT_MS 2000
enum { NCONS = 4 };

static rxt_server srv;
static char g_dir[600];
static char g_consumer[1024];

/* ------------------------------------------------------------ consumers */

typedef struct {
  pid_t pid;
  int log; /* index into g_logs */
} slot;

static slot g_slots[NCONS];
typedef struct {
  char path[700];
  long long end; /* wall ms the process was killed or stopped; LLONG_MAX while alive */
} logfile;
static logfile *g_logs;
static size_t g_nlogs, g_logs_cap;
static int g_unexpected_exits;

static void kill_consumers(void) {
  for (int i = 0; i < NCONS; i++)
    if (g_slots[i].pid > 0) {
      kill(g_slots[i].pid, SIGKILL);
      waitpid(g_slots[i].pid, NULL, 0);
      g_slots[i].pid = 0;
    }
}

static int find_consumer(void) {
  const char *env = getenv("RX_CHAOS_CONSUMER");
  if (env && *env) {
    snprintf(g_consumer, sizeof g_consumer, "%s", env);
    return access(g_consumer, X_OK);
  }
#ifdef RX_CHAOS_CONSUMER
  snprintf(g_consumer, sizeof g_consumer, "%s", RX_CHAOS_CONSUMER);
  if (access(g_consumer, X_OK) == 0) return 0;
#endif
  /* Next to this executable. */
  char self[900];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (!slash) return -1;
  *slash = '\0';
  snprintf(g_consumer, sizeof g_consumer, "%s/chaos_consumer", self);
  return access(g_consumer, X_OK);
}

static int spawn_consumer(int i, int max_seconds) {
  if (g_nlogs == g_logs_cap) {
    size_t cap = g_logs_cap ? g_logs_cap * 2 : 64;
    void *nl = realloc(g_logs, cap * sizeof *g_logs);
    if (!nl) return -1;
    g_logs = nl;
    g_logs_cap = cap;
  }
  int li = (int)g_nlogs++;
  snprintf(g_logs[li].path, sizeof g_logs[li].path, "%s/c%d-%d.log", g_dir, i, li);
  g_logs[li].end = LLONG_MAX;
  char vt[16], maxs[16], ppid[16];
  snprintf(vt, sizeof vt, "%d", VT_MS);
  snprintf(maxs, sizeof maxs, "%d", max_seconds);
  snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
      dup2(fd, 0);
      dup2(fd, 1);
      if (fd > 2) close(fd);
    }
    execl(g_consumer, g_consumer, srv.url, QNAME, g_logs[li].path, vt, maxs, ppid, (char *)NULL);
    _exit(127);
  }
  g_slots[i].pid = pid;
  g_slots[i].log = li;
  return 0;
}

/* Restarts consumers that exited by themselves (which they should not). */
static void reap_unexpected(int max_seconds) {
  for (int i = 0; i < NCONS; i++) {
    int st;
    if (g_slots[i].pid > 0 && waitpid(g_slots[i].pid, &st, WNOHANG) == g_slots[i].pid) {
      fprintf(stderr, "  consumer %d (log %s) exited by itself: status %d\n", i,
              g_logs[g_slots[i].log].path, st);
      g_logs[g_slots[i].log].end = rx_now_ms();
      g_unexpected_exits++;
      g_slots[i].pid = 0;
      spawn_consumer(i, max_seconds);
    }
  }
}

/* ------------------------------------------------------------ events */

enum { EV_CKILL, EV_RKILL, EV_FLUSH, EV_CLIENTKILL };
static const char *const ev_name[] = {"consumer SIGKILL", "redis SIGKILL+restart",
                                      "SCRIPT FLUSH", "CLIENT KILL TYPE normal"};

typedef struct {
  int kind;
  long long t0, t1; /* wall ms just before and just after */
  int log;          /* EV_CKILL: the killed process's log */
  long long at_risk;
} event;

static event *g_ev;
static size_t g_nev, g_ev_cap;

static event *add_event(int kind) {
  if (g_nev == g_ev_cap) {
    size_t cap = g_ev_cap ? g_ev_cap * 2 : 64;
    void *ne = realloc(g_ev, cap * sizeof *g_ev);
    if (!ne) return NULL;
    g_ev = ne;
    g_ev_cap = cap;
  }
  event *e = &g_ev[g_nev++];
  memset(e, 0, sizeof *e);
  e->kind = kind;
  e->log = -1;
  return e;
}

static int raw(const char *a0, const char *a1, const char *a2, const char *a3,
               const char *expect) {
  const char *argv[5] = {a0, a1, a2, a3, NULL};
  char *r = rxt_cmd(&srv, argv);
  int ok = r && (!expect || strncmp(r, expect, strlen(expect)) == 0);
  if (!ok) fprintf(stderr, "  %s %s: unexpected reply %s\n", a0, a1 ? a1 : "", r ? r : "(none)");
  free(r);
  return ok ? 0 : -1;
}

/* ------------------------------------------------------------ the logs */

typedef struct {
  int k;                /* message number */
  long long dms, due;   /* server ms of the delivery, due of this delivery */
  int attempt, crashes, ok;
  long long tms, tseq;  /* token */
  int file;
  int ack;              /* 0 none, 'A' confirmed, 'X' stale (ambiguous) */
  long long ack_ms;
  int covered;          /* at risk at some kill (see below) */
} delivery;

typedef struct {
  long long tms, tseq;
  int kind;
  long long ms;
  int file;
} ackrec;

static delivery *g_d;
static size_t g_nd, g_d_cap;
static ackrec *g_a;
static size_t g_na, g_a_cap;
static long long g_errors[32];
static char g_first_error[300];

static int grow(void **p, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 4096;
  void *np = realloc(*p, nc * size);
  if (!np) return -1;
  *p = np;
  *cap = nc;
  return 0;
}

static int parse_token(const char *s, long long *ms, long long *seq) {
  return sscanf(s, "%lld-%lld", ms, seq) == 2 ? 0 : -1;
}

static int read_log(int file, const char *path, int n_msgs) {
  FILE *f = fopen(path, "r");
  if (!f) return 0; /* killed before it opened its log */
  char line[2048];
  int bad = 0;
  while (fgets(line, sizeof line, f)) {
    size_t len = strlen(line);
    if (!len || line[len - 1] != '\n') break; /* cut short by SIGKILL */
    if (line[0] == 'D') {
      char id[300], tok[64];
      delivery d;
      memset(&d, 0, sizeof d);
      if (sscanf(line, "D %299s %lld %lld %d %d %63s %d", id, &d.dms, &d.due, &d.attempt,
                 &d.crashes, tok, &d.ok) != 7 ||
          id[0] != 'm' || parse_token(tok, &d.tms, &d.tseq)) {
        bad++;
        continue;
      }
      d.k = atoi(id + 1);
      if (d.k < 0 || d.k >= n_msgs) {
        bad++;
        continue;
      }
      d.file = file;
      if (grow((void **)&g_d, &g_d_cap, g_nd, sizeof *g_d)) return -1;
      g_d[g_nd++] = d;
    } else if (line[0] == 'A' || line[0] == 'X') {
      char tok[64];
      ackrec a;
      memset(&a, 0, sizeof a);
      if (sscanf(line + 2, "%63s %lld", tok, &a.ms) != 2 || parse_token(tok, &a.tms, &a.tseq)) {
        bad++;
        continue;
      }
      a.kind = line[0];
      a.file = file;
      if (grow((void **)&g_a, &g_a_cap, g_na, sizeof *g_a)) return -1;
      g_a[g_na++] = a;
    } else if (line[0] == 'E') {
      int code = 0;
      sscanf(line, "E %d", &code);
      g_errors[(-code) & 31]++;
      if (!g_first_error[0]) snprintf(g_first_error, sizeof g_first_error, "%.290s", line);
    } else {
      bad++;
    }
  }
  fclose(f);
  return bad;
}

static int cmp_token(long long am, long long as, long long bm, long long bs) {
  if (am != bm) return am < bm ? -1 : 1;
  if (as != bs) return as < bs ? -1 : 1;
  return 0;
}

static int by_token_d(const void *a, const void *b) {
  const delivery *x = a, *y = b;
  return cmp_token(x->tms, x->tseq, y->tms, y->tseq);
}

static int by_token_a(const void *a, const void *b) {
  const ackrec *x = a, *y = b;
  return cmp_token(x->tms, x->tseq, y->tms, y->tseq);
}

static int by_msg(const void *a, const void *b) {
  const delivery *x = a, *y = b;
  if (x->k != y->k) return x->k < y->k ? -1 : 1;
  return cmp_token(x->tms, x->tseq, y->tms, y->tseq);
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ the test */

static long long env_ll(const char *name, long long def) {
  const char *v = getenv(name);
  return v && *v ? atoll(v) : def;
}

static uint64_t g_rng;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

static int stats(rx_queue *q, rx_queue_stats *st) {
  for (int i = 0; i < 50; i++) {
    if (rx_queue_stats_get(q, st) == RX_OK) return 0;
    rxt_sleep_ms(100);
  }
  fprintf(stderr, "  stats: %s\n", rx_queue_errstr(q));
  return -1;
}

static void test_queue_chaos(void) {
  int soak = getenv("RX_CHAOS_SOAK") && atoi(getenv("RX_CHAOS_SOAK")) > 0;
  int N = (int)env_ll("RX_CHAOS_N", soak ? 100000 : 20000);
  long long D = env_ll("RX_CHAOS_D", soak ? 60 : 20) * 1000;
  g_rng = (uint64_t)env_ll("RX_CHAOS_SEED", (long long)rx_now_ms());
  if (!g_rng) g_rng = 1;
  printf("chaos: %s mode, N=%d messages due over D=%lld s, %d consumers, visibility "
         "timeout %d ms, seed %llu\n",
         soak ? "soak" : "CI", N, D / 1000, NCONS, VT_MS, (unsigned long long)g_rng);
  long long t_start = rxt_ms();
  int max_seconds = (int)(D / 1000) + 120;

  CHECKF(find_consumer() == 0, "chaos_consumer not found (%s); set RX_CHAOS_CONSUMER",
         g_consumer);
  snprintf(g_dir, sizeof g_dir, "%s/rxchaos-XXXXXX", rxt_tmp_root());
  CHECK(mkdtemp(g_dir) != NULL);
  const char *args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
  CHECK(rxt_server_start(&srv, args) == 0);

  /* Produce: everything up front, due at random times over D. */
  char err[256];
  rx_queue *p = rx_queue_new(srv.url, QNAME, err, sizeof err);
  CHECKF(p, "%s", err);
  long long *due = calloc((size_t)N, sizeof *due);
  CHECK(due);
  long long max_due = 0;
  for (int from = 0; from < N; from += 5000) {
    int to = from + 5000 < N ? from + 5000 : N;
    for (int k = from; k < to; k++) {
      char id[32], pl[40];
      int il = snprintf(id, sizeof id, "m%d", k);
      int pll = snprintf(pl, sizeof pl, "p:m%d", k);
      CHECK_EQ_INT(rx_queue_batch_add(p, id, (size_t)il, pl, (size_t)pll,
                                      (long long)(rnd() % (uint64_t)D), 0), 0);
    }
    CHECKF(rx_queue_batch_send(p) == 0, "%s", rx_queue_errstr(p));
    for (int k = from; k < to; k++) {
      int outcome = -1;
      CHECK_EQ_INT(rx_queue_batch_result(p, (size_t)(k - from), &outcome, NULL, NULL, &due[k]),
                   0);
      CHECK_EQ_INT(outcome, RX_SCHED_ADDED);
      if (due[k] > max_due) max_due = due[k];
    }
  }
  rx_queue_batch_clear(p);
  printf("chaos: scheduled %d messages in %lld ms\n", N, rxt_ms() - t_start);

  for (int i = 0; i < NCONS; i++) CHECK(spawn_consumer(i, max_seconds) == 0);

  /* Chaos for D ms. */
  long long T0 = rxt_ms(), t0_wall = rx_now_ms();
  long long next_ck = T0 + 500 + (long long)(rnd() % 501);
  long long at_rkill[2] = {T0 + D * 30 / 100, T0 + D * 70 / 100};
  long long at_flush = T0 + D * 45 / 100, at_ckill = T0 + D * 55 / 100;
  int rkills = 0, flushed = 0, clientkilled = 0, ckills = 0;
  long long restart_ms[2] = {0, 0};
  while (rxt_ms() < T0 + D) {
    long long now = rxt_ms();
    long long next = next_ck;
    if (rkills < 2 && at_rkill[rkills] < next) next = at_rkill[rkills];
    if (!flushed && at_flush < next) next = at_flush;
    if (!clientkilled && at_ckill < next) next = at_ckill;
    if (next > T0 + D) next = T0 + D;
    if (next > now) {
      rxt_sleep_ms((int)(next - now > 100 ? 100 : next - now));
      reap_unexpected(max_seconds);
      continue;
    }
    if (rkills < 2 && now >= at_rkill[rkills]) {
      event *e = add_event(EV_RKILL);
      CHECK(e);
      e->t0 = rx_now_ms();
      rxt_server_kill(&srv);
      e->t1 = rx_now_ms();
      long long r0 = rxt_ms();
      CHECK(rxt_server_restart(&srv) == 0);
      restart_ms[rkills] = rxt_ms() - r0;
      rkills++;
    } else if (!flushed && now >= at_flush) {
      event *e = add_event(EV_FLUSH);
      CHECK(e);
      e->t0 = rx_now_ms();
      CHECK(raw("SCRIPT", "FLUSH", NULL, NULL, "+OK") == 0);
      e->t1 = rx_now_ms();
      flushed = 1;
    } else if (!clientkilled && now >= at_ckill) {
      event *e = add_event(EV_CLIENTKILL);
      CHECK(e);
      e->t0 = rx_now_ms();
      CHECK(raw("CLIENT", "KILL", "TYPE", "normal", ":") == 0);
      e->t1 = rx_now_ms();
      clientkilled = 1;
    } else if (now >= next_ck) {
      int i = (int)(rnd() % NCONS);
      event *e = add_event(EV_CKILL);
      CHECK(e);
      e->t0 = rx_now_ms();
      if (g_slots[i].pid > 0) {
        kill(g_slots[i].pid, SIGKILL);
        waitpid(g_slots[i].pid, NULL, 0);
        g_slots[i].pid = 0;
      }
      e->t1 = rx_now_ms();
      e->log = g_slots[i].log;
      g_logs[e->log].end = e->t0;
      ckills++;
      CHECK(spawn_consumer(i, max_seconds) == 0);
      next_ck = rxt_ms() + 500 + (long long)(rnd() % 501);
    }
  }
  long long chaos_ms = rxt_ms() - T0;

  /* Drain: until everything is due, and nothing is waiting, ready or held. */
  rx_queue_stats st;
  long long drain_deadline = rxt_ms() + 30000;
  int drained = 0;
  while (rxt_ms() < drain_deadline) {
    reap_unexpected(max_seconds);
    if (rx_queue_stats_get(p, &st) == RX_OK && st.now_ms > max_due && st.scheduled == 0 &&
        st.ready == 0 && st.in_flight == 0) {
      drained = 1;
      break;
    }
    rxt_sleep_ms(100);
  }
  long long drain_ms = rxt_ms() - T0 - chaos_ms;
  /* Stop the consumers (SIGTERM: they settle what they hold and leave). */
  for (int i = 0; i < NCONS; i++)
    if (g_slots[i].pid > 0) kill(g_slots[i].pid, SIGTERM);
  for (int i = 0; i < NCONS; i++) {
    if (g_slots[i].pid <= 0) continue;
    long long until = rxt_ms() + 5000;
    while (waitpid(g_slots[i].pid, NULL, WNOHANG) == 0 && rxt_ms() < until) rxt_sleep_ms(10);
    if (rxt_ms() >= until) {
      kill(g_slots[i].pid, SIGKILL);
      waitpid(g_slots[i].pid, NULL, 0);
    }
    g_slots[i].pid = 0;
  }
  CHECKF(drained, "not drained 30 s after the chaos: scheduled %lld ready %lld in flight %lld",
         st.scheduled, st.ready, st.in_flight);
  CHECK(stats(p, &st) == 0);

  /* Read every log. */
  int bad = 0;
  for (size_t f = 0; f < g_nlogs; f++) {
    int b = read_log((int)f, g_logs[f].path, N);
    CHECKF(b >= 0, "out of memory reading %s", g_logs[f].path);
    bad += b;
  }
  qsort(g_d, g_nd, sizeof *g_d, by_token_d);
  qsort(g_a, g_na, sizeof *g_a, by_token_a);
  int ack_unmatched = 0, token_dup = 0;
  for (size_t i = 1; i < g_nd; i++)
    if (!cmp_token(g_d[i - 1].tms, g_d[i - 1].tseq, g_d[i].tms, g_d[i].tseq)) token_dup++;
  for (size_t i = 0, j = 0; i < g_na; i++) {
    while (j < g_nd && cmp_token(g_d[j].tms, g_d[j].tseq, g_a[i].tms, g_a[i].tseq) < 0) j++;
    if (j < g_nd && !cmp_token(g_d[j].tms, g_d[j].tseq, g_a[i].tms, g_a[i].tseq) &&
        g_d[j].file == g_a[i].file) {
      g_d[j].ack = g_a[i].kind;
      g_d[j].ack_ms = g_a[i].ms;
    } else {
      ack_unmatched++;
    }
  }

  /* Deliveries at risk at each kill. */
  long long bound = 0, bound_ck = 0, bound_rk[2] = {0, 0}, bound_cl = 0;
  int rk = 0;
  for (size_t e = 0; e < g_nev; e++) {
    event *ev = &g_ev[e];
    for (size_t i = 0; i < g_nd; i++) {
      const delivery *d = &g_d[i];
      int risk = 0;
      if (ev->kind == EV_CKILL) {
        risk = d->file == ev->log && d->ack == 0;
      } else {
        risk = d->dms <= ev->t1 && g_logs[d->file].end >= ev->t0 &&
               (d->ack != 'A' || d->ack_ms >= ev->t0);
      }
      if (risk) {
        ev->at_risk++;
        if (ev->kind != EV_FLUSH) g_d[i].covered = 1;
      }
    }
    if (ev->kind == EV_CKILL) bound_ck += ev->at_risk;
    if (ev->kind == EV_RKILL && rk < 2) bound_rk[rk++] = ev->at_risk;
    if (ev->kind == EV_CLIENTKILL) bound_cl = ev->at_risk;
    if (ev->kind != EV_FLUSH) bound += ev->at_risk;
  }

  /* Deliveries logged whose ack was never confirmed: only these can come
   * again, and each should be explained by a kill. */
  long long unconfirmed = 0, uncovered = 0;
  for (size_t x = 0; x < g_nd; x++)
    if (g_d[x].ack != 'A') {
      unconfirmed++;
      if (!g_d[x].covered) uncovered++;
    }

  /* Per message: lost, duplicates, early, redelivered after a confirmed ack. */
  qsort(g_d, g_nd, sizeof *g_d, by_msg);
  long long *late = malloc(sizeof *late * (size_t)N);
  CHECK(late);
  int lost = 0, early = 0, after_ack = 0, bad_payload = 0, redelivered = 0, nlate = 0;
  long long dups = 0, worst_early = 0, stale = 0;
  size_t i = 0;
  for (int k = 0; k < N; k++) {
    size_t s = i;
    while (i < g_nd && g_d[i].k == k) i++;
    size_t cnt = i - s;
    if (cnt == 0) {
      if (lost < 5) fprintf(stderr, "  lost: m%d (due %lld)\n", k, due[k]);
      lost++;
      continue;
    }
    dups += (long long)cnt - 1;
    if (cnt > 1) redelivered++;
    late[nlate++] = g_d[s].dms - due[k];
    for (size_t x = s; x < i; x++) {
      const delivery *d = &g_d[x];
      if (d->dms < due[k] || d->dms < d->due) {
        early++;
        if (due[k] - d->dms > worst_early) worst_early = due[k] - d->dms;
      }
      if (!d->ok) bad_payload++;
      if (d->ack == 'X') stale++;
      if (d->ack == 'A' && x + 1 < i) {
        if (after_ack < 5)
          fprintf(stderr, "  m%d delivered again after the ack of %lld-%lld was confirmed\n",
                  k, d->tms, d->tseq);
        after_ack++;
      }
    }
  }
  qsort(late, (size_t)nlate, sizeof *late, cmp_ll);
  long long total_ms = rxt_ms() - t_start;

  /* Figures. */
  printf("chaos: events: %d consumer SIGKILLs, %d redis SIGKILL+restart (restart took %lld "
         "and %lld ms), %d SCRIPT FLUSH, %d CLIENT KILL; %d consumer processes in all\n",
         ckills, rkills, restart_ms[0], restart_ms[1], flushed, clientkilled, (int)g_nlogs);
  printf("chaos: deliveries logged %zu, messages delivered %d of %d, lost %d\n", g_nd,
         N - lost, N, lost);
  printf("chaos: duplicates %lld (%d messages delivered more than once); bound = deliveries "
         "at risk at the kills = %lld (consumer kills %lld, redis kill 1: %lld, redis kill "
         "2: %lld, CLIENT KILL: %lld)\n",
         dups, redelivered, bound, bound_ck, bound_rk[0], bound_rk[1], bound_cl);
  for (size_t e = 0; e < g_nev; e++)
    if (g_ev[e].kind != EV_CKILL)
      printf("chaos:   %s at +%lld ms: %lld deliveries at risk%s\n", ev_name[g_ev[e].kind],
             g_ev[e].t0 - t0_wall, g_ev[e].at_risk,
             g_ev[e].kind == EV_FLUSH ? " (not in the bound: it must cause no duplicate)" : "");
  printf("chaos: deliveries logged but never confirmed acked: %lld, of them not at risk at "
         "any kill: %lld\n",
         unconfirmed, uncovered);
  printf("chaos: early deliveries %d (worst %lld ms early); lateness of first deliveries: "
         "p50 %lld ms, p99 %lld ms, max %lld ms\n",
         early, worst_early, nlate ? late[nlate / 2] : 0,
         nlate ? late[(size_t)((double)nlate * 0.99)] : 0, nlate ? late[nlate - 1] : 0);
  printf("chaos: acks: stale (ambiguous) %lld, unmatched %d; redelivered after a confirmed "
         "ack %d; bad payloads %d; bad log lines %d; unexpected consumer exits %d\n",
         stale, ack_unmatched, after_ack, bad_payload, bad, g_unexpected_exits);
  printf("chaos: consumer errors seen (retried):");
  for (int c = 0; c < 32; c++)
    if (g_errors[c]) printf(" %s %lld", rx_errname(-c), g_errors[c]);
  printf("%s%s", g_first_error[0] ? "; first: " : "\n", g_first_error);
  printf("chaos: final stats: scheduled %lld ready %lld in_flight %lld dead %lld acked %lld "
         "crashes %lld consumers %lld\n",
         st.scheduled, st.ready, st.in_flight, st.dead, st.acked, st.crashes, st.consumers);
  printf("chaos: took %lld ms (chaos %lld ms, drain %lld ms)\n", total_ms, chaos_ms, drain_ms);
  fflush(stdout);

  CHECK_EQ_INT(rkills, 2);
  CHECK(flushed && clientkilled);
  CHECK(ckills >= (int)(D / 1000));
  CHECK_EQ_INT(lost, 0);
  CHECK_EQ_INT(st.scheduled, 0);
  CHECK_EQ_INT(st.ready, 0);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.dead, 0);
  CHECK_EQ_INT(st.acked, N);
  CHECK_EQ_INT(early, 0);
  CHECK_EQ_INT(after_ack, 0);
  CHECK_EQ_INT(bad_payload, 0);
  CHECK_EQ_INT(token_dup, 0);
  CHECK_EQ_INT(ack_unmatched, 0);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(g_unexpected_exits, 0);
  CHECKF(dups <= bound, "%lld duplicates, more than the %lld deliveries at risk", dups, bound);
  if (!soak) CHECKF(total_ms < 60000, "CI mode took %lld ms", total_ms);

  free(late);
  free(due);
  rx_queue_free(p);
}

static void rm_logs(void) {
  for (size_t f = 0; f < g_nlogs; f++) unlink(g_logs[f].path);
  if (g_dir[0]) rmdir(g_dir);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  atexit(kill_consumers);
  RUN(test_queue_chaos);
  kill_consumers();
  if (t__failed == 0)
    rm_logs();
  else if (g_dir[0])
    fprintf(stderr, "consumer logs kept in %s\n", g_dir);
  rxt_server_cleanup(&srv);
  free(g_d);
  free(g_a);
  free(g_ev);
  free(g_logs);
  return TEST_REPORT();
}
