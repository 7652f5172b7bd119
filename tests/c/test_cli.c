/* The reactis command-line tool, run as a real process: exit codes, --json
 * output, --help on every subcommand, tail and events. The binary is
 * $RX_CLI, else ../reactis next to this test's directory (the build root). */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reactis/queue.h"
#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_server srv;
static char cli[PATH_MAX];

typedef struct run {
  pid_t pid;
  int out_fd;
  char out[65536];
  size_t out_len;
  int status; /* exit code, or 128 + signal */
} run;

/* Starts the CLI with argv (NULL-terminated, without the program name),
 * REDIS_URL set to the test server, stdin from `input` (may be NULL). */
static int run_start(run *r, const char *const *argv, const char *input, size_t input_len) {
  int out[2], in[2];
  memset(r, 0, sizeof *r);
  if (pipe(out) || pipe(in)) return -1;
  r->pid = fork();
  if (r->pid < 0) return -1;
  if (r->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0 && !getenv("RX_CLI_STDERR")) dup2(devnull, 2);
    close(in[1]);
    close(out[0]);
    setenv("REDIS_URL", srv.url, 1);
    const char *av[32];
    int n = 0;
    av[n++] = cli;
    for (int i = 0; argv[i] && n < 31; i++) av[n++] = argv[i];
    av[n] = NULL;
    execv(cli, (char *const *)av);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  if (input_len && write(in[1], input, input_len) < 0) {
  }
  close(in[1]);
  r->out_fd = out[0];
  return 0;
}

/* Collects output until the process ends (killed after timeout_ms). */
static int run_wait(run *r, int timeout_ms) {
  long long deadline = rxt_ms() + timeout_ms;
  for (;;) {
    struct pollfd p = {r->out_fd, POLLIN, 0};
    long long left = deadline - rxt_ms();
    if (left <= 0) {
      kill(r->pid, SIGKILL);
      break;
    }
    int n = poll(&p, 1, (int)left);
    if (n <= 0) continue;
    ssize_t k = read(r->out_fd, r->out + r->out_len, sizeof r->out - 1 - r->out_len);
    if (k <= 0) break;
    r->out_len += (size_t)k;
  }
  r->out[r->out_len] = '\0';
  close(r->out_fd);
  int st;
  waitpid(r->pid, &st, 0);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r->status;
}

static int run_cli(run *r, const char *const *argv) {
  if (run_start(r, argv, NULL, 0)) return -1;
  return run_wait(r, 10000);
}

static rx_queue *qnew(const char *name) {
  char err[256];
  return rx_queue_new(srv.url, name, err, sizeof err);
}

static void test_help_and_usage(void) {
  run r;
  const char *cmds[] = {"schedule", "cancel", "reschedule", "run-now", "stats",
                        "tail",     "dead",   "events",     NULL};
  for (int i = 0; cmds[i]; i++) {
    const char *a[] = {cmds[i], "--help", NULL};
    CHECKF(run_cli(&r, a) == 0, "%s --help exited %d", cmds[i], r.status);
    CHECKF(strstr(r.out, "usage: reactis") != NULL, "%s --help: %s", cmds[i], r.out);
  }
  const char *h[] = {"--help", NULL};
  CHECK_EQ_INT(run_cli(&r, h), 0);
  CHECK(strstr(r.out, "Exit codes") != NULL);
  const char *none[] = {NULL};
  CHECK_EQ_INT(run_cli(&r, none), 2);
  const char *bogus[] = {"bogus", NULL};
  CHECK_EQ_INT(run_cli(&r, bogus), 2);
  const char *badopt[] = {"schedule", "q", "p", "--nope", NULL};
  CHECK_EQ_INT(run_cli(&r, badopt), 2);
  const char *baddelay[] = {"schedule", "q", "p", "--delay", "soon", NULL};
  CHECK_EQ_INT(run_cli(&r, baddelay), 2);
  const char *missing[] = {"cancel", "q", NULL};
  CHECK_EQ_INT(run_cli(&r, missing), 2);
}

static void test_schedule_cancel_codes(void) {
  run r;
  const char *s1[] = {"--json", "schedule", "cli", "hello", "--id", "AAA", "--delay", "15m", NULL};
  CHECK_EQ_INT(run_cli(&r, s1), 0);
  CHECKF(strstr(r.out, "\"outcome\":\"added\"") && strstr(r.out, "\"id\":\"AAA\""), "%s", r.out);
  /* The same id again: kept, exit 1. */
  CHECK_EQ_INT(run_cli(&r, s1), 1);
  CHECK(strstr(r.out, "\"outcome\":\"exists\"") != NULL);
  const char *s2[] = {"schedule", "cli", "bye", "--id", "AAA", "--replace", NULL};
  CHECK_EQ_INT(run_cli(&r, s2), 0);
  CHECK(strstr(r.out, "replaced") != NULL);
  const char *rs[] = {"reschedule", "cli", "AAA", "--delay", "1h", NULL};
  CHECK_EQ_INT(run_cli(&r, rs), 0);
  const char *rn[] = {"--json", "run-now", "cli", "AAA", NULL};
  CHECK_EQ_INT(run_cli(&r, rn), 0);
  CHECK(strstr(r.out, "\"was_waiting\":true") != NULL);
  const char *c[] = {"cancel", "cli", "AAA", NULL};
  CHECK_EQ_INT(run_cli(&r, c), 0);
  CHECK_EQ_INT(run_cli(&r, c), 1);
  const char *cj[] = {"cancel", "--json", "cli", "AAA", NULL};
  CHECK_EQ_INT(run_cli(&r, cj), 1);
  CHECK(strstr(r.out, "\"was_waiting\":false") != NULL);
  /* A generated id is printed; stdin payloads are binary-safe. */
  const char *si[] = {"--json", "schedule", "cli", "-", NULL};
  CHECK_EQ_INT(run_start(&r, si, "a\0b\xff", 4), 0);
  CHECK_EQ_INT(run_wait(&r, 10000), 0);
  rx_queue *q = qnew("cli");
  CHECK(q);
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_MEM(rx_queue_job(q, 0)->payload, rx_queue_job(q, 0)->payload_len, "a\0b\xff", 4);
  char want[64];
  snprintf(want, sizeof want, "\"id\":\"%.*s\"", (int)rx_queue_job(q, 0)->id_len,
           rx_queue_job(q, 0)->id);
  CHECKF(strstr(r.out, want) != NULL, "%s", r.out);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  rx_queue_free(q);
}

static void test_errors_codes(void) {
  run r;
  /* Unreachable server: 3. */
  const char *u[] = {"--url", "redis://127.0.0.1:1", "stats", "x", NULL};
  CHECK_EQ_INT(run_cli(&r, u), 3);
  const char *uj[] = {"--json", "--url=redis://127.0.0.1:1", "stats", "x", NULL};
  CHECK_EQ_INT(run_cli(&r, uj), 3);
  CHECK(strstr(r.out, "\"error\":\"ECONNECT\"") != NULL);
  /* Wrong key type: 4. */
  const char *set[] = {"SET", "rx:{cliwt}:z", "x", NULL};
  free(rxt_cmd(&srv, set));
  const char *w[] = {"--json", "schedule", "cliwt", "p", NULL};
  CHECK_EQ_INT(run_cli(&r, w), 4);
  CHECK(strstr(r.out, "EWRONGTYPE") != NULL);
  /* Bad queue name: 4. */
  const char *b[] = {"stats", "a{b}", NULL};
  CHECK_EQ_INT(run_cli(&r, b), 4);
}

static void test_stats_json(void) {
  rx_queue *q = qnew("clistats");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_schedule(q, "x", 1, "p", 1, 60000, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_schedule(q, "y", 1, "p", 1, 0, 0, NULL, 0, NULL, NULL), 0);
  rx_queue_free(q);
  run r;
  const char *a[] = {"--json", "stats", "clistats", NULL};
  CHECK_EQ_INT(run_cli(&r, a), 0);
  CHECKF(strstr(r.out, "\"queue\":\"clistats\",\"scheduled\":1,\"ready\":1,\"in_flight\":0"),
         "%s", r.out);
  /* All queues: one line each; a broken one is reported with its exit
   * code, the others still print. */
  const char *all[] = {"--json", "stats", NULL};
  CHECK_EQ_INT(run_cli(&r, all), 4);
  CHECK(strstr(r.out, "\"error\":\"EWRONGTYPE\"") != NULL);
  CHECK(strstr(r.out, "\"queue\":\"clistats\"") != NULL);
  const char *del[] = {"DEL", "rx:{cliwt}:z", NULL};
  free(rxt_cmd(&srv, del));
  CHECK_EQ_INT(run_cli(&r, all), 0);
  CHECK(strstr(r.out, "\"queue\":\"clistats\"") != NULL);
  CHECK(strstr(r.out, "\"queue\":\"cli\"") != NULL);
  const char *txt[] = {"stats", "clistats", NULL};
  CHECK_EQ_INT(run_cli(&r, txt), 0);
  CHECK(strstr(r.out, "scheduled 1") != NULL);
}

static void test_dead_commands(void) {
  rx_queue *q = qnew("clidead");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_schedule(q, "D1", 2, "dp1", 3, 0, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_schedule(q, "D2", 2, "dp2", 3, 0, 0, NULL, 0, NULL, NULL), 0);
  size_t n;
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(rx_queue_fail(q, rx_queue_job(q, 0)->token, "bad \"one\"", 9), 0);
  CHECK_EQ_INT(rx_queue_fail(q, rx_queue_job(q, 1)->token, "bad two", 7), 0);
  CHECK_EQ_INT(rx_queue_dead_list(q, NULL, 10, &n), 0);
  char tok[RX_QUEUE_TOKEN_SIZE];
  strcpy(tok, rx_queue_dead(q, 0)->token);
  run r;
  const char *l[] = {"--json", "dead", "list", "clidead", NULL};
  CHECK_EQ_INT(run_cli(&r, l), 0);
  CHECKF(strstr(r.out, "\"id\":\"D1\",\"payload\":\"dp1\"") != NULL, "%s", r.out);
  CHECK(strstr(r.out, "\"error\":\"bad \\\"one\\\"\"") != NULL);
  const char *lt[] = {"dead", "list", "clidead", NULL};
  CHECK_EQ_INT(run_cli(&r, lt), 0);
  CHECK(strstr(r.out, "bad two") != NULL);
  const char *rq[] = {"--json", "dead", "requeue", "clidead", tok, NULL};
  CHECK_EQ_INT(run_cli(&r, rq), 0);
  CHECK(strstr(r.out, "\"requeued\":1") != NULL);
  CHECK_EQ_INT(run_cli(&r, rq), 1); /* gone now */
  const char *pa[] = {"dead", "purge", "clidead", "--all", NULL};
  CHECK_EQ_INT(run_cli(&r, pa), 0);
  CHECK(strstr(r.out, "1 dead letter purged") != NULL);
  const char *bad[] = {"dead", "purge", "clidead", NULL};
  CHECK_EQ_INT(run_cli(&r, bad), 2);
  CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
  CHECK_MEM(rx_queue_job(q, 0)->id, 2, "D1", 2);
  CHECK_EQ_INT(rx_queue_ack(q, rx_queue_job(q, 0)->token), 0);
  rx_queue_free(q);
}

static void test_tail(void) {
  run r;
  const char *a[] = {"--json", "tail", "clitail", "--count", "2", "--timeout", "5000", NULL};
  CHECK_EQ_INT(run_start(&r, a, NULL, 0), 0);
  rxt_sleep_ms(500);
  rx_queue *q = qnew("clitail");
  CHECK(q);
  CHECK_EQ_INT(rx_queue_schedule(q, "T1", 2, "tail me", 7, 0, 0, NULL, 0, NULL, NULL), 0);
  CHECK_EQ_INT(rx_queue_schedule(q, "T2", 2, "\x01\x02", 2, 100, 0, NULL, 0, NULL, NULL), 0);
  size_t got = 0, n;
  while (got < 2) {
    CHECK_EQ_INT(rx_queue_fetch(q, 10, 2000, NULL, &n), 0);
    got += n;
    CHECK_EQ_INT(rx_queue_ack_jobs(q, rx_queue_job(q, 0), n, NULL), 0);
  }
  CHECK_EQ_INT(run_wait(&r, 10000), 0);
  CHECKF(strstr(r.out, "\"id\":\"T1\",\"payload\":\"tail me\"") != NULL, "%s", r.out);
  CHECKF(strstr(r.out, "\"id\":\"T2\",\"payload\":\"\\u0001\\u0002\"") != NULL, "%s", r.out);
  /* Tail consumed nothing: the consumer got both (checked above). */
  rx_queue_free(q);
  /* With nothing delivered, --timeout ends it with 0. */
  const char *b[] = {"tail", "clitail", "--timeout", "300", NULL};
  long long t = rxt_ms();
  CHECK_EQ_INT(run_cli(&r, b), 0);
  CHECK(rxt_ms() - t < 3000);
}

static void test_events(void) {
  run r;
  const char *a[] = {"--json", "events", "--enable", "KEA", "--count", "1", "--timeout", "5000",
                     NULL};
  CHECK_EQ_INT(run_start(&r, a, NULL, 0), 0);
  /* Keep writing until the subscriber is surely listening (it prints). */
  for (int i = 0; i < 40; i++) {
    const char *set[] = {"SET", "evkey", "v", NULL};
    free(rxt_cmd(&srv, set));
    struct pollfd p = {r.out_fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) break;
  }
  CHECK_EQ_INT(run_wait(&r, 6000), 0);
  CHECKF(strstr(r.out, "\"event\":\"set\"") != NULL, "%s", r.out);
  CHECK(strstr(r.out, "\"key\":\"evkey\"") != NULL);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *env = getenv("RX_CLI");
  if (env && *env) {
    snprintf(cli, sizeof cli, "%s", env);
  } else {
    char self[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(cli, sizeof cli, "%s/../reactis", self);
  }
  if (access(cli, X_OK) != 0) {
    fprintf(stderr, "the reactis binary is not at %s (build it, or set RX_CLI)\n", cli);
    return 1;
  }
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  RUN(test_help_and_usage);
  RUN(test_schedule_cancel_codes);
  RUN(test_errors_codes);
  RUN(test_stats_json);
  RUN(test_dead_commands);
  RUN(test_tail);
  RUN(test_events);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
