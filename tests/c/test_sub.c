/* The subscriber against real redis-server processes: round trips, patterns,
 * shard channels, binary names, unsubscribe, batches, a server restarted
 * mid-subscription (resubscribe + gap event), a server SIGSTOPped (health
 * check), wakeups from another thread and EINTR. */
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_server srv;
static rx_conn *pub;

static rx_sub *new_sub(const char *url) {
  char err[256];
  rx_sub *s = rx_sub_new(url, err, sizeof err);
  if (!s) fprintf(stderr, "rx_sub_new: %s\n", err);
  return s;
}

static void publish(const char *ch, size_t chl, const char *msg, size_t ml) {
  long long n;
  if (rx_conn_publish(pub, ch, chl, msg, ml, &n) != RX_OK)
    fprintf(stderr, "publish failed: %s\n", rx_conn_errstr(pub));
}

static void test_roundtrip(void) {
  rx_sub *s = new_sub(srv.url);
  CHECK(s);
  rx_event ev;
  CHECK_EQ_INT(rx_sub_next(s, 0, &ev), RX_ESTATE); /* nothing subscribed yet */
  CHECK_EQ_INT(rx_sub_subscribe(s, "news", 4), RX_OK);
  CHECK_EQ_INT(rx_sub_psubscribe(s, "chat:*", 6), RX_OK);
  /* Sharded pub/sub came with Redis 7.0: before, SSUBSCRIBE is refused
   * with the server's words, and the subscriber goes on without it. */
  int sharded = rxt_server_major(&srv) >= 7;
  if (sharded) {
    CHECK_EQ_INT(rx_sub_ssubscribe(s, "shard\0x", 7), RX_OK);
  } else {
    CHECK_EQ_INT(rx_sub_ssubscribe(s, "shard\0x", 7), RX_EREPLY);
    CHECKF(strstr(rx_sub_errstr(s), "SSUBSCRIBE") != NULL, "%s", rx_sub_errstr(s));
  }
  CHECK_EQ_INT(rx_sub_count(s), sharded ? 3 : 2);
  CHECK(rx_sub_is_connected(s));
  CHECK(rx_sub_fd(s) >= 0);
  publish("news", 4, "hello", 5);
  publish("chat:room\xff", 10, "b\0in", 4);
  const char *sp[3] = {"SPUBLISH", "shard\0x", "sharded"};
  size_t spl[3] = {8, 7, 7};
  if (sharded) CHECK_EQ_INT(rx_conn_call(pub, NULL, 3, sp, spl), RX_OK);
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
  CHECK_EQ_INT(ev.kind, RX_EV_MESSAGE);
  CHECK_MEM(ev.channel, ev.channel_len, "news", 4);
  CHECK_MEM(ev.data, ev.data_len, "hello", 5);
  CHECK(ev.pattern == NULL);
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
  CHECK_EQ_INT(ev.kind, RX_EV_PMESSAGE);
  CHECK_MEM(ev.pattern, ev.pattern_len, "chat:*", 6);
  CHECK_MEM(ev.channel, ev.channel_len, "chat:room\xff", 10);
  CHECK_MEM(ev.data, ev.data_len, "b\0in", 4);
  if (sharded) {
    CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
    CHECK_EQ_INT(ev.kind, RX_EV_SMESSAGE);
    CHECK_MEM(ev.channel, ev.channel_len, "shard\0x", 7);
    CHECK_MEM(ev.data, ev.data_len, "sharded", 7);
  }
  long long t0 = rxt_ms();
  CHECK_EQ_INT(rx_sub_next(s, 200, &ev), RX_TIMEOUT);
  CHECK(rxt_ms() - t0 >= 190);
  /* Unsubscribe: nothing more from that channel. */
  CHECK_EQ_INT(rx_sub_unsubscribe(s, "news", 4), RX_OK);
  CHECK_EQ_INT(rx_sub_count(s), sharded ? 2 : 1);
  publish("news", 4, "ignored", 7);
  publish("chat:x", 6, "kept", 4);
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
  CHECK_MEM(ev.data, ev.data_len, "kept", 4);
  CHECK_EQ_INT(rx_sub_punsubscribe(s, NULL, 0), RX_OK);
  CHECK_EQ_INT(rx_sub_sunsubscribe(s, NULL, 0), RX_OK);
  CHECK_EQ_INT(rx_sub_count(s), 0);
  CHECK_EQ_INT(rx_sub_next(s, 100, &ev), RX_ESTATE);
  rx_sub_free(s);
  rx_sub_free(NULL);
}

static void test_batch(void) {
  rx_sub *s = new_sub(srv.url);
  CHECK_EQ_INT(rx_sub_subscribe(s, "b", 1), RX_OK);
  char msg[16];
  for (int i = 0; i < 500; i++) {
    snprintf(msg, sizeof msg, "%d", i);
    const char *argv[3] = {"PUBLISH", "b", msg};
    CHECK_EQ_INT(rx_conn_append(pub, 3, argv, NULL), RX_OK);
  }
  rx_reply *r;
  for (int i = 0; i < 500; i++) {
    CHECK_EQ_INT(rx_conn_get_reply(pub, &r), RX_OK);
    rx_reply_free(r);
  }
  rx_event evs[64];
  size_t n, total = 0;
  int batches = 0;
  while (total < 500) {
    CHECK_EQ_INT(rx_sub_next_batch(s, 2000, evs, 64, &n), RX_OK);
    CHECK(n >= 1 && n <= 64);
    for (size_t i = 0; i < n; i++) {
      snprintf(msg, sizeof msg, "%zu", total + i);
      CHECK_MEM(evs[i].data, evs[i].data_len, msg, strlen(msg));
    }
    total += n;
    batches++;
  }
  CHECK_EQ_INT(total, 500);
  CHECKF(batches < 100, "%d batches for 500 messages", batches);
  rx_sub_free(s);
}

/* Payload i of test_in_place: its index, then bytes that look like RESP
 * framing (CRLF, "$", "*", NUL) so a parser that trusts content breaks. */
static size_t in_place_payload(int i, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "%d:", i);
  size_t len = i % 50 == 7 ? 100000 : (size_t)(i % 3000); /* some exceed a read */
  for (size_t k = 0; n < cap && k < len; k++) buf[n++] = "\r\n$*\0x"[(k + (size_t)i) % 6];
  return n;
}

/* Messages read in place from the input buffer: long ones spanning many
 * reads, binary ones, all three kinds interleaved with other frames; and the
 * events of one batch stay valid while the subscriber reads more (a batch
 * larger than the input buffer, then a subscribe that reads messages into
 * the queue) until the next call. */
static void test_in_place(void) {
  rx_sub *s = new_sub(srv.url);
  CHECK_EQ_INT(rx_sub_subscribe(s, "ip", 2), RX_OK);
  CHECK_EQ_INT(rx_sub_psubscribe(s, "ip*", 3), RX_OK);
  static char buf[110000], want[110000];
  enum { N = 300 };
  for (int i = 0; i < N; i++) {
    size_t n = in_place_payload(i, buf, sizeof buf);
    const char *argv[3] = {"PUBLISH", "ip", buf};
    size_t lens[3] = {7, 2, n};
    CHECK_EQ_INT(rx_conn_append(pub, 3, argv, lens), RX_OK);
  }
  rx_reply *r;
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(rx_conn_get_reply(pub, &r), RX_OK);
    rx_reply_free(r);
  }
  /* Each message comes twice: from the channel and from the pattern. */
  static rx_event evs[2 * N];
  size_t n = 0, total = 0;
  CHECK_EQ_INT(rx_sub_next_batch(s, 2000, evs, 2 * N, &n), RX_OK);
  total = n;
  CHECKF(total >= 2, "first batch: %zu events", total);
  /* Reading more (subscribing waits for a confirmation, queueing the
   * messages that come first) must not move the bytes evs points to. */
  CHECK_EQ_INT(rx_sub_subscribe(s, "other", 5), RX_OK);
  for (size_t i = 0; i < total; i++) {
    int idx = (int)(i / 2);
    size_t wl = in_place_payload(idx, want, sizeof want);
    CHECK_EQ_INT(evs[i].kind, i % 2 ? RX_EV_PMESSAGE : RX_EV_MESSAGE);
    CHECK_MEM(evs[i].channel, evs[i].channel_len, "ip", 2);
    CHECK_MEM(evs[i].data, evs[i].data_len, want, wl);
    CHECK(evs[i].data[evs[i].data_len] == '\0' && evs[i].channel[evs[i].channel_len] == '\0');
    if (i % 2) CHECK_MEM(evs[i].pattern, evs[i].pattern_len, "ip*", 3);
  }
  while (total < 2 * N) {
    rx_event ev;
    CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
    size_t wl = in_place_payload((int)(total / 2), want, sizeof want);
    CHECK_MEM(ev.data, ev.data_len, want, wl);
    CHECK_EQ_INT(ev.kind, total % 2 ? RX_EV_PMESSAGE : RX_EV_MESSAGE);
    total++;
  }
  /* A shard message read in place too (Redis 7.0). */
  if (rxt_server_major(&srv) < 7) {
    rx_sub_free(s);
    return;
  }
  const char *sp[3] = {"SPUBLISH", "ip", "s"};
  CHECK_EQ_INT(rx_sub_ssubscribe(s, "ip", 2), RX_OK);
  CHECK_EQ_INT(rx_conn_call(pub, NULL, 3, sp, NULL), RX_OK);
  rx_event ev;
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
  CHECK_EQ_INT(ev.kind, RX_EV_SMESSAGE);
  CHECK_MEM(ev.data, ev.data_len, "s", 1);
  CHECK_EQ_INT(rx_sub_next(s, 100, &ev), RX_TIMEOUT);
  rx_sub_free(s);
}

/* A subscription the server refuses (here NOPERM: the ACL allows the
 * channels "ok:*" only) is not kept: not counted, not replayed after a
 * reconnect, where it would be refused again; the others go on. */
static void test_refused_not_kept(void) {
  const char *mk[] = {"ACL", "SETUSER", "narrow", "on", ">pw", "~*", "resetchannels", "&ok:*",
                      "+@all", NULL};
  char *r = rxt_cmd(&srv, mk);
  CHECK(r && strcmp(r, "+OK\r\n") == 0);
  free(r);
  char url[800];
  snprintf(url, sizeof url, "redis://narrow:pw@127.0.0.1:%d?reconnect_min=0.05", srv.port);
  rx_sub *s = new_sub(url);
  CHECK(s);
  /* The first one, on a new link, and one on a live link. */
  CHECK_EQ_INT(rx_sub_subscribe(s, "no:1", 4), RX_ENOPERM);
  CHECK(strstr(rx_sub_errstr(s), "refused") != NULL);
  CHECK_EQ_INT(rx_sub_count(s), 0);
  CHECK_EQ_INT(rx_sub_subscribe(s, "ok:1", 4), RX_OK);
  CHECK_EQ_INT(rx_sub_psubscribe(s, "no:*", 4), RX_ENOPERM);
  CHECK_EQ_INT(rx_sub_count(s), 1);
  /* The link drops: only ok:1 comes back, without an error. */
  const char *kill[] = {"CLIENT", "KILL", "USER", "narrow", NULL};
  free(rxt_cmd(&srv, kill));
  rx_event ev;
  CHECKF(rx_sub_next(s, 5000, &ev) == RX_OK, "%s", rx_sub_errstr(s));
  CHECK_EQ_INT(ev.kind, RX_EV_GAP);
  publish("ok:1", 4, "after", 5);
  CHECKF(rx_sub_next(s, 2000, &ev) == RX_OK, "%s", rx_sub_errstr(s));
  CHECK_MEM(ev.data, ev.data_len, "after", 5);
  CHECK_EQ_INT(rx_sub_count(s), 1);
  rx_sub_free(s);
}

static void test_restart_gap(void) {
  rxt_server s;
  CHECK(rxt_server_start(&s, NULL) == 0);
  char url[800];
  snprintf(url, sizeof url, "%s?reconnect_min=0.05&reconnect_max=0.3", s.url);
  rx_sub *sub = new_sub(url);
  rx_conn *p = rx_conn_new(s.url, NULL, 0);
  CHECK_EQ_INT(rx_sub_subscribe(sub, "ch", 2), RX_OK);
  CHECK_EQ_INT(rx_sub_psubscribe(sub, "p:*", 3), RX_OK);
  CHECK_EQ_INT(rx_conn_publish(p, "ch", 2, "before", 6, NULL), RX_OK);
  rx_event ev;
  CHECK_EQ_INT(rx_sub_next(sub, 2000, &ev), RX_OK);
  CHECK_MEM(ev.data, ev.data_len, "before", 6);
  long long before = rx_now_ms();
  rxt_server_kill(&s);
  /* While the server is down the subscriber keeps trying: timeouts only. */
  CHECK_EQ_INT(rx_sub_next(sub, 500, &ev), RX_TIMEOUT);
  CHECK(!rx_sub_is_connected(sub));
  CHECK(rxt_server_restart(&s) == 0);
  CHECK_EQ_INT(rx_sub_next(sub, 5000, &ev), RX_OK);
  CHECK_EQ_INT(ev.kind, RX_EV_GAP);
  CHECK(ev.gap_start_ms >= before - 1000 && ev.gap_start_ms <= ev.gap_end_ms);
  CHECK(ev.gap_end_ms <= rx_now_ms());
  CHECK(ev.reconnects >= 1);
  CHECK(rx_sub_is_connected(sub));
  /* Every subscription is back: all later messages arrive. */
  rx_conn_close(p);
  for (int i = 0; i < 100; i++) {
    char m[16];
    snprintf(m, sizeof m, "%d", i);
    CHECK_EQ_INT(rx_conn_publish(p, i % 2 ? "ch" : "p:x", i % 2 ? 2 : 3, m, strlen(m), NULL), RX_OK);
  }
  for (int i = 0; i < 100; i++) {
    char m[16];
    snprintf(m, sizeof m, "%d", i);
    CHECK_EQ_INT(rx_sub_next(sub, 2000, &ev), RX_OK);
    CHECK_EQ_INT(ev.kind, i % 2 ? RX_EV_MESSAGE : RX_EV_PMESSAGE);
    CHECK_MEM(ev.data, ev.data_len, m, strlen(m));
  }
  rx_conn_free(p);
  rx_sub_free(sub);
  rxt_server_cleanup(&s);
}

static void test_health_check(void) {
  rxt_server s;
  CHECK(rxt_server_start(&s, NULL) == 0);
  char url[800];
  snprintf(url, sizeof url,
           "%s?health_check_interval=0.5&health_check_timeout=0.5&timeout=0.5&reconnect_min=0.05&reconnect_max=0.2",
           s.url);
  rx_sub *sub = new_sub(url);
  CHECK_EQ_INT(rx_sub_subscribe(sub, "hc", 2), RX_OK);
  rx_event ev;
  /* Healthy and idle: PINGs are answered, no gap, no message. */
  CHECK_EQ_INT(rx_sub_next(sub, 1500, &ev), RX_TIMEOUT);
  CHECK(rx_sub_is_connected(sub));
  /* The server hangs with its socket open: the health check notices within
   * interval + deadline (1 s), well before any TCP timeout would. */
  rxt_server_pause(&s);
  long long t0 = rxt_ms();
  while (rx_sub_is_connected(sub) && rxt_ms() - t0 < 5000) rx_sub_next(sub, 100, &ev);
  long long took = rxt_ms() - t0;
  CHECKF(!rx_sub_is_connected(sub), "still connected after %lld ms", took);
  CHECKF(took <= 1600, "detected after %lld ms", took);
  CHECK_EQ_INT(rx_sub_err(sub), RX_ETIMEDOUT);
  rxt_server_resume(&s);
  CHECK_EQ_INT(rx_sub_next(sub, 5000, &ev), RX_OK);
  CHECK_EQ_INT(ev.kind, RX_EV_GAP);
  rx_conn *p = rx_conn_new(s.url, NULL, 0);
  CHECK_EQ_INT(rx_conn_publish(p, "hc", 2, "after", 5, NULL), RX_OK);
  CHECK_EQ_INT(rx_sub_next(sub, 2000, &ev), RX_OK);
  CHECK_MEM(ev.data, ev.data_len, "after", 5);
  rx_conn_free(p);
  rx_sub_free(sub);
  rxt_server_cleanup(&s);
}

static void *wake_later(void *arg) {
  rxt_sleep_ms(200);
  rx_sub_wakeup(arg);
  return NULL;
}

static void on_alarm(int sig) { (void)sig; }

static void test_wakeup_eintr(void) {
  rx_sub *s = new_sub(srv.url);
  CHECK_EQ_INT(rx_sub_subscribe(s, "w", 1), RX_OK);
  rx_event ev;
  pthread_t t;
  pthread_create(&t, NULL, wake_later, s);
  long long t0 = rxt_ms();
  int rc = rx_sub_next(s, -1, &ev);
  long long took = rxt_ms() - t0;
  pthread_join(t, NULL);
  CHECK_EQ_INT(rc, RX_WOKEN);
  CHECKF(took < 700, "took %lld ms", took);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval itv = {{0, 0}, {0, 200000}};
  setitimer(ITIMER_REAL, &itv, NULL);
  t0 = rxt_ms();
  rc = rx_sub_next(s, 5000, &ev);
  took = rxt_ms() - t0;
  CHECK_EQ_INT(rc, RX_EINTR);
  CHECKF(took < 700, "took %lld ms", took);
  /* Still subscribed and working after both. */
  publish("w", 1, "ok", 2);
  CHECK_EQ_INT(rx_sub_next(s, 2000, &ev), RX_OK);
  CHECK_MEM(ev.data, ev.data_len, "ok", 2);
  rx_sub_free(s);
}

static void test_errors(void) {
  rxt_server s;
  const char *args[] = {"--requirepass", "pw1", NULL};
  CHECK(rxt_server_start(&s, args) == 0);
  char url[800];
  snprintf(url, sizeof url, "redis://:bad@127.0.0.1:%d", s.port);
  rx_sub *sub = new_sub(url);
  CHECK_EQ_INT(rx_sub_subscribe(sub, "x", 1), RX_EAUTH);
  CHECK(strstr(rx_sub_errstr(sub), "bad") == NULL || strstr(rx_sub_errstr(sub), ":bad@") == NULL);
  rx_event ev;
  CHECK_EQ_INT(rx_sub_next(sub, 500, &ev), RX_EAUTH); /* permanent: reported, not looped on */
  rx_sub_free(sub);
  sub = new_sub(s.url); /* no password */
  CHECK_EQ_INT(rx_sub_subscribe(sub, "x", 1), RX_EAUTH);
  rx_sub_free(sub);
  rxt_server_cleanup(&s);
  /* Nobody listening, with a cap on attempts. */
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?reconnect_max_attempts=2&reconnect_min=0.01",
           rxt_free_port());
  sub = new_sub(url);
  CHECK_EQ_INT(rx_sub_subscribe(sub, "x", 1), RX_ECONNECT);
  CHECK_EQ_INT(rx_sub_count(sub), 1); /* still wanted */
  int rc = rx_sub_next(sub, 2000, &ev);
  CHECK_EQ_INT(rc, RX_ECONNECT);
  rx_sub_free(sub);
  CHECK(rx_sub_new("redis://host:notaport", NULL, 0) == NULL);
  CHECK_EQ_INT(rx_sub_next(NULL, 0, &ev), RX_EINVAL);
}

int main(void) {
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  pub = rx_conn_new(srv.url, NULL, 0);
  RUN(test_roundtrip);
  RUN(test_batch);
  RUN(test_in_place);
  RUN(test_refused_not_kept);
  RUN(test_restart_gap);
  RUN(test_health_check);
  RUN(test_wakeup_eintr);
  RUN(test_errors);
  rx_conn_free(pub);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
