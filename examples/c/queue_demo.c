/* queue_demo — the delayed-message proof of concept, made reliable.
 *
 * A producer schedules an SMS for a SELLER (correlation key AAA) in 2 s and
 * one for a PUDO operator (BBB) in 4 s. No worker runs while they fall due
 * (with the keyspace-notification recipe both would be lost). A worker then
 * starts at 5 s and receives both, in due order, and acks them.
 *
 *   queue_demo [redis-url]      (default: $REDIS_URL, else redis://127.0.0.1:6379) */
#define _POSIX_C_SOURCE 200809L
#include <reactis/reactis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
  if (!url || !*url) url = "redis://127.0.0.1:6379";
  char err[256], qname[64];
  snprintf(qname, sizeof qname, "demo-sms-%lld", rx_now_ms() % 1000000);
  rx_queue *q = rx_queue_new(url, qname, err, sizeof err);
  if (!q) {
    fprintf(stderr, "queue: %s\n", err);
    return 2;
  }
  struct { const char *channel, *key; long long delay; } msgs[2] = {
      {"SELLER", "AAA", 2000}, {"PUDO_OPERATOR", "BBB", 4000}};
  for (int i = 0; i < 2; i++) {
    int outcome = 0;
    long long due = 0;
    int rc = rx_queue_schedule(q, msgs[i].key, strlen(msgs[i].key), msgs[i].channel,
                               strlen(msgs[i].channel), msgs[i].delay, 0, NULL, 0, &outcome, &due);
    if (rc != RX_OK) {
      fprintf(stderr, "schedule: %s (%s)\n", rx_queue_errstr(q), rx_errname(rc));
      rx_queue_free(q);
      return 1;
    }
    printf("scheduled: channel %s, c_key %s, due in %lld ms\n", msgs[i].channel, msgs[i].key,
           msgs[i].delay);
  }
  printf("no worker is running while both fall due...\n");
  fflush(stdout);
  struct timespec ts = {5, 0};
  nanosleep(&ts, NULL);
  printf("worker started (5 s later)\n");
  int got = 0;
  while (got < 2) {
    size_t n = 0;
    int rc = rx_queue_fetch(q, 10, 3000, NULL, &n);
    if (rc == RX_TIMEOUT) break;
    if (rc != RX_OK) {
      fprintf(stderr, "fetch: %s (%s)\n", rx_queue_errstr(q), rx_errname(rc));
      break;
    }
    for (size_t i = 0; i < n; i++) {
      const rx_job *j = rx_queue_job(q, i);
      printf("Received. channel: %.*s, c_key: %.*s (it fell due %lld ms before the worker took it)\n",
             (int)j->payload_len, j->payload, (int)j->id_len, j->id,
             j->delivered_ms - j->due_ms);
      if (rx_queue_ack(q, j->token) == RX_OK) got++;
    }
  }
  printf("%d of 2 delivered after the worker was offline at their due time\n", got);
  rx_queue_stats st;
  if (rx_queue_stats_get(q, &st) == RX_OK)
    printf("queue %s now: %lld scheduled, %lld ready, %lld in flight, %lld dead\n", qname,
           st.scheduled, st.ready, st.in_flight, st.dead);
  rx_queue_free(q);
  return got == 2 ? 0 : 1;
}
