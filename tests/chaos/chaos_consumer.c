/* chaos_consumer — one queue worker process for tests/chaos/test_queue_chaos.c,
 * which starts several of them and kills them with SIGKILL at random.
 *
 *   chaos_consumer URL QUEUE LOGFILE VISIBILITY_MS MAX_SECONDS PARENT_PID
 *
 * It fetches deliveries and, for each batch, first appends one line per
 * delivery to LOGFILE (O_APPEND, one write(2) per batch, no stdio buffer, so
 * what was written survives a SIGKILL of this process), then acks them:
 *
 *   D <id> <delivered_ms> <due_ms> <attempt> <crashes> <token> <payload_ok>
 *   A <token> <wall_ms>     the ack of this delivery was confirmed (0)
 *   X <token> <wall_ms>     the ack came back RX_ESTALE: it may or may not
 *                           have been this call that acked it (ambiguous)
 *   E <code> <message>      a call failed (the next loop goes on)
 *
 * Between the record and the ack it sleeps 1..8 ms, as a handler would.
 * An ack that fails with a connection error (the server was killed, CLIENT
 * KILL) is kept and sent again on the next loop, as a careful worker does.
 * The process ends by itself: on SIGTERM (after settling what it holds, if
 * it can), after MAX_SECONDS, or when PARENT_PID is no longer its parent. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "reactis/reactis.h"

static volatile sig_atomic_t g_stop;
static rx_queue *g_q;

static void on_term(int sig) {
  (void)sig;
  g_stop = 1;
  if (g_q) rx_queue_wakeup(g_q); /* async-signal-safe: a write to a pipe */
}

static int g_log = -1;

/* Appends buf to the log in one write (retried on a short write). */
static void log_write(const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(g_log, buf + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(5);
    }
    off += (size_t)n;
  }
}

static void log_error(int rc, const char *msg) {
  char line[400];
  int n = snprintf(line, sizeof line, "E %d %.300s\n", rc, msg);
  for (int i = 2; i < n - 1; i++)
    if (line[i] == '\n') line[i] = ' ';
  log_write(line, (size_t)n);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Tokens delivered and recorded, whose ack is not settled yet. */
enum { MAX_BATCH = 32 };
static char g_unacked[MAX_BATCH][RX_QUEUE_TOKEN_SIZE];
static size_t g_nunacked;

/* Tries to ack what is held. 0 when nothing is held afterwards. */
static int settle(rx_queue *q) {
  if (!g_nunacked) return 0;
  char toks[MAX_BATCH * RX_QUEUE_TOKEN_SIZE];
  size_t len = 0;
  for (size_t i = 0; i < g_nunacked; i++) {
    size_t l = strlen(g_unacked[i]);
    memcpy(toks + len, g_unacked[i], l);
    len += l;
    toks[len++] = ' ';
  }
  size_t acked = 0;
  int rc = rx_queue_ack_many(q, toks, len, &acked);
  if (rc != RX_OK && rc != RX_ESTALE) {
    log_error(rc, rx_queue_errstr(q));
    return -1; /* kept: sent again on the next loop */
  }
  long long now = rx_now_ms();
  char out[MAX_BATCH * (RX_QUEUE_TOKEN_SIZE + 32)];
  size_t ol = 0;
  for (size_t i = 0; i < g_nunacked; i++)
    ol += (size_t)snprintf(out + ol, sizeof out - ol, "%c %s %lld\n", rc == RX_OK ? 'A' : 'X',
                           g_unacked[i], now);
  log_write(out, ol);
  g_nunacked = 0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s URL QUEUE LOGFILE VISIBILITY_MS MAX_SECONDS PARENT_PID\n",
            argv[0]);
    return 2;
  }
  /* Die with the test whatever kills it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  pid_t parent = (pid_t)atol(argv[6]);
  if (getppid() != parent) return 3;
  long long end = rx_monotonic_ms() + atoll(argv[5]) * 1000;

  g_log = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (g_log < 0) {
    perror(argv[3]);
    return 4;
  }
  char err[256];
  rx_queue *q = rx_queue_new(argv[1], argv[2], err, sizeof err);
  if (!q) {
    log_error(RX_EINVAL, err);
    return 4;
  }
  if (rx_queue_set(q, "visibility_timeout_ms", argv[4]) != RX_OK ||
      rx_queue_set(q, "max_attempts", "1000") != RX_OK ||
      rx_queue_set(q, "timeout", "2") != RX_OK ||
      rx_queue_set(q, "connect_timeout", "1") != RX_OK) {
    log_error(rx_queue_err(q), rx_queue_errstr(q));
    rx_queue_free(q);
    return 4;
  }
  g_q = q;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  unsigned seed = (unsigned)getpid() ^ (unsigned)rx_now_ms();
  char line[MAX_BATCH * (RX_QUEUE_ID_MAX + RX_QUEUE_TOKEN_SIZE + 96)];
  while (!g_stop && rx_monotonic_ms() < end && getppid() == parent) {
    if (settle(q) != 0) {
      sleep_ms(50); /* the server is down or restarting */
      continue;
    }
    size_t n = 0;
    int rc = rx_queue_fetch(q, MAX_BATCH, 500, NULL, &n);
    if (rc == RX_TIMEOUT || rc == RX_WOKEN || rc == RX_EINTR) continue;
    if (rc != RX_OK) {
      log_error(rc, rx_queue_errstr(q));
      sleep_ms(50);
      continue;
    }
    /* Record first (one write), then ack. */
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      int ok = j->payload_len == j->id_len + 2 && !memcmp(j->payload, "p:", 2) &&
               !memcmp(j->payload + 2, j->id, j->id_len);
      len += (size_t)snprintf(line + len, sizeof line - len, "D %.*s %lld %lld %d %d %s %d\n",
                              (int)j->id_len, j->id, j->delivered_ms, j->due_ms, j->attempt,
                              j->crashes, j->token, ok);
      memcpy(g_unacked[g_nunacked++], j->token, RX_QUEUE_TOKEN_SIZE);
    }
    log_write(line, len);
    /* The "handler": 1..8 ms per batch, so that kills also land between
     * the record and the ack (the window that makes duplicates). */
    sleep_ms(1 + (int)(rand_r(&seed) % 8));
    settle(q);
  }
  /* Stopping: settle what is held, a few tries at most. */
  for (int i = 0; i < 20 && g_nunacked; i++)
    if (settle(q) != 0) sleep_ms(50);
  g_q = NULL;
  rx_queue_free(q);
  close(g_log);
  return 0;
}
