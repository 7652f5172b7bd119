/* Network faults between the client and redis-server, made by a TCP proxy
 * the test runs on loopback (tests/chaos/proxy.c): a black-holed link (the
 * half-open case), connections reset, delays, the server disconnecting a
 * slow subscriber (output-buffer limit), and CLIENT KILL. In each case the
 * subscriber notices, reconnects, resubscribes, reports the gap, and the
 * messages published afterwards arrive. Bounded: about 20 s in all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_server srv;
static rx_conn *pub;

static rx_sub *sub_via(rxt_proxy *p, const char *extra) {
  char url[300];
  snprintf(url, sizeof url,
           "redis://127.0.0.1:%d?health_check_interval=0.5&health_check_timeout=0.5&timeout=0.5"
           "&connect_timeout=0.5&reconnect_min=0.05&reconnect_max=0.2%s",
           rxt_proxy_port(p), extra ? extra : "");
  rx_sub *s = rx_sub_new(url, NULL, 0);
  return s;
}

/* Waits for a gap event, then checks that a fresh message arrives. */
static int gap_then_message(rx_sub *s, const char *ch, int max_ms) {
  long long until = rxt_ms() + max_ms;
  rx_event ev;
  int gap = 0;
  while (!gap && rxt_ms() < until) {
    int rc = rx_sub_next(s, 200, &ev);
    if (rc == RX_OK && ev.kind == RX_EV_GAP) gap = 1;
  }
  if (!gap) return -1;
  char msg[32];
  snprintf(msg, sizeof msg, "after-%lld", rxt_ms());
  if (rx_conn_publish(pub, ch, strlen(ch), msg, strlen(msg), NULL) != RX_OK) return -2;
  while (rxt_ms() < until + 2000) {
    int rc = rx_sub_next(s, 200, &ev);
    if (rc == RX_OK && ev.kind != RX_EV_GAP && ev.data_len == strlen(msg) &&
        !memcmp(ev.data, msg, ev.data_len))
      return 0;
  }
  return -3;
}

static void test_blackhole(void) {
  rxt_proxy *p = rxt_proxy_start(srv.port);
  CHECK(p);
  rx_sub *s = sub_via(p, NULL);
  CHECK_EQ_INT(rx_sub_subscribe(s, "bh", 2), RX_OK);
  rxt_proxy_mode(p, PROXY_BLACKHOLE, 0);
  long long t0 = rxt_ms();
  rx_event ev;
  while (rx_sub_is_connected(s) && rxt_ms() - t0 < 5000) rx_sub_next(s, 100, &ev);
  long long took = rxt_ms() - t0;
  CHECKF(!rx_sub_is_connected(s), "half-open link not detected in %lld ms", took);
  CHECKF(took <= 1700, "detected after %lld ms (interval 0.5 s + deadline 0.5 s)", took);
  /* Still black-holed: reconnects reach the proxy but get no answer. */
  long before = rxt_proxy_connections(p);
  for (int i = 0; i < 10; i++) rx_sub_next(s, 100, &ev);
  CHECK(!rx_sub_is_connected(s));
  rxt_proxy_mode(p, PROXY_PASS, 0);
  CHECK_EQ_INT(gap_then_message(s, "bh", 5000), 0);
  CHECK(rxt_proxy_connections(p) > before);
  rx_sub_free(s);
  rxt_proxy_stop(p);
}

static void test_reset(void) {
  rxt_proxy *p = rxt_proxy_start(srv.port);
  rx_sub *s = sub_via(p, NULL);
  CHECK_EQ_INT(rx_sub_subscribe(s, "rst", 3), RX_OK);
  rxt_proxy_mode(p, PROXY_DROP, 0);
  rx_event ev;
  long long t0 = rxt_ms();
  while (rx_sub_is_connected(s) && rxt_ms() - t0 < 3000) rx_sub_next(s, 100, &ev);
  CHECKF(rxt_ms() - t0 < 1000, "reset noticed after %lld ms", rxt_ms() - t0);
  for (int i = 0; i < 5; i++) CHECK(rx_sub_next(s, 100, &ev) == RX_TIMEOUT);
  rxt_proxy_mode(p, PROXY_PASS, 0);
  CHECK_EQ_INT(gap_then_message(s, "rst", 5000), 0);
  rx_sub_free(s);
  rxt_proxy_stop(p);
}

static void test_delay(void) {
  /* 150 ms each way is slow, not dead: no false health-check failure. */
  rxt_proxy *p = rxt_proxy_start(srv.port);
  char url[300];
  snprintf(url, sizeof url,
           "redis://127.0.0.1:%d?health_check_interval=0.3&health_check_timeout=1&timeout=2",
           rxt_proxy_port(p));
  rx_sub *s = rx_sub_new(url, NULL, 0);
  rxt_proxy_mode(p, PROXY_DELAY, 150);
  CHECK_EQ_INT(rx_sub_subscribe(s, "slow", 4), RX_OK);
  rx_event ev;
  for (int i = 0; i < 10; i++) {
    int rc = rx_sub_next(s, 200, &ev);
    CHECK(rc == RX_TIMEOUT);
  }
  CHECK(rx_sub_is_connected(s));
  CHECK_EQ_INT(rx_conn_publish(pub, "slow", 4, "late", 4, NULL), RX_OK);
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
  CHECK_EQ_INT(ev.kind, RX_EV_MESSAGE);
  CHECK_MEM(ev.data, ev.data_len, "late", 4);
  rx_sub_free(s);
  rxt_proxy_stop(p);
}

static void test_slow_subscriber(void) {
  /* The server drops a subscriber whose output buffer passes 256 kB. */
  rxt_server s;
  const char *args[] = {"--client-output-buffer-limit", "pubsub 256kb 0 0", NULL};
  CHECK(rxt_server_start(&s, args) == 0);
  char url[800];
  snprintf(url, sizeof url, "%s?reconnect_min=0.05&reconnect_max=0.2", s.url);
  rx_sub *sub = rx_sub_new(url, NULL, 0);
  rx_conn *p = rx_conn_new(s.url, NULL, 0);
  CHECK_EQ_INT(rx_sub_subscribe(sub, "flood", 5), RX_OK);
  static char big[4096];
  memset(big, 'f', sizeof big);
  /* 40 MB while the subscriber does not read: far past the limit. */
  for (int i = 0; i < 10000; i++) {
    const char *argv[3] = {"PUBLISH", "flood", big};
    size_t lens[3] = {7, 5, sizeof big};
    CHECK_EQ_INT(rx_conn_append(p, 3, argv, lens), RX_OK);
    if (i % 500 == 499) {
      rx_reply *r;
      for (int k = 0; k < 500; k++) {
        CHECK_EQ_INT(rx_conn_get_reply(p, &r), RX_OK);
        rx_reply_free(r);
      }
    }
  }
  /* Redis 7.0 has no counter for this; its log says it. */
  char logpath[700], line[1024];
  snprintf(logpath, sizeof logpath, "%s/redis.log", s.dir);
  FILE *lf = fopen(logpath, "r");
  int closed = 0;
  while (lf && fgets(line, sizeof line, lf))
    if (strstr(line, "output buffer limits")) closed = 1;
  if (lf) fclose(lf);
  CHECK(closed);
  /* The subscriber reads what had reached it, then learns of the gap. */
  long long until = rxt_ms() + 10000;
  int gap = 0;
  long got = 0;
  rx_event ev;
  while (!gap && rxt_ms() < until) {
    int rc = rx_sub_next(sub, 500, &ev);
    if (rc != RX_OK) continue;
    if (ev.kind == RX_EV_GAP) gap = 1;
    else got++;
  }
  CHECK(gap);
  CHECKF(got < 10000, "got %ld of 10000: the limit did not apply?", got);
  CHECK_EQ_INT(rx_conn_publish(p, "flood", 5, "fresh", 5, NULL), RX_OK);
  CHECK_EQ_INT(rx_sub_next(sub, 2000, &ev), RX_OK);
  CHECK_MEM(ev.data, ev.data_len, "fresh", 5);
  rx_conn_free(p);
  rx_sub_free(sub);
  rxt_server_cleanup(&s);
}

static void test_client_kill(void) {
  char url[800];
  snprintf(url, sizeof url, "%s?client_name=victim&reconnect_min=0.05", srv.url);
  rx_sub *s = rx_sub_new(url, NULL, 0);
  CHECK_EQ_INT(rx_sub_subscribe(s, "ck", 2), RX_OK);
  rx_reply *r = NULL;
  /* CLIENT KILL by name needs 7.0's filters: use the id from CLIENT LIST. */
  const char *list[2] = {"CLIENT", "LIST"};
  CHECK_EQ_INT(rx_conn_call(pub, &r, 2, list, NULL), RX_OK);
  const char *line = strstr(r->str, "name=victim");
  CHECK(line);
  const char *id = line;
  while (id > r->str && id[-1] != '\n') id--;
  CHECK(!strncmp(id, "id=", 3));
  char idbuf[32];
  snprintf(idbuf, sizeof idbuf, "%.*s", (int)strcspn(id + 3, " "), id + 3);
  rx_reply_free(r);
  const char *kill[4] = {"CLIENT", "KILL", "ID", idbuf};
  CHECK_EQ_INT(rx_conn_call(pub, NULL, 4, kill, NULL), RX_OK);
  CHECK_EQ_INT(gap_then_message(s, "ck", 5000), 0);
  rx_sub_free(s);
}

static void test_conn_blackhole(void) {
  rxt_proxy *p = rxt_proxy_start(srv.port);
  char url[200];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout=0.5", rxt_proxy_port(p));
  rx_conn *c = rx_conn_new(url, NULL, 0);
  const char *ping[1] = {"PING"};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_OK);
  rxt_proxy_mode(p, PROXY_BLACKHOLE, 0);
  long long t0 = rxt_ms();
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_ETIMEDOUT);
  CHECK(rxt_ms() - t0 < 1500);
  rxt_proxy_mode(p, PROXY_PASS, 0);
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_OK);
  rx_conn_free(c);
  rxt_proxy_stop(p);
}

int main(void) {
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  pub = rx_conn_new(srv.url, NULL, 0);
  RUN(test_blackhole);
  RUN(test_reset);
  RUN(test_delay);
  RUN(test_slow_subscriber);
  RUN(test_client_kill);
  RUN(test_conn_blackhole);
  rx_conn_free(pub);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
