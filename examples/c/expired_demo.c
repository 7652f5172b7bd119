/* expired_demo — the classic "react when a key expires" recipe, done with
 * reactis: make sure notifications are on (without dropping flags someone
 * else set), subscribe to expired events in every database, set a few keys
 * with TTLs, and print each parsed event with how late it came.
 *
 *   expired_demo [redis-url]      (default: $REDIS_URL, else redis://127.0.0.1:6379)
 *
 * Remember what this shows: pub/sub is at-most-once, and `expired` fires when
 * Redis deletes the key, which can be long after its TTL on a busy server.
 * For work that must happen, use the queue (reactis schedule / rx_queue). */
#include <reactis/reactis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 5

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
  if (!url || !*url) url = "redis://127.0.0.1:6379";
  char err[256], where[256], flags[64];
  rx_conn *c = rx_conn_new(url, err, sizeof err);
  if (!c) {
    fprintf(stderr, "bad URL: %s\n", err);
    return 2;
  }
  printf("reactis %s, Redis at %s\n", rx_version(), rx_conn_describe(c, where, sizeof where));
  int rc = rx_notify_ensure(c, "Ex", flags, sizeof flags);
  if (rc == RX_ECONFIG) {
    printf("note: %s\n(continuing: the events arrive only if notifications are already on)\n",
           rx_conn_errstr(c));
  } else if (rc != RX_OK) {
    fprintf(stderr, "cannot reach Redis: %s (%s)\n", rx_conn_errstr(c), rx_errname(rc));
    rx_conn_free(c);
    return 1;
  } else {
    printf("notify-keyspace-events is now \"%s\"\n", flags);
  }

  rx_sub *s = rx_sub_new(url, err, sizeof err);
  if (!s || (rc = rx_sub_psubscribe(s, "__keyevent@*__:expired", 22)) != RX_OK) {
    fprintf(stderr, "subscribe failed: %s\n", s ? rx_sub_errstr(s) : err);
    rx_sub_free(s);
    rx_conn_free(c);
    return 1;
  }
  printf("subscribed to __keyevent@*__:expired\n");

  long long set_at[NKEYS], ttl[NKEYS];
  char key[NKEYS][64];
  long long run = rx_now_ms() % 100000;
  for (int i = 0; i < NKEYS; i++) {
    ttl[i] = 300 * (i + 1);
    snprintf(key[i], sizeof key[i], "demo:%lld:session:%d", run, i + 1);
    char px[32];
    snprintf(px, sizeof px, "%lld", ttl[i]);
    const char *set[5] = {"SET", key[i], "state", "PX", px};
    set_at[i] = rx_now_ms();
    if (rx_conn_call(c, NULL, 5, set, NULL) != RX_OK) {
      fprintf(stderr, "SET failed: %s\n", rx_conn_errstr(c));
      break;
    }
    printf("SET %s with a TTL of %lld ms\n", key[i], ttl[i]);
  }

  int seen = 0;
  long long give_up = rx_monotonic_ms() + 15000;
  while (seen < NKEYS && rx_monotonic_ms() < give_up) {
    rx_event ev;
    rc = rx_sub_next(s, 500, &ev);
    if (rc == RX_TIMEOUT) continue;
    if (rc != RX_OK) {
      fprintf(stderr, "subscriber: %s (%s)\n", rx_sub_errstr(s), rx_errname(rc));
      break;
    }
    if (ev.kind == RX_EV_GAP) {
      printf("reconnected: events between %lld and %lld may be lost\n", ev.gap_start_ms,
             ev.gap_end_ms);
      continue;
    }
    rx_key_event ke;
    if (rx_keyspace_parse(ev.channel, ev.channel_len, ev.data, ev.data_len, &ke) != RX_OK) continue;
    for (int i = 0; i < NKEYS; i++) {
      if (ke.key_len == strlen(key[i]) && !memcmp(ke.key, key[i], ke.key_len)) {
        long long late = rx_now_ms() - (set_at[i] + ttl[i]);
        printf("event: %.*s db=%d key=%.*s  (%lld ms after its TTL ran out)\n",
               (int)ke.event_len, ke.event, ke.db, (int)ke.key_len, ke.key, late);
        seen++;
      }
    }
  }
  printf("%d of %d expirations seen\n", seen, NKEYS);
  rx_sub_free(s);
  rx_conn_free(c);
  return seen == NKEYS ? 0 : 1;
}
