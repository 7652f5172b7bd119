/* rxdrive — the C side of the benchmark harness (bench/run.sh).
 *
 * Unlike bench/queue_bench.c and bench/sub_bench.c, which start their own
 * redis-server and print prose, this driver works against the server the
 * harness started (--url), does one operation per invocation and speaks the
 * harness protocol: "READY" on stdout when set up, "RESULT {json}" at the
 * end, and (consume) one line "index due_ms recv_ms" per message in --out.
 *
 *   rxdrive produce --url U --queue Q --n N [--start MS --span MS | --delay MS]
 *                   [--batch B] [--payload BYTES]
 *   rxdrive consume --url U --queue Q --out FILE [--fetch 100]
 *                   (until SIGTERM/SIGINT; each fetch acks the jobs of the
 *                   one before, rx_queue_ack_fetch)
 *   rxdrive sub     --url U --channel C --n N     (READY, waits for "GO" on
 *                   stdin, then reads N messages as fast as it can)
 *   rxdrive pub     --url U --channel C --n N [--size 16]
 */
#include <reactis/queue.h>
#include <reactis/reactis.h>
#include <reactis/sub.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;
static rx_queue *the_q;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_term(int sig) {
  (void)sig;
  stop = 1;
  if (the_q) rx_queue_wakeup(the_q);
}

static const char *opt(int argc, char **argv, const char *name, const char *def) {
  for (int i = 2; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return def;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "rxdrive: %s: %s\n", what, why);
  exit(1);
}

/* Payload "index:due_ms:" padded with 'x' to size bytes. */
static size_t make_payload(char *buf, size_t size, long i, long long due) {
  int k = snprintf(buf, size + 1, "%ld:%lld:", i, due);
  if (k < 0) k = 0;
  if ((size_t)k < size) memset(buf + k, 'x', size - (size_t)k);
  return (size_t)k > size ? (size_t)k : size;
}

static int produce(int argc, char **argv) {
  const char *url = opt(argc, argv, "--url", NULL), *name = opt(argc, argv, "--queue", "bench");
  long n = atol(opt(argc, argv, "--n", "1000"));
  long long start = atoll(opt(argc, argv, "--start", "0"));
  long long span = atoll(opt(argc, argv, "--span", "0"));
  long long delay = atoll(opt(argc, argv, "--delay", "0"));
  long batch = atol(opt(argc, argv, "--batch", "0"));
  size_t psize = (size_t)atol(opt(argc, argv, "--payload", "100"));
  char err[256], payload[4096];
  if (psize > 4000) psize = 4000;
  rx_queue *q = rx_queue_new(url, name, err, sizeof err);
  if (!q) die("rx_queue_new", err);
  rx_queue_stats st; /* connect (and check the server) before the clock starts */
  if (rx_queue_stats_get(q, &st) < 0) die("stats", rx_queue_errstr(q));
  printf("READY\n");
  fflush(stdout);
  double t0 = now_ms();
  for (long i = 0; i < n;) {
    long k = batch > 0 ? batch : 1;
    for (long j = 0; j < k && i < n; j++, i++) {
      long long due = start ? start + (long long)((double)i * (double)span / (double)n) : 0;
      long long when = start ? due : delay;
      size_t len = make_payload(payload, psize, i, start ? due : 0);
      int flags = start ? RX_SCHED_AT : 0;
      int rc = batch > 0 ? rx_queue_batch_add(q, NULL, 0, payload, len, when, flags)
                         : rx_queue_schedule(q, NULL, 0, payload, len, when, flags, NULL, 0,
                                             NULL, NULL);
      if (rc) die("schedule", rx_queue_errstr(q));
    }
    if (batch > 0 && rx_queue_batch_send(q)) die("batch_send", rx_queue_errstr(q));
  }
  double s = (now_ms() - t0) / 1e3;
  printf("RESULT {\"n\": %ld, \"seconds\": %.6f, \"rate\": %.1f}\n", n, s, n / s);
  rx_queue_free(q);
  return 0;
}

static int consume(int argc, char **argv) {
  const char *url = opt(argc, argv, "--url", NULL), *name = opt(argc, argv, "--queue", "bench");
  const char *out = opt(argc, argv, "--out", "/dev/null");
  size_t fetch = (size_t)atol(opt(argc, argv, "--fetch", "100"));
  char err[256];
  FILE *f = fopen(out, "w");
  if (!f) die("open", out);
  setvbuf(f, NULL, _IOFBF, 1 << 16);
  rx_queue *q = rx_queue_new(url, name, err, sizeof err);
  if (!q) die("rx_queue_new", err);
  the_q = q;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  rx_queue_stats st;
  if (rx_queue_stats_get(q, &st) < 0) die("stats", rx_queue_errstr(q));
  printf("READY\n");
  fflush(stdout);
  long got = 0;
  size_t done = 0; /* handled jobs of the last fetch, acked by the next one */
  while (!stop) {
    size_t n = 0;
    int rc = rx_queue_ack_fetch(q, rx_queue_job(q, 0), done, NULL, fetch, 1000, NULL, &n);
    done = 0;
    if (rc < 0) die("fetch", rx_queue_errstr(q));
    if (rc) continue;
    double recv = now_ms();
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      long idx = atol(j->payload);
      const char *c = memchr(j->payload, ':', j->payload_len);
      long long due = c ? atoll(c + 1) : 0;
      fprintf(f, "%ld %lld %.3f\n", idx, due ? due : j->due_ms, recv);
    }
    done = n;
    got += (long)n;
    fflush(f);
  }
  if (done && rx_queue_ack_jobs(q, rx_queue_job(q, 0), done, NULL)) die("ack", rx_queue_errstr(q));
  fclose(f);
  printf("RESULT {\"count\": %ld}\n", got);
  the_q = NULL;
  rx_queue_free(q);
  return 0;
}

static int sub(int argc, char **argv) {
  const char *url = opt(argc, argv, "--url", NULL), *ch = opt(argc, argv, "--channel", "bench");
  long n = atol(opt(argc, argv, "--n", "100000"));
  char err[256], line[64];
  rx_sub *s = rx_sub_new(url, err, sizeof err);
  if (!s) die("rx_sub_new", err);
  rx_sub_set(s, "health_check_interval", "0");
  if (rx_sub_subscribe(s, ch, strlen(ch))) die("subscribe", rx_sub_errstr(s));
  printf("READY\n");
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 1;
  rx_event evs[256];
  long got = 0;
  double t0 = now_ms();
  while (got < n) {
    size_t k = 0;
    if (rx_sub_next_batch(s, 5000, evs, 256, &k) != RX_OK) break;
    got += (long)k;
  }
  double s_ = (now_ms() - t0) / 1e3;
  printf("RESULT {\"n\": %ld, \"seconds\": %.6f, \"rate\": %.1f}\n", got, s_, got / s_);
  rx_sub_free(s);
  return got == n ? 0 : 1;
}

static int pub(int argc, char **argv) {
  const char *url = opt(argc, argv, "--url", NULL), *ch = opt(argc, argv, "--channel", "bench");
  long n = atol(opt(argc, argv, "--n", "100000"));
  size_t size = (size_t)atol(opt(argc, argv, "--size", "16"));
  char err[256], msg[256];
  if (size > 200) size = 200;
  rx_conn *c = rx_conn_new(url, err, sizeof err);
  if (!c) die("rx_conn_new", err);
  long sent = 0, delivered = 0;
  double t0 = now_ms();
  while (sent < n) {
    long chunk = n - sent > 10000 ? 10000 : n - sent;
    for (long i = 0; i < chunk; i++) {
      snprintf(msg, sizeof msg, "%0*ld", (int)size, sent + i);
      const char *a[3] = {"PUBLISH", ch, msg};
      size_t l[3] = {7, strlen(ch), size};
      if (rx_conn_append(c, 3, a, l)) die("publish", rx_conn_errstr(c));
    }
    for (long i = 0; i < chunk; i++) {
      rx_reply *r;
      if (rx_conn_get_reply(c, &r)) die("publish", rx_conn_errstr(c));
      delivered += r->integer;
      rx_reply_free(r);
    }
    sent += chunk;
  }
  double s = (now_ms() - t0) / 1e3;
  printf("RESULT {\"n\": %ld, \"delivered\": %ld, \"seconds\": %.6f}\n", sent, delivered, s);
  rx_conn_free(c);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2 || !opt(argc, argv, "--url", NULL)) {
    fprintf(stderr, "usage: rxdrive produce|consume|sub|pub --url URL ...\n");
    return 2;
  }
  if (!strcmp(argv[1], "produce")) return produce(argc, argv);
  if (!strcmp(argv[1], "consume")) return consume(argc, argv);
  if (!strcmp(argv[1], "sub")) return sub(argc, argv);
  if (!strcmp(argv[1], "pub")) return pub(argc, argv);
  fprintf(stderr, "rxdrive: unknown operation %s\n", argv[1]);
  return 2;
}
