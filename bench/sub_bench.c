/* sub_bench — how fast the subscriber reads, beside raw hiredis.
 *
 * (a) drain: N 16-byte messages are published while the subscriber is not
 *     reading (the server buffers them: its pubsub output-buffer limit is
 *     lifted for the run), then the subscriber reads them all as fast as it
 *     can. Reported: messages per second from the first read to the last.
 *     The peer is a plain hiredis loop (redisGetReply + freeReplyObject),
 *     the fastest C client we know; both read the same server, in turn.
 * (b) live: a pipelined publisher at full speed in another process while the
 *     subscriber reads; reported: messages per second received and the
 *     number lost (published with a receiver count of 1 but never read).
 *
 *   sub_bench [--messages N] [--runs R]      (defaults 1000000 and 5)
 * Medians of R runs with min and max. Starts its own redis-server. */
#include <hiredis/hiredis.h>
#include <reactis/reactis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rx_private.h"
#include "server.h"

static rxt_server srv;
static long nmsg = 1000000;

static double now_s(void) { return rxt_ms() / 1000.0; }

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *label, double *v, int n, const char *unit) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("  %-34s median %12.0f %s   (min %.0f, max %.0f, %d runs)\n", label, v[n / 2], unit,
         v[0], v[n - 1], n);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

/* Publishes nmsg messages on "bench" in pipelined chunks. */
static int publish_all(const char *channel, long count) {
  rx_conn *p = rx_conn_new(srv.url, NULL, 0);
  char msg[24];
  rx_reply *r;
  long sent = 0, delivered = 0;
  while (sent < count) {
    long chunk = count - sent > 10000 ? 10000 : count - sent;
    for (long i = 0; i < chunk; i++) {
      snprintf(msg, sizeof msg, "%016ld", sent + i);
      const char *argv[3] = {"PUBLISH", channel, msg};
      size_t lens[3] = {7, strlen(channel), 16};
      if (rx_conn_append(p, 3, argv, lens) != RX_OK) goto fail;
    }
    for (long i = 0; i < chunk; i++) {
      if (rx_conn_get_reply(p, &r) != RX_OK) goto fail;
      delivered += r->integer;
      rx_reply_free(r);
    }
    sent += chunk;
  }
  rx_conn_free(p);
  return (int)(delivered == count ? 0 : -1);
fail:
  fprintf(stderr, "publisher: %s\n", rx_conn_errstr(p));
  rx_conn_free(p);
  return -1;
}

static double drain_reactis(void) {
  rx_sub *s = rx_sub_new(srv.url, NULL, 0);
  rx_sub_set(s, "health_check_interval", "0");
  if (rx_sub_subscribe(s, "bench", 5) != RX_OK) return -1;
  if (publish_all("bench", nmsg) != 0) return -1;
  rx_event evs[256];
  size_t n;
  long got = 0;
  double t0 = now_s();
  while (got < nmsg) {
    if (rx_sub_next_batch(s, 5000, evs, 256, &n) != RX_OK) break;
    got += (long)n;
  }
  double t = now_s() - t0;
  rx_sub_free(s);
  return got == nmsg ? got / t : -1;
}

static double drain_hiredis(void) {
  redisContext *c = redisConnect("127.0.0.1", srv.port);
  if (!c || c->err) return -1;
  redisReply *r = redisCommand(c, "SUBSCRIBE bench");
  freeReplyObject(r);
  if (publish_all("bench", nmsg) != 0) return -1;
  long got = 0;
  double t0 = now_s();
  void *rep;
  while (got < nmsg && redisGetReply(c, &rep) == REDIS_OK) {
    freeReplyObject(rep);
    got++;
  }
  double t = now_s() - t0;
  redisFree(c);
  return got == nmsg ? got / t : -1;
}

/* Live: a child publishes at full speed while we read. */
static double live_reactis(long *lost) {
  rx_sub *s = rx_sub_new(srv.url, NULL, 0);
  rx_sub_set(s, "health_check_interval", "0");
  if (rx_sub_subscribe(s, "live", 4) != RX_OK) return -1;
  pid_t pid = fork();
  if (pid == 0) _exit(publish_all("live", nmsg) == 0 ? 0 : 1);
  rx_event evs[256];
  size_t n;
  long got = 0;
  double t0 = now_s();
  while (got < nmsg) {
    if (rx_sub_next_batch(s, 3000, evs, 256, &n) != RX_OK) break;
    got += (long)n;
  }
  double t = now_s() - t0;
  int st;
  waitpid(pid, &st, 0);
  rx_sub_free(s);
  *lost = nmsg - got;
  return got / t;
}

int main(int argc, char **argv) {
  int runs = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--messages") && i + 1 < argc) nmsg = atol(argv[++i]);
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: sub_bench [--messages N] [--runs R]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 50 || nmsg < 1000) return 2;
  const char *args[] = {"--client-output-buffer-limit", "pubsub 0 0 0", NULL};
  if (rxt_server_start(&srv, args) != 0) return 1;
  char *ver = rxt_cmd(&srv, (const char *const[]){"INFO", "server", NULL});
  const char *v = ver ? strstr(ver, "redis_version:") : NULL;
  printf("sub_bench: %ld messages of 16 bytes, %d runs; reactis %s, hiredis %d.%d.%d, redis %.*s\n",
         nmsg, runs, rx_version(), HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
         v ? (int)strcspn(v + 14, "\r\n") : 1, v ? v + 14 : "?");
  free(ver);
  double *a = calloc((size_t)runs, sizeof *a), *b = calloc((size_t)runs, sizeof *b);
  double *ra = calloc((size_t)runs, sizeof *ra);
  /* Alternate the two so neither gets a warmer machine. */
  for (int i = 0; i < runs; i++) {
    a[i] = drain_reactis();
    b[i] = drain_hiredis();
    ra[i] = a[i] / b[i];
  }
  printf("(a) drain, messages/s\n");
  report("reactis rx_sub_next_batch", a, runs, "msg/s");
  report("hiredis redisGetReply loop", b, runs, "msg/s");
  printf("  ratio reactis/hiredis: median %.2f\n", median(ra, runs));
  printf("(b) live: pipelined publisher at full speed in another process\n");
  long lost_total = 0;
  for (int i = 0; i < runs; i++) {
    long lost = 0;
    a[i] = live_reactis(&lost);
    lost_total += lost;
  }
  report("reactis received", a, runs, "msg/s");
  printf("  lost: %ld of %ld published with a receiver\n", lost_total, nmsg * runs);
  free(a);
  free(b);
  free(ra);
  rxt_server_cleanup(&srv);
  return 0;
}
