/* test_notify.c — rx_notify_ensure against real servers, and real keyspace
 * notifications parsed by rx_keyspace_parse. The checks on the server side
 * use raw sockets (tests/support), not the code under test. */
#include "reactis/reactis.h"
#include "server.h"
#include "test.h"

#include <unistd.h>

static rxt_server srv; /* a plain server shared by most tests */

/* The server knows Redis 7.0's letters (n, d) and counts CONFIG SET on its
 * own in INFO commandstats. scripts/test.sh also runs this file on Redis
 * 6.2, where the tests that need those are skipped (said on stderr). */
static int redis7;
#define NEEDS_REDIS7()                                                       \
  do {                                                                       \
    if (!redis7) {                                                           \
      fprintf(stderr, "  (skipped: needs Redis 7.0)\n");                     \
      return;                                                                \
    }                                                                        \
  } while (0)

/* ------------------------------------------------------------ helpers */

/* The value of a flat one-value reply ("+OK", "$3 abc"), malloc'd. */
static char *reply_value(char *raw) {
  const char *items[4];
  size_t lens[4];
  char *out = NULL;
  int n = raw ? rxt_resp_flat(raw, strlen(raw), items, lens, 4) : -1;
  if (n >= 1 && items[n - 1]) {
    out = malloc(lens[n - 1] + 1);
    if (out) {
      memcpy(out, items[n - 1], lens[n - 1]);
      out[lens[n - 1]] = '\0';
    }
  }
  free(raw);
  return out;
}

static int cfg_set(rxt_server *s, const char *value) {
  const char *av[] = {"CONFIG", "SET", "notify-keyspace-events", value, NULL};
  char *r = rxt_cmd(s, av);
  int ok = r && strcmp(r, "+OK\r\n") == 0;
  if (!ok) fprintf(stderr, "  CONFIG SET %s: %s\n", value, r ? r : "(no reply)");
  free(r);
  return ok ? 0 : -1;
}

/* CONFIG GET notify-keyspace-events, as a malloc'd string ("" on error). */
static char *cfg_get(rxt_server *s) {
  const char *av[] = {"CONFIG", "GET", "notify-keyspace-events", NULL};
  char *v = reply_value(rxt_cmd(s, av));
  return v ? v : calloc(1, 1);
}

/* How many times CONFIG SET ran on the server (INFO commandstats). */
static long long config_set_calls(rxt_server *s) {
  const char *av[] = {"INFO", "commandstats", NULL};
  char *info = rxt_cmd(s, av);
  const char *p = info ? strstr(info, "cmdstat_config|set:calls=") : NULL;
  long long n = p ? atoll(p + strlen("cmdstat_config|set:calls=")) : 0;
  free(info);
  return n;
}

static int same_set(const char *a, const char *b) {
  /* Flag strings equal as sets of letters. */
  for (const char *p = a; *p; p++)
    if (!strchr(b, *p)) return 0;
  for (const char *p = b; *p; p++)
    if (!strchr(a, *p)) return 0;
  return 1;
}

/* 1 if a real subscriber sees a "new" event when a key is created in db. */
static int sees_new_event(rxt_server *s, int db) {
  rxt_raw sub;
  char ch[64], key[64], db_s[16];
  const char *items[4];
  size_t lens[4];
  int seen = 0;
  static int seq;
  snprintf(ch, sizeof ch, "__keyevent@%d__:new", db);
  snprintf(key, sizeof key, "test:newprobe:%d:%d", (int)getpid(), ++seq);
  snprintf(db_s, sizeof db_s, "%d", db);
  if (rxt_raw_open(s, &sub) != 0) return -1;
  {
    const char *av[] = {"SUBSCRIBE", ch};
    if (rxt_raw_send(&sub, 2, av, NULL) != 0 || !rxt_raw_read(&sub, 5000, NULL)) goto fail;
  }
  {
    /* SELECT, SET, PUBLISH on one raw connection: in order. */
    rxt_raw w;
    const char *sel[] = {"SELECT", db_s};
    const char *set[] = {"SET", key, "1"};
    const char *pub[] = {"PUBLISH", ch, "sentinel"};
    const char *del[] = {"DEL", key};
    if (rxt_raw_open(s, &w) != 0) goto fail;
    rxt_raw_send(&w, 2, sel, NULL);
    rxt_raw_send(&w, 3, set, NULL);
    rxt_raw_send(&w, 3, pub, NULL);
    rxt_raw_send(&w, 2, del, NULL);
    for (int i = 0; i < 4; i++) rxt_raw_read(&w, 5000, NULL);
    rxt_raw_close(&w);
  }
  for (;;) {
    size_t len;
    const char *m = rxt_raw_read(&sub, 5000, &len);
    if (m == NULL) goto fail;
    if (rxt_resp_flat(m, len, items, lens, 4) != 3) continue;
    if (lens[2] == 8 && memcmp(items[2], "sentinel", 8) == 0) break;
    if (lens[2] == strlen(key) && memcmp(items[2], key, lens[2]) == 0) seen = 1;
  }
  rxt_raw_close(&sub);
  return seen;
fail:
  rxt_raw_close(&sub);
  return -1;
}

static rx_conn *conn_to(const char *url) {
  char err[256];
  rx_conn *c = rx_conn_new(url, err, sizeof err);
  if (!c) fprintf(stderr, "  rx_conn_new(%s): %s\n", url, err);
  return c;
}

static int probe_keys_left(rxt_server *s) {
  const char *av[] = {"KEYS", "reactis:probe*", NULL};
  char *r = rxt_cmd(s, av);
  int left = !(r && strcmp(r, "*0\r\n") == 0);
  free(r);
  return left;
}

/* ------------------------------------------------------------ merging */

static void test_merge_ex_kea(void) {
  rx_conn *c = conn_to(srv.url);
  char eff[64], *now;
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "Ex") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "KEA", eff, sizeof eff), RX_OK);
  now = cfg_get(&srv);
  CHECKF(strcmp(now, "AKE") == 0, "now %s", now);
  free(now);
  CHECK_STR(eff, "AKE"); /* Ex had no n, so none was added */
  CHECK(sees_new_event(&srv, 0) == 0);
  CHECK(!probe_keys_left(&srv));
  rx_conn_free(c);
}

static void test_merge_keeps_existing(void) {
  rx_conn *c = conn_to(srv.url);
  char eff[64], *now;
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "Kgl") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "Ex$", eff, sizeof eff), RX_OK);
  now = cfg_get(&srv);
  CHECKF(same_set(now, "g$lxKE"), "now %s", now);
  CHECK(same_set(eff, "g$lxKE"));
  free(now);
  /* Adding m (key miss, not part of A) to A. */
  CHECK(cfg_set(&srv, "AK") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "m", eff, sizeof eff), RX_OK);
  now = cfg_get(&srv);
  CHECKF(same_set(now, "AKm"), "now %s", now);
  free(now);
  rx_conn_free(c);
}

static void test_a_expansion_no_write(void) {
  NEEDS_REDIS7();
  rx_conn *c = conn_to(srv.url);
  char eff[64];
  long long before;
  CHECK(c != NULL);
  /* The server folds the letters into A; asking for any of them, or for A,
   * needs no write. */
  CHECK(cfg_set(&srv, "KEg$lshzxetd") == 0);
  before = config_set_calls(&srv);
  CHECK_EQ_INT(rx_notify_ensure(c, "Ex", eff, sizeof eff), RX_OK);
  CHECK_STR(eff, "AKE");
  CHECK_EQ_INT(rx_notify_ensure(c, "KEA", eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(rx_notify_ensure(c, "Ag$lshzxetdKE", eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(rx_notify_ensure(c, "", eff, sizeof eff), RX_OK);
  CHECK_STR(eff, "AKE");
  CHECK_EQ_INT(rx_notify_ensure(c, "K", NULL, 0), RX_OK);
  CHECK_EQ_INT(config_set_calls(&srv), before);
  /* A request that is not satisfied does write. */
  CHECK_EQ_INT(rx_notify_ensure(c, "m", eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(config_set_calls(&srv), before + 1);
  rx_conn_free(c);
}

static void test_a_requested_expands(void) {
  rx_conn *c = conn_to(srv.url);
  char eff[64], *now;
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "Kx") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "A", eff, sizeof eff), RX_OK);
  now = cfg_get(&srv);
  CHECKF(strcmp(now, "AK") == 0, "now %s", now);
  free(now);
  /* Off entirely, then everything. */
  CHECK(cfg_set(&srv, "") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "KEA", eff, sizeof eff), RX_OK);
  CHECK_STR(eff, "AKE");
  rx_conn_free(c);
}

/* ------------------------------------------------------------ n */

/* Redis 7.0 prints n only when it does not print A ("KEn" reads back as
 * "nKE", "AKEn" as "AKE"); newer servers may differ. Both cases must keep n. */
static void n_preserved(const char *start, const char *ask, const char *expect_set) {
  rx_conn *c = conn_to(srv.url);
  char eff[64], *now, want_n[64];
  long long before;
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, start) == 0);
  CHECK(sees_new_event(&srv, 0) == 1); /* the premise */
  before = config_set_calls(&srv);
  CHECK_EQ_INT(rx_notify_ensure(c, ask, eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(config_set_calls(&srv), before + 1);
  now = cfg_get(&srv);
  snprintf(want_n, sizeof want_n, "%sn", expect_set);
  CHECKF(same_set(now, expect_set) || same_set(now, want_n), "now %s", now);
  free(now);
  CHECKF(same_set(eff, want_n), "eff %s", eff);
  CHECK(sees_new_event(&srv, 0) == 1); /* the real proof */
  CHECK(!probe_keys_left(&srv));
  rx_conn_free(c);
}

static void test_n_preserved_keyevent(void) {
  NEEDS_REDIS7();
  n_preserved("KEn", "x", "xKE");   /* n visible in CONFIG GET */
  if (t__cur_failed) return;
  n_preserved("AKEn", "m", "AKEm"); /* n hidden behind A: the probe decides */
}

static void test_n_preserved_keyspace_only(void) {
  NEEDS_REDIS7();
  /* Only K: the probe listens on the probe key's keyspace channel. */
  rx_conn *c = conn_to(srv.url);
  char eff[64];
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "AKn") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "m", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "AKmn"), "eff %s", eff);
  /* Check n on the keyevent side through another ensure that adds E: it
   * must find n again (hidden behind A) and keep it. */
  CHECK_EQ_INT(rx_notify_ensure(c, "E", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "AKEmn"), "eff %s", eff);
  CHECK(sees_new_event(&srv, 0) == 1);
  rx_conn_free(c);
}

static void test_n_not_invented(void) {
  rx_conn *c = conn_to(srv.url);
  char eff[64];
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "KE") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "x", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "xKE"), "eff %s", eff);
  CHECK(sees_new_event(&srv, 0) == 0);
  CHECK(cfg_set(&srv, "AK") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "E", eff, sizeof eff), RX_OK);
  CHECKF(strcmp(eff, "AKE") == 0, "eff %s", eff);
  CHECK(sees_new_event(&srv, 0) == 0);
  rx_conn_free(c);
}

static void test_n_requested(void) {
  NEEDS_REDIS7();
  rx_conn *c = conn_to(srv.url);
  char eff[64];
  long long before;
  CHECK(c != NULL);
  /* Asked for and missing: written. */
  CHECK(cfg_set(&srv, "E$") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "En", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "$En"), "eff %s", eff);
  CHECK(sees_new_event(&srv, 0) == 1);
  /* Asked for and already on (visible): no write. */
  before = config_set_calls(&srv);
  CHECK_EQ_INT(rx_notify_ensure(c, "En", eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(config_set_calls(&srv), before);
  CHECKF(same_set(eff, "$En"), "eff %s", eff);
  /* Asked for and already on, hidden behind A: the probe sees it, no write. */
  CHECK(cfg_set(&srv, "AEn") == 0);
  before = config_set_calls(&srv);
  CHECK_EQ_INT(rx_notify_ensure(c, "En", eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(config_set_calls(&srv), before);
  CHECKF(strcmp(eff, "AEn") == 0, "eff %s", eff);
  /* Asked for, hidden behind A but off: written. */
  CHECK(cfg_set(&srv, "AE") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "n", eff, sizeof eff), RX_OK);
  CHECK_EQ_INT(config_set_calls(&srv), before + 2);
  CHECKF(strcmp(eff, "AEn") == 0, "eff %s", eff);
  CHECK(sees_new_event(&srv, 0) == 1);
  rx_conn_free(c);
}

static void test_n_in_other_db(void) {
  NEEDS_REDIS7();
  char url[800], eff[64];
  rx_conn *c;
  snprintf(url, sizeof url, "%s/3", srv.url);
  c = conn_to(url);
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "AKEn") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "m", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "AKEmn"), "eff %s", eff);
  CHECK(sees_new_event(&srv, 3) == 1);
  rx_conn_free(c);
}

static void test_n_after_select(void) {
  NEEDS_REDIS7();
  /* The application SELECTed another db than its URL names: the probe
   * still sees the new-key event there. */
  rx_conn *c = conn_to(srv.url);
  const char *sel[] = {"SELECT", "5"};
  rx_reply *r = NULL;
  char eff[64];
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, sel, NULL), RX_OK);
  rx_reply_free(r);
  CHECK(cfg_set(&srv, "AKEn") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "m", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "AKEmn"), "eff %s", eff);
  CHECK(sees_new_event(&srv, 5) == 1);
  CHECK(cfg_set(&srv, "AKn") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "E", eff, sizeof eff), RX_OK);
  CHECKF(same_set(eff, "AKEn"), "eff %s", eff);
  rx_conn_free(c);
}

/* ------------------------------------------------------------ errors */

static void test_unknown_flag(void) {
  rx_conn *c = conn_to(srv.url);
  char eff[64] = "junk";
  long long before = config_set_calls(&srv);
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_notify_ensure(c, "KEq", eff, sizeof eff), RX_EINVAL);
  CHECKF(strstr(rx_conn_errstr(c), "'q'") != NULL, "%s", rx_conn_errstr(c));
  CHECK_EQ_INT(rx_conn_err(c), RX_EINVAL);
  CHECK_STR(eff, "");
  CHECK_EQ_INT(rx_notify_ensure(c, "k", eff, sizeof eff), RX_EINVAL); /* case matters */
  CHECK_EQ_INT(rx_notify_ensure(c, "K\x01", eff, sizeof eff), RX_EINVAL);
  CHECKF(strstr(rx_conn_errstr(c), "0x01") != NULL, "%s", rx_conn_errstr(c));
  CHECK_EQ_INT(rx_notify_ensure(c, " ", eff, sizeof eff), RX_EINVAL);
  CHECK_EQ_INT(rx_notify_ensure(c, NULL, eff, sizeof eff), RX_EINVAL);
  CHECK_EQ_INT(rx_notify_ensure(NULL, "KEA", eff, sizeof eff), RX_EINVAL);
  CHECK_EQ_INT(config_set_calls(&srv), before);
  rx_conn_free(c);
}

static void test_small_effective_buffer(void) {
  rx_conn *c = conn_to(srv.url);
  char eff[3];
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "KEA") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "K", eff, sizeof eff), RX_OK);
  CHECK_STR(eff, "AK");
  CHECK_EQ_INT(rx_notify_ensure(c, "K", eff, 1), RX_OK);
  CHECK_STR(eff, "");
  rx_conn_free(c);
}

static void test_config_renamed(void) {
  rxt_server s;
  const char *args[] = {"--rename-command", "CONFIG", "", NULL};
  rx_conn *c;
  char eff[64];
  const char *msg;
  CHECK(rxt_server_start(&s, args) == 0);
  c = conn_to(s.url);
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_notify_ensure(c, "Ex", eff, sizeof eff), RX_ECONFIG);
  msg = rx_conn_errstr(c);
  CHECK_EQ_INT(rx_conn_err(c), RX_ECONFIG);
  /* A generic host: all three recipes, with the flags to set. */
  CHECKF(strstr(msg, "unknown command") != NULL, "%s", msg);
  CHECKF(strstr(msg, "notify-keyspace-events=xE") != NULL, "%s", msg);
  CHECKF(strstr(msg, "ElastiCache") != NULL, "%s", msg);
  CHECKF(strstr(msg, "Azure") != NULL, "%s", msg);
  CHECKF(strstr(msg, "heroku redis:keyspace-notifications -c xE") != NULL, "%s", msg);
  CHECK_STR(eff, "");
  /* The connection still works after the refusal. */
  {
    const char *ping[] = {"PING"};
    rx_reply *r = NULL;
    CHECK_EQ_INT(rx_conn_call(c, &r, 1, ping, NULL), RX_OK);
    CHECK(r && r->type == RX_REPLY_STATUS);
    rx_reply_free(r);
  }
  rx_conn_free(c);
  rxt_server_cleanup(&s);
}

/* The provider is recognised by the host name (or the TLS server name,
 * which lets us test it on loopback: verification is off). */
static void test_config_refused_guidance_by_host(void) {
  rxt_server s;
  const char *args[] = {"--rename-command", "CONFIG", "", NULL};
  static const struct {
    const char *name, *expect;
  } cases[] = {
      {"my-cache.abc123.0001.use1.cache.amazonaws.com", "parameter group"},
      {"master.my-cache.abc123.euw1.cache.amazonaws.com.", "ElastiCache"},
      {"myapp.redis.cache.windows.net", "Advanced settings"},
      {"ec2-3-91-12-34.compute-1.amazonaws.com", "heroku redis:keyspace-notifications -c KE"},
      {"ec2-3-91-12-34.eu-west-1.compute.amazonaws.com", "heroku redis:keyspace-notifications"},
  };
  CHECK(rxt_server_start_tls(&s, 0, args) == 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char url[1000];
    rx_conn *c;
    const char *msg;
    snprintf(url, sizeof url,
             "rediss://127.0.0.1:%d?ssl_cert_reqs=none&ssl_check_hostname=false&ssl_server_name=%s",
             s.tls_port, cases[i].name);
    c = conn_to(url);
    CHECK(c != NULL);
    CHECKF(rx_notify_ensure(c, "KE", NULL, 0) == RX_ECONFIG, "%s: %s", cases[i].name,
           rx_conn_errstr(c));
    msg = rx_conn_errstr(c);
    CHECKF(strstr(msg, cases[i].expect) != NULL, "%s: %s", cases[i].name, msg);
    /* Tailored: not the generic list of all three. */
    CHECKF(!(strstr(msg, "Azure") && strstr(msg, "ElastiCache")), "%s", msg);
    rx_conn_free(c);
  }
  rxt_server_cleanup(&s);
}

static void test_acl_without_config(void) {
  rxt_server s;
  char url[800], eff[64];
  rx_conn *c;
  const char *mk[] = {"ACL", "SETUSER", "app", "on", ">apppw", "~*", "&*", "+@all", "-config", NULL};
  const char *mk2[] = {"ACL", "SETUSER", "reader", "on", ">rpw", "~*", "&*", "+@all", "-config",
                       "+config|get", NULL};
  char *r;
  CHECK(rxt_server_start(&s, NULL) == 0);
  r = rxt_cmd(&s, mk);
  CHECK(r && strcmp(r, "+OK\r\n") == 0);
  free(r);
  r = rxt_cmd(&s, mk2);
  CHECK(r && strcmp(r, "+OK\r\n") == 0);
  free(r);
  CHECK(cfg_set(&s, "KEA") == 0);

  snprintf(url, sizeof url, "redis://app:apppw@127.0.0.1:%d", s.port);
  c = conn_to(url);
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_notify_ensure(c, "KEA", eff, sizeof eff), RX_ECONFIG);
  CHECKF(strstr(rx_conn_errstr(c), "NOPERM") != NULL, "%s", rx_conn_errstr(c));
  CHECKF(strstr(rx_conn_errstr(c), "heroku") != NULL, "%s", rx_conn_errstr(c));
  rx_conn_free(c);

  /* May read but not write: fine while nothing is missing. */
  snprintf(url, sizeof url, "redis://reader:rpw@127.0.0.1:%d", s.port);
  c = conn_to(url);
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_notify_ensure(c, "Ex", eff, sizeof eff), RX_OK);
  CHECK_STR(eff, "AKE");
  CHECK_EQ_INT(rx_notify_ensure(c, "KEm", eff, sizeof eff), RX_ECONFIG);
  CHECKF(strstr(rx_conn_errstr(c), "AKEm") != NULL, "%s", rx_conn_errstr(c));
  rx_conn_free(c);
  rxt_server_cleanup(&s);
}

static void test_probe_without_channel_permission(void) {
  /* A user who may not subscribe: the probe cannot decide, so n is kept
   * (never remove a flag) and the call still succeeds. */
  rxt_server s;
  char url[800], eff[64];
  rx_conn *c;
  const char *mk[] = {"ACL", "SETUSER", "nosub", "on", ">pw", "~*", "resetchannels", "+@all", NULL};
  char *r;
  CHECK(rxt_server_start(&s, NULL) == 0);
  r = rxt_cmd(&s, mk);
  CHECK(r && strcmp(r, "+OK\r\n") == 0);
  free(r);
  CHECK(cfg_set(&s, "KE") == 0);
  snprintf(url, sizeof url, "redis://nosub:pw@127.0.0.1:%d", s.port);
  c = conn_to(url);
  CHECK(c != NULL);
  CHECKF(rx_notify_ensure(c, "x", eff, sizeof eff) == RX_OK, "%s", rx_conn_errstr(c));
  /* Before 7.0 the server refuses the letter n, so it cannot be on: the
   * write goes again without it. */
  CHECKF(same_set(eff, redis7 ? "xKEn" : "xKE"), "eff %s", eff);
  rx_conn_free(c);
  rxt_server_cleanup(&s);
}

static void test_connection_error(void) {
  char url[64];
  rx_conn *c;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", rxt_free_port());
  c = conn_to(url);
  CHECK(c != NULL);
  CHECK(rx_notify_ensure(c, "KEA", NULL, 0) < 0);
  CHECK(rx_conn_err(c) < 0 && rx_conn_err(c) != RX_ECONFIG);
  rx_conn_free(c);
}

/* ------------------------------------------------------------ real events */

typedef struct seen {
  int space, db, type;
  char key[64];
} seen;

/* Reads pmessages until `want` events arrived or the time is up. */
static int collect(rxt_raw *sub, seen *out, int want, int timeout_ms) {
  long long deadline = rxt_ms() + timeout_ms;
  int n = 0;
  while (n < want) {
    const char *items[5];
    size_t lens[5], len;
    rx_key_event ev;
    long long left = deadline - rxt_ms();
    const char *m = left > 0 ? rxt_raw_read(sub, (int)left, &len) : NULL;
    if (m == NULL) break;
    if (rxt_resp_flat(m, len, items, lens, 5) != 4 || lens[0] != 8) continue;
    if (rx_keyspace_parse(items[2], lens[2], items[3], lens[3], &ev) != RX_OK) {
      fprintf(stderr, "  unparsed: %.*s\n", (int)lens[2], items[2]);
      return -1;
    }
    out[n].space = ev.space;
    out[n].db = ev.db;
    out[n].type = ev.type;
    snprintf(out[n].key, sizeof out[n].key, "%.*s", (int)ev.key_len, ev.key);
    n++;
  }
  return n;
}

static int has(const seen *s, int n, int space, int type, const char *key) {
  for (int i = 0; i < n; i++)
    if (s[i].space == space && s[i].type == type && strcmp(s[i].key, key) == 0) return 1;
  return 0;
}

static void test_real_notifications(void) {
  rx_conn *c = conn_to(srv.url);
  rxt_raw sub;
  seen ev[32];
  int n;
  CHECK(c != NULL);
  CHECK(cfg_set(&srv, "") == 0);
  CHECK_EQ_INT(rx_notify_ensure(c, "KEA", NULL, 0), RX_OK);
  CHECK(rxt_raw_open(&srv, &sub) == 0);
  {
    const char *av[] = {"PSUBSCRIBE", "__key*@0__:*"};
    CHECK(rxt_raw_send(&sub, 2, av, NULL) == 0);
    CHECK(rxt_raw_read(&sub, 5000, NULL) != NULL);
  }
  {
    const char *set[] = {"SET", "ev:a", "1"};
    const char *exp[] = {"EXPIRE", "ev:a", "100"};
    const char *del[] = {"DEL", "ev:a"};
    const char *setpx[] = {"SET", "ev:b", "1", "PX", "30"};
    rx_reply *r = NULL;
    CHECK_EQ_INT(rx_conn_call(c, &r, 3, set, NULL), RX_OK);
    rx_reply_free(r);
    CHECK_EQ_INT(rx_conn_call(c, &r, 3, exp, NULL), RX_OK);
    rx_reply_free(r);
    CHECK_EQ_INT(rx_conn_call(c, &r, 2, del, NULL), RX_OK);
    rx_reply_free(r);
    CHECK_EQ_INT(rx_conn_call(c, &r, 5, setpx, NULL), RX_OK);
    rx_reply_free(r);
  }
  /* set, expire, del on a: 6; set + expire on b (SET PX emits both): 4;
   * then expired on b: 2 (the active expiry cycle runs every 100 ms). */
  n = collect(&sub, ev, 12, 5000);
  CHECKF(n == 12, "got %d events", n);
  CHECK(has(ev, n, RX_SPACE_KEYSPACE, RX_KEV_SET, "ev:a"));
  CHECK(has(ev, n, RX_SPACE_KEYEVENT, RX_KEV_SET, "ev:a"));
  CHECK(has(ev, n, RX_SPACE_KEYSPACE, RX_KEV_EXPIRE, "ev:a"));
  CHECK(has(ev, n, RX_SPACE_KEYEVENT, RX_KEV_EXPIRE, "ev:a"));
  CHECK(has(ev, n, RX_SPACE_KEYSPACE, RX_KEV_DEL, "ev:a"));
  CHECK(has(ev, n, RX_SPACE_KEYEVENT, RX_KEV_DEL, "ev:a"));
  CHECK(has(ev, n, RX_SPACE_KEYSPACE, RX_KEV_EXPIRED, "ev:b"));
  CHECK(has(ev, n, RX_SPACE_KEYEVENT, RX_KEV_EXPIRED, "ev:b"));
  for (int i = 0; i < n; i++) CHECK_EQ_INT(ev[i].db, 0);
  rxt_raw_close(&sub);
  rx_conn_free(c);
}

static void test_real_binary_key(void) {
  /* A key with NUL, 0xFF, ':' and '@' survives the trip through Redis. */
  static const char key[] = "bin\0\xff:@__:k";
  rx_conn *c = conn_to(srv.url);
  rxt_raw sub;
  const char *items[5];
  size_t lens[5], len;
  int got_space = 0, got_event = 0;
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_notify_ensure(c, "KE$", NULL, 0), RX_OK);
  CHECK(rxt_raw_open(&srv, &sub) == 0);
  {
    const char *av[] = {"PSUBSCRIBE", "__key*@0__:*"};
    CHECK(rxt_raw_send(&sub, 2, av, NULL) == 0);
    CHECK(rxt_raw_read(&sub, 5000, NULL) != NULL);
  }
  {
    const char *set[] = {"SET", key, "v"};
    size_t setl[] = {3, sizeof key - 1, 1};
    rx_reply *r = NULL;
    CHECK_EQ_INT(rx_conn_call(c, &r, 3, set, setl), RX_OK);
    rx_reply_free(r);
  }
  while (!(got_space && got_event)) {
    rx_key_event ev;
    const char *m = rxt_raw_read(&sub, 5000, &len);
    CHECK(m != NULL);
    if (rxt_resp_flat(m, len, items, lens, 5) != 4) continue;
    CHECK_EQ_INT(rx_keyspace_parse(items[2], lens[2], items[3], lens[3], &ev), RX_OK);
    if (ev.type != RX_KEV_SET) continue;
    CHECK_MEM(ev.key, ev.key_len, key, sizeof key - 1);
    if (ev.space == RX_SPACE_KEYSPACE) got_space = 1;
    if (ev.space == RX_SPACE_KEYEVENT) got_event = 1;
  }
  rxt_raw_close(&sub);
  rx_conn_free(c);
}

static void test_real_notifications_rx_sub(void) {
  /* The same through the library's own subscriber. */
  rx_conn *c = conn_to(srv.url);
  rx_sub *sub;
  char err[256];
  rx_event e;
  int got = 0;
  const char pat[] = "__keyevent@0__:*";
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_notify_ensure(c, "Eg$x", NULL, 0), RX_OK);
  sub = rx_sub_new(srv.url, err, sizeof err);
  CHECKF(sub != NULL, "%s", err);
  CHECKF(rx_sub_psubscribe(sub, pat, sizeof pat - 1) == RX_OK, "%s", rx_sub_errstr(sub));
  {
    const char *setpx[] = {"SET", "ev:sub", "1", "PX", "20"};
    rx_reply *r = NULL;
    CHECK_EQ_INT(rx_conn_call(c, &r, 5, setpx, NULL), RX_OK);
    rx_reply_free(r);
  }
  for (long long deadline = rxt_ms() + 5000; got != 7 && rxt_ms() < deadline;) {
    rx_key_event ev;
    int rc = rx_sub_next(sub, 500, &e);
    if (rc == RX_TIMEOUT) continue;
    CHECKF(rc == RX_OK, "%d %s", rc, rx_sub_errstr(sub));
    if (e.kind != RX_EV_PMESSAGE) continue;
    CHECK_EQ_INT(rx_keyspace_parse(e.channel, e.channel_len, e.data, e.data_len, &ev), RX_OK);
    CHECK_EQ_INT(ev.space, RX_SPACE_KEYEVENT);
    CHECK_MEM(ev.key, ev.key_len, "ev:sub", 6);
    if (ev.type == RX_KEV_SET) got |= 1;
    if (ev.type == RX_KEV_EXPIRE) got |= 2;
    if (ev.type == RX_KEV_EXPIRED) got |= 4;
  }
  CHECK_EQ_INT(got, 7);
  rx_sub_free(sub);
  rx_conn_free(c);
}

static void test_no_leftovers(void) {
  /* Probes leave no keys and no connections behind. */
  const char *av[] = {"INFO", "clients", NULL};
  long long deadline = rxt_ms() + 3000;
  int clients = -1;
  CHECK(!probe_keys_left(&srv));
  while (rxt_ms() < deadline) {
    char *info = rxt_cmd(&srv, av);
    const char *p = info ? strstr(info, "connected_clients:") : NULL;
    clients = p ? atoi(p + 18) : -1;
    free(info);
    if (clients == 1) break; /* our own INFO connection */
    rxt_sleep_ms(20);
  }
  if (clients != 1) {
    const char *cl[] = {"CLIENT", "LIST", NULL};
    char *r = rxt_cmd(&srv, cl);
    fprintf(stderr, "%s\n", r ? r : "?");
    free(r);
  }
  CHECK_EQ_INT(clients, 1);
}

int main(void) {
  if (rxt_server_start(&srv, NULL) != 0) return 1;
  {
    const char *av[] = {"CONFIG", "SET", "notify-keyspace-events", "n", NULL};
    char *r = rxt_cmd(&srv, av);
    redis7 = r && strcmp(r, "+OK\r\n") == 0;
    free(r);
    if (!redis7) fprintf(stderr, "(a server before Redis 7.0: its tests only)\n");
    if (cfg_set(&srv, "") != 0) return 1;
  }
  RUN(test_merge_ex_kea);
  RUN(test_merge_keeps_existing);
  RUN(test_a_expansion_no_write);
  RUN(test_a_requested_expands);
  RUN(test_n_preserved_keyevent);
  RUN(test_n_preserved_keyspace_only);
  RUN(test_n_not_invented);
  RUN(test_n_requested);
  RUN(test_n_in_other_db);
  RUN(test_n_after_select);
  RUN(test_unknown_flag);
  RUN(test_small_effective_buffer);
  RUN(test_config_renamed);
  RUN(test_config_refused_guidance_by_host);
  RUN(test_acl_without_config);
  RUN(test_probe_without_channel_permission);
  RUN(test_connection_error);
  RUN(test_real_notifications);
  RUN(test_real_binary_key);
  RUN(test_real_notifications_rx_sub);
  RUN(test_no_leftovers);
  rxt_server_cleanup(&srv);
  return TEST_REPORT();
}
