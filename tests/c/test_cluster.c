/* Redis Cluster against a real local cluster (3 masters + 3 replicas,
 * started here): the key slot against CLUSTER KEYSLOT, URL handling, a
 * standalone server refused clearly, routing 1,000 keys, ASK and MOVED
 * during a slot migration, keyspace events from every master at one
 * subscriber, a master killed and its replica promoted (commands go on, the
 * subscriber reports a gap and follows the new master), and sharded pub/sub
 * across slots, through a migration and through a failover. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_cluster cl;
static rxt_server standalone;
static rx_cluster *rc_; /* the cluster client most tests share */
static rx_sub *ks_sub;  /* keyspace subscriber, kept across the failover test */
static int cluster_up;

/* ------------------------------------------------------------ helpers */

static rx_reply *cmd(rx_cluster *c, int argc, const char *const *argv, const size_t *lens) {
  rx_reply *r = NULL;
  int rc = rx_cluster_command(c, &r, argc, argv, lens);
  if (rc != RX_OK) fprintf(stderr, "  rx_cluster_command %s: %s (%s)\n", argv[0], rx_errname(rc),
                           rx_cluster_errstr(c));
  return r;
}

static int set_px(rx_cluster *c, const char *key, size_t klen, const char *px) {
  const char *argv[5] = {"SET", key, "v", "PX", px};
  size_t lens[5] = {3, klen, 1, 2, px ? strlen(px) : 0};
  rx_reply *r = cmd(c, px ? 5 : 3, argv, lens);
  int ok = r && rx__reply_is(r, "OK");
  if (r && !ok)
    fprintf(stderr, "  SET reply type %d: %.*s\n", r->type, (int)r->len, r->str ? r->str : "");
  rx_reply_free(r);
  return ok;
}

/* GET key through the cluster client: 1 when it equals want. */
static int get_is(rx_cluster *c, const char *key, const char *want) {
  const char *argv[2] = {"GET", key};
  rx_reply *r = cmd(c, 2, argv, NULL);
  int ok = r && r->type == RX_REPLY_STRING && r->len == strlen(want) &&
           !memcmp(r->str, want, r->len);
  if (r && !ok)
    fprintf(stderr, "  GET %s: type %d %.*s\n", key, r->type, (int)r->len, r->str ? r->str : "");
  rx_reply_free(r);
  return ok;
}

static rx_sub *new_sub(const char *url) {
  char err[256];
  rx_sub *s = rx_sub_new(url, err, sizeof err);
  if (!s) fprintf(stderr, "  rx_sub_new: %s\n", err);
  return s;
}

/* The master node (index into the list) serving slot, from rx_cluster_nodes. */
static int master_of(rx_cluster_node *nodes, int n, int slot) {
  for (int i = 0; i < n; i++)
    for (size_t r = 0; r < nodes[i].range_count; r++)
      if (slot >= nodes[i].ranges[r * 2] && slot <= nodes[i].ranges[r * 2 + 1]) return i;
  return -1;
}

static rxt_server *server_at_port(int port) {
  for (int i = 0; i < cl.count; i++)
    if (cl.node[i].port == port && cl.node[i].pid > 0) return &cl.node[i];
  return NULL;
}

/* A key "prefix:N" whose slot is served by the running node srv. */
static void key_on(rxt_server *srv, const char *prefix, int *counter, char *out, size_t len) {
  for (;;) {
    snprintf(out, len, "%s:%d", prefix, (*counter)++);
    if (rxt_cluster_owner(&cl, rx_cluster_keyslot(out, strlen(out))) == srv) return;
  }
}

/* ------------------------------------------------------------ key slot */

static void test_keyslot_vectors(void) {
  CHECK_EQ_INT(rx_cluster_keyslot("", 0), 0);
  CHECK_EQ_INT(rx_cluster_keyslot(NULL, 0), 0);
  CHECK_EQ_INT(rx_cluster_keyslot("123456789", 9), 12739); /* CRC16/XMODEM check value 0x31C3 */
  CHECK_EQ_INT(rx_cluster_keyslot("foo", 3), 12182);
  CHECK_EQ_INT(rx_cluster_keyslot("{user1000}.following", 20),
               rx_cluster_keyslot("{user1000}.followers", 20));
  CHECK_EQ_INT(rx_cluster_keyslot("{user1000}.following", 20), rx_cluster_keyslot("user1000", 8));
  CHECK_EQ_INT(rx_cluster_keyslot("foo{}{bar}", 10), rx_cluster_keyslot("foo{}{bar}", 10));
  CHECK(rx_cluster_keyslot("foo{}{bar}", 10) != rx_cluster_keyslot("bar", 3));
  CHECK_EQ_INT(rx_cluster_keyslot("foo{{bar}}zap", 13), rx_cluster_keyslot("{bar", 4));
  CHECK_EQ_INT(rx_cluster_keyslot("foo{bar}{zap}", 13), rx_cluster_keyslot("bar", 3));
}

/* Many keys, binary and odd ones included, against CLUSTER KEYSLOT. */
static void test_keyslot_server(void) {
  CHECK(cluster_up);
  static const char *const edge[] = {"", "{}", "{}a", "a{}", "{{a}}", "{a}}", "}{a}", "{",
                                     "}", "a{b", "{a}{b}", "foo{bar}", "{bar}foo", "{{}}",
                                     "{}{x}", "x{y}z{w}", "{\xff}", "\xff{\xfe}\xfd"};
  rxt_raw raw;
  CHECK(rxt_raw_open(&cl.node[0], &raw) == 0);
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  int bad = 0;
  for (int i = 0; i < 2000 && !bad; i++) {
    char key[64];
    size_t len;
    if (i < (int)(sizeof edge / sizeof edge[0])) {
      len = strlen(edge[i]);
      memcpy(key, edge[i], len);
    } else if (i < 60) {
      key[0] = 'k'; /* NUL bytes inside tags and outside */
      key[1] = '{';
      key[2] = '\0';
      key[3] = (char)i;
      key[4] = '}';
      len = 5 + (size_t)(i % 3);
      key[5] = '\0';
      key[6] = '}';
    } else {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      len = (size_t)(seed >> 59) + (size_t)(seed >> 61); /* 0..38 */
      for (size_t k = 0; k < len; k++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned v = (unsigned)(seed >> 56);
        /* Plenty of braces so that tag rules are exercised. */
        key[k] = v < 40 ? '{' : v < 80 ? '}' : (char)v;
      }
    }
    const char *argv[3] = {"CLUSTER", "KEYSLOT", key};
    size_t lens[3] = {7, 7, len};
    CHECK(rxt_raw_send(&raw, 3, argv, lens) == 0);
    const char *rep = rxt_raw_read(&raw, 5000, NULL);
    CHECK(rep && rep[0] == ':');
    long want = strtol(rep + 1, NULL, 10);
    int got = rx_cluster_keyslot(key, len);
    if (got != want) {
      fprintf(stderr, "  key #%d (len %zu): ours %d, server %ld\n", i, len, got, want);
      bad = 1;
    }
  }
  rxt_raw_close(&raw);
  CHECK(!bad);
}

/* ------------------------------------------------------------ URLs, errors */

static void test_urls_and_not_cluster(void) {
  char err[256];
  CHECK(rx_cluster_new("redis://a:1,,b:2", err, sizeof err) == NULL);
  CHECK(strstr(err, "empty host") != NULL);
  CHECK(rx_cluster_new("redis://a:1,b:2/3", err, sizeof err) == NULL);
  CHECK(strstr(err, "database 0") != NULL);
  CHECK(rx_cluster_new("unix:///tmp/x.sock", err, sizeof err) == NULL);
  CHECK(rx_cluster_new("redis://a:1,b:99999", err, sizeof err) == NULL);
  CHECK(rx_cluster_new("redis://a:1?bogus=1", err, sizeof err) == NULL);
  CHECK(rx_sub_new("redis://a:1,b:2?bogus=1", err, sizeof err) == NULL);
  /* The password never shows, whatever fails. */
  CHECK(rx_cluster_new("redis://u:s3cret@a:1,b:x", err, sizeof err) == NULL);
  CHECK(strstr(err, "s3cret") == NULL);
  rx_cluster *c = rx_cluster_new("redis://u:s3cret@127.0.0.1:1,[::1]:2,localhost?timeout=1",
                                 err, sizeof err);
  CHECKF(c != NULL, "%s", err);
  CHECK_EQ_INT(rx_cluster_add_seed(c, "127.0.0.1:3"), RX_OK);
  CHECK_EQ_INT(rx_cluster_add_seed(c, "bad host"), RX_EURL);
  CHECK_EQ_INT(rx_cluster_set(c, "db", "2"), RX_EURL);
  CHECK_EQ_INT(rx_cluster_set(c, "connect_timeout", "0.5"), RX_OK);
  CHECK_EQ_INT(rx_cluster_set(c, "nope", "1"), RX_EURL);
  /* The description names the seeds, never the password. */
  char desc[256];
  CHECK_STR(rx_cluster_describe(c, desc, sizeof desc),
            "redis://u:***@127.0.0.1:1,[::1]:2,localhost:6379,127.0.0.1:3");
  CHECK_STR(rx_cluster_describe(c, desc, 12), "redis://u:*");
  CHECK_STR(rx_cluster_describe(NULL, desc, sizeof desc), "(none)");
  CHECK(!rx_cluster_is_connected(c));
  CHECK(!rx_cluster_is_connected(NULL));
  rx_cluster_free(c);
  rx_cluster_free(NULL);
  CHECK_STR(rx_url_redact("rediss://:pw@a:1,b:2?timeout=1", desc, sizeof desc),
            "rediss://:***@a:1,b:2");
  CHECK_STR(rx_url_redact("redis://:pw@a:1,,b:2", desc, sizeof desc), "(invalid URL)");
  /* The one test every mode decision uses (rx_sub_new, rx_queue_new, the
   * bindings' Client). */
  CHECK(rx_url_is_cluster("redis://a:1,b:2"));
  CHECK(rx_url_is_cluster("redis://a:1?cluster=yes"));
  CHECK(rx_url_is_cluster("rediss://u:p@a,b"));
  CHECK(!rx_url_is_cluster("redis://a:1"));
  CHECK(!rx_url_is_cluster("redis://a:1?cluster=no"));
  CHECK(!rx_url_is_cluster("unix:///tmp/x.sock"));
  CHECK(!rx_url_is_cluster("nonsense"));
  CHECK(!rx_url_is_cluster(NULL));

  /* A standalone server: a clear error, not endless retries. */
  char url[800];
  snprintf(url, sizeof url, "%s?cluster=yes", standalone.url);
  c = rx_cluster_new(standalone.url, err, sizeof err);
  CHECK(c);
  long long t0 = rxt_ms();
  CHECK_EQ_INT(rx_cluster_refresh(c), RX_ECLUSTER);
  CHECKF(strstr(rx_cluster_errstr(c), "not a Redis Cluster") != NULL, "%s", rx_cluster_errstr(c));
  const char *get[2] = {"GET", "x"};
  rx_reply *r = NULL;
  CHECK_EQ_INT(rx_cluster_command(c, &r, 2, get, NULL), RX_ECLUSTER);
  CHECK(r == NULL);
  CHECK(rxt_ms() - t0 < 2000);
  rx_cluster_free(c);
  rx_sub *s = new_sub(url);
  CHECK(s);
  CHECK_EQ_INT(rx_sub_subscribe(s, "x", 1), RX_ECLUSTER);
  CHECK(strstr(rx_sub_errstr(s), "not a Redis Cluster") != NULL);
  rx_event ev;
  CHECK_EQ_INT(rx_sub_next(s, 200, &ev), RX_ECLUSTER);
  rx_sub_free(s);
  CHECK_EQ_INT(rx_errname(RX_ECLUSTER)[0], 'E');
  CHECK_STR(rx_errname(RX_ECLUSTER), "ECLUSTER");
}

/* ------------------------------------------------------------ routing */

static void test_topology(void) {
  CHECK(cluster_up);
  rx_cluster_node nodes[8];
  int n = rx_cluster_nodes(rc_, RX_CLUSTER_MASTERS, nodes, 8);
  if (n != 3) {
    const char *argv[] = {"CLUSTER", "NODES", NULL};
    char *raw = rxt_cmd(&cl.node[0], argv);
    fprintf(stderr, "  masters listed: %d; CLUSTER NODES of the first node:\n%s\n", n,
            raw ? raw : "(none)");
    for (int i = 0; i < n && i < 8; i++)
      fprintf(stderr, "  %s:%d master=%d ranges=%zu\n", nodes[i].host, nodes[i].port,
              nodes[i].is_master, nodes[i].range_count);
    free(raw);
  }
  CHECK_EQ_INT(n, 3);
  int covered = 0, prev_last = -1;
  for (int i = 0; i < n; i++) {
    CHECK(nodes[i].is_master && !nodes[i].failed);
    CHECK_EQ_INT(strlen(nodes[i].id), 40);
    CHECK(nodes[i].range_count >= 1);
    CHECK(nodes[i].ranges[0] == prev_last + 1); /* sorted by first slot, contiguous here */
    for (size_t r = 0; r < nodes[i].range_count; r++)
      covered += nodes[i].ranges[r * 2 + 1] - nodes[i].ranges[r * 2] + 1;
    prev_last = nodes[i].ranges[nodes[i].range_count * 2 - 1];
    CHECK(server_at_port(nodes[i].port) != NULL);
    /* Per-node commands through the node's own connection. */
    const char *myid[2] = {"CLUSTER", "MYID"};
    rx_reply *r = NULL;
    CHECK_EQ_INT(rx_conn_call(nodes[i].conn, &r, 2, myid, NULL), RX_OK);
    CHECK_MEM(r->str, r->len, nodes[i].id, 40);
    rx_reply_free(r);
  }
  CHECK_EQ_INT(covered, RX_CLUSTER_SLOTS);
  CHECK(rx_cluster_is_connected(rc_)); /* the map is loaded, the masters' links are up */
  CHECK_EQ_INT(rx_cluster_nodes(rc_, RX_CLUSTER_REPLICAS, nodes, 8), 3);
  CHECK_EQ_INT(rx_cluster_nodes(rc_, RX_CLUSTER_MASTERS | RX_CLUSTER_REPLICAS, NULL, 0), 6);
  for (int i = 0; i < 3; i++) CHECK(!nodes[i].is_master && nodes[i].range_count == 0);
  /* A load that is woken up lists no node (a status is never a count). */
  char err[256];
  rx_cluster *fresh = rx_cluster_new(cl.url, err, sizeof err);
  CHECK(fresh);
  rx_cluster_wakeup(fresh);
  CHECK_EQ_INT(rx_cluster_nodes(fresh, RX_CLUSTER_MASTERS | RX_CLUSTER_REPLICAS, nodes, 8), 0);
  CHECK_EQ_INT(rx_cluster_err(fresh), RX_WOKEN);
  CHECK_EQ_INT(rx_cluster_nodes(fresh, RX_CLUSTER_MASTERS | RX_CLUSTER_REPLICAS, nodes, 8), 6);
  CHECK_EQ_INT(rx_cluster_err(fresh), RX_OK);
  rx_cluster_free(fresh);
}

static void test_routing(void) {
  CHECK(cluster_up);
  rx_cluster_stats st0, st1;
  rx_cluster_get_stats(rc_, &st0);
  int per_master[RXT_CLUSTER_MAX] = {0};
  for (int i = 0; i < 1000; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "route:%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    const char *argv[3] = {"SET", key, val};
    rx_reply *r = cmd(rc_, 3, argv, NULL);
    CHECK(r && rx__reply_is(r, "OK"));
    rx_reply_free(r);
    rxt_server *owner = rxt_cluster_owner(&cl, rx_cluster_keyslot(key, strlen(key)));
    if (i % 50 == 0) {
      /* The key landed on the slot's master, checked behind reactis's back. */
      CHECK(owner);
      const char *g[3] = {"GET", key, NULL};
      char *raw = rxt_cmd(owner, g);
      CHECKF(raw && strstr(raw, val), "%s", raw ? raw : "(null)");
      free(raw);
    }
    if (owner) per_master[rxt_cluster_index(&cl, owner)]++;
  }
  int masters_used = 0;
  for (int i = 0; i < cl.count; i++) masters_used += per_master[i] > 0;
  CHECK_EQ_INT(masters_used, 3);
  for (int i = 0; i < 1000; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "route:%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    CHECK(get_is(rc_, key, val));
  }
  /* Commands whose key is not argv[1], and keyless ones. */
  const char *eval[4] = {"EVAL", "return redis.call('GET', KEYS[1])", "1", "route:7"};
  rx_reply *r = cmd(rc_, 4, eval, NULL);
  CHECK(r && r->type == RX_REPLY_STRING && !strcmp(r->str, "value-7"));
  rx_reply_free(r);
  const char *ping[1] = {"PING"};
  r = cmd(rc_, 1, ping, NULL);
  CHECK(r && rx__reply_is(r, "PONG"));
  rx_reply_free(r);
  const char *xadd[5] = {"XADD", "{route}s", "*", "f", "v"};
  r = cmd(rc_, 5, xadd, NULL);
  CHECK(r && r->type == RX_REPLY_STRING);
  rx_reply_free(r);
  const char *xread[6] = {"XREAD", "COUNT", "1", "STREAMS", "{route}s", "0"};
  r = cmd(rc_, 6, xread, NULL);
  CHECK(r && r->type == RX_REPLY_ARRAY);
  rx_reply_free(r);
  /* An explicit key index; a binary key with a tag. */
  const char key[] = "bin\0{route}\xff";
  const char *set[3] = {"SET", key, "b"};
  size_t lens[3] = {3, sizeof key - 1, 1};
  r = NULL;
  CHECK_EQ_INT(rx_cluster_command_key(rc_, 1, &r, 3, set, lens), RX_OK);
  CHECK(rx__reply_is(r, "OK"));
  rx_reply_free(r);
  CHECK_EQ_INT(rx_cluster_command_key(rc_, 3, &r, 3, set, lens), RX_EINVAL);
  /* Multi-key commands across slots: the server's CROSSSLOT comes back. */
  const char *mget[3] = {"MGET", "route:1", "route:2"};
  CHECK_EQ_INT(rx_cluster_call(rc_, NULL, 3, mget, NULL), RX_EREPLY);
  CHECK(strstr(rx_cluster_errstr(rc_), "CROSSSLOT") != NULL);
  rx_cluster_get_stats(rc_, &st1);
  CHECK_EQ_INT(st1.moved - st0.moved, 0); /* the map was right all along */
}

/* ------------------------------------------------------------ migration */

static void test_migration_ask_moved(void) {
  CHECK(cluster_up);
  const char *k1 = "{mig}one", *k2 = "{mig}two", *k3 = "{mig}new";
  int slot = rx_cluster_keyslot("mig", 3);
  rxt_server *from = rxt_cluster_owner(&cl, slot), *to = NULL;
  CHECK(from);
  for (int i = 0; i < cl.count && !to; i++)
    if (&cl.node[i] != from && rxt_cluster_is_master(&cl.node[i])) to = &cl.node[i];
  CHECK(to);
  CHECK(set_px(rc_, k1, strlen(k1), NULL));
  CHECK(set_px(rc_, k2, strlen(k2), NULL));
  rx_cluster_stats st0, st;
  rx_cluster_get_stats(rc_, &st0);

  CHECK_EQ_INT(rxt_cluster_migrate_begin(&cl, slot, from, to), 0);
  CHECK(get_is(rc_, k1, "v")); /* still on the source: served there */
  CHECK(set_px(rc_, k3, strlen(k3), NULL)); /* not on the source: ASK -> target */
  rx_cluster_get_stats(rc_, &st);
  CHECK(st.ask > st0.ask);
  CHECK_EQ_INT(st.moved, st0.moved);
  CHECK_EQ_INT(rxt_cluster_migrate_keys(&cl, slot, from, to), 0);
  CHECK(get_is(rc_, k1, "v")); /* moved mid-run: ASK again */
  rx_cluster_get_stats(rc_, &st);
  CHECK(st.ask >= st0.ask + 2);

  CHECK_EQ_INT(rxt_cluster_migrate_end(&cl, slot, from, to), 0);
  CHECK(get_is(rc_, k2, "v")); /* the source says MOVED now */
  rx_cluster_get_stats(rc_, &st);
  CHECK(st.moved > st0.moved);
  long long moved = st.moved;
  rxt_sleep_ms(150); /* past the refresh rate limit */
  CHECK(get_is(rc_, k3, "v"));
  CHECK(get_is(rc_, k1, "v"));
  rx_cluster_get_stats(rc_, &st);
  CHECK_EQ_INT(st.moved, moved); /* the map knows now */
  CHECK(st.refreshes > st0.refreshes);
  rx_cluster_node nodes[8];
  int n = rx_cluster_nodes(rc_, RX_CLUSTER_MASTERS, nodes, 8);
  CHECK_EQ_INT(n, 3);
  int m = master_of(nodes, n, slot);
  CHECK(m >= 0 && nodes[m].port == to->port);
}

/* ------------------------------------------------------------ keyspace */

/* Waits for `want` expired events of keys in `keys` (each once), counting
 * other events; fails on a duplicate. gap (may be NULL) gets a gap event
 * if one comes. */
static int wait_expired(rx_sub *s, char keys[][48], int nkeys, int timeout_ms, rx_event *gap,
                        int *gaps) {
  int seen[64] = {0}, got = 0;
  long long deadline = rxt_ms() + timeout_ms;
  while (got < nkeys && rxt_ms() < deadline) {
    rx_event ev;
    int rc = rx_sub_next(s, 200, &ev);
    if (rc == RX_TIMEOUT) continue;
    if (rc != RX_OK) {
      fprintf(stderr, "  rx_sub_next: %s (%s)\n", rx_errname(rc), rx_sub_errstr(s));
      continue;
    }
    if (ev.kind == RX_EV_GAP) {
      if (gap) *gap = ev;
      if (gaps) (*gaps)++;
      continue;
    }
    if (ev.kind != RX_EV_MESSAGE) continue;
    if (ev.channel_len != strlen("__keyevent@0__:expired") ||
        memcmp(ev.channel, "__keyevent@0__:expired", ev.channel_len))
      continue;
    for (int i = 0; i < nkeys; i++) {
      if (ev.data_len == strlen(keys[i]) && !memcmp(ev.data, keys[i], ev.data_len)) {
        if (seen[i]++) {
          fprintf(stderr, "  duplicate expired event for %s\n", keys[i]);
          return -1;
        }
        got++;
      }
    }
  }
  if (got < nkeys) {
    for (int i = 0; i < nkeys; i++)
      if (!seen[i]) fprintf(stderr, "  no expired event for %s\n", keys[i]);
  }
  return got;
}

static void test_keyspace_every_master(void) {
  CHECK(cluster_up);
  char eff[64];
  CHECK_EQ_INT(rx_cluster_notify_ensure(rc_, "Ex", eff, sizeof eff), RX_OK);
  CHECKF(strchr(eff, 'E') && strchr(eff, 'x'), "%s", eff);
  /* Every node has it, replicas included. */
  for (int i = 0; i < cl.count; i++) {
    const char *get[] = {"CONFIG", "GET", "notify-keyspace-events", NULL};
    char *raw = rxt_cmd(&cl.node[i], get);
    CHECKF(raw && strstr(raw, "xE"), "%s", raw ? raw : "(null)");
    free(raw);
  }
  CHECK_EQ_INT(rx_cluster_notify_ensure(rc_, "Q", NULL, 0), RX_EINVAL);
  /* Adding a flag to "xE" makes the helper probe whether "n" is on (Redis
   * 7.0 does not show it): the probe key must be one the master serves, or
   * the probe cannot decide and "n" is added for safety. */
  CHECK_EQ_INT(rx_cluster_notify_ensure(rc_, "Ex$", eff, sizeof eff), RX_OK);
  CHECKF(strchr(eff, '$') && !strchr(eff, 'n'), "%s", eff);
  for (int i = 0; i < cl.count; i++) {
    const char *get[] = {"CONFIG", "GET", "notify-keyspace-events", NULL};
    char *raw = rxt_cmd(&cl.node[i], get);
    CHECKF(raw && strchr(raw, '$'), "%s", raw ? raw : "(null)");
    free(raw);
  }

  ks_sub = new_sub(cl.url);
  CHECK(ks_sub);
  CHECK_EQ_INT(rx_sub_subscribe(ks_sub, "__keyevent@0__:expired", 22), RX_OK);
  CHECK_EQ_INT(rx_sub_subscribe(ks_sub, "news", 4), RX_OK);
  CHECK(rx_sub_is_connected(ks_sub));
  CHECK(rx_sub_fd(ks_sub) >= 0);
  CHECK_EQ_INT(rx_sub_count(ks_sub), 2);

  /* Ten keys on each master. */
  char keys[30][48];
  int counter = 0, nk = 0;
  for (int i = 0; i < cl.count; i++) {
    if (!rxt_cluster_is_master(&cl.node[i])) continue;
    for (int k = 0; k < 10; k++) key_on(&cl.node[i], "exp", &counter, keys[nk++], 48);
  }
  CHECK_EQ_INT(nk, 30);
  for (int i = 0; i < nk; i++) CHECK(set_px(rc_, keys[i], strlen(keys[i]), "100"));
  CHECK_EQ_INT(wait_expired(ks_sub, keys, nk, 15000, NULL, NULL), nk);

  /* PUBLISH reaches every node; one subscription, so each message once. */
  for (int i = 0; i < 5; i++) {
    const char *pub[3] = {"PUBLISH", "news", "hello"};
    rx_reply *r = cmd(rc_, 3, pub, NULL);
    CHECK(r && r->type == RX_REPLY_INTEGER);
    rx_reply_free(r);
  }
  int news = 0;
  rx_event ev;
  while (rx_sub_next(ks_sub, 500, &ev) == RX_OK)
    if (ev.kind == RX_EV_MESSAGE && ev.channel_len == 4 && !memcmp(ev.channel, "news", 4)) news++;
  CHECK_EQ_INT(news, 5);

  /* rx_sub_fd becomes readable when a message waits; a batch takes them. */
  CHECK_EQ_INT(rx_sub_set(ks_sub, "health_check_interval", "1"), RX_OK);
  CHECK_EQ_INT(rx_sub_set(ks_sub, "no_such_option", "1"), RX_EURL);
  for (int i = 0; i < 3; i++) {
    const char *pub[3] = {"PUBLISH", "news", "batch"};
    rx_reply_free(cmd(rc_, 3, pub, NULL));
  }
  struct pollfd p = {rx_sub_fd(ks_sub), POLLIN, 0};
  CHECK_EQ_INT(poll(&p, 1, 2000), 1);
  size_t total = 0;
  long long deadline = rxt_ms() + 3000;
  while (total < 3 && rxt_ms() < deadline) {
    rx_event evs[8];
    size_t n = 0;
    if (rx_sub_next_batch(ks_sub, 500, evs, 8, &n) != RX_OK) continue;
    for (size_t i = 0; i < n; i++)
      total += evs[i].kind == RX_EV_MESSAGE && evs[i].data_len == 5 &&
               !memcmp(evs[i].data, "batch", 5);
  }
  CHECK_EQ_INT(total, 3);
  CHECK_EQ_INT(rx_sub_next(ks_sub, 300, &ev), RX_TIMEOUT);
}

/* ------------------------------------------------------------ failover */

static void test_failover(void) {
  CHECK(cluster_up && ks_sub);
  int slot = rx_cluster_keyslot("fo", 2);
  rxt_server *old = rxt_cluster_owner(&cl, slot);
  CHECK(old);
  CHECK(set_px(rc_, "{fo}kept", 8, NULL));
  /* Asynchronous replication: WAIT makes sure the replica has the write
   * before its master dies (without it the write could be lost). */
  {
    rx_cluster_node nodes[8];
    int n = rx_cluster_nodes(rc_, RX_CLUSTER_MASTERS, nodes, 8);
    int m = master_of(nodes, n, slot);
    CHECK(m >= 0 && nodes[m].port == old->port);
    const char *wait[3] = {"WAIT", "1", "2000"};
    rx_reply *r = NULL;
    CHECK_EQ_INT(rx_conn_call(nodes[m].conn, &r, 3, wait, NULL), RX_OK);
    CHECK_EQ_INT(r->integer, 1);
    rx_reply_free(r);
  }
  char old_addr[64];
  snprintf(old_addr, sizeof old_addr, "127.0.0.1:%d", old->port);
  long long t_kill = rx_now_ms();
  rxt_server *promoted = rxt_cluster_failover(&cl, old, 15000);
  CHECK(promoted);
  fprintf(stderr, "  failover done %lld ms after the kill\n", rx_now_ms() - t_kill);

  /* Commands go on: the client finds the dead link, refreshes, retries. */
  rx_cluster_stats st0, st;
  rx_cluster_get_stats(rc_, &st0);
  CHECK(get_is(rc_, "{fo}kept", "v"));
  CHECK(set_px(rc_, "{fo}after", 9, NULL));
  rx_cluster_get_stats(rc_, &st);
  CHECK(st.refreshes > st0.refreshes);
  rx_cluster_node nodes[8];
  int n = rx_cluster_nodes(rc_, RX_CLUSTER_MASTERS, nodes, 8);
  int m = master_of(nodes, n, slot);
  CHECK(m >= 0 && nodes[m].port == promoted->port);

  /* The subscriber reports the gap once it is subscribed on the promoted
   * master, and then gets that master's events. */
  rx_event ev;
  int gap = 0;
  long long deadline = rxt_ms() + 20000;
  while (!gap && rxt_ms() < deadline) {
    int rc = rx_sub_next(ks_sub, 500, &ev);
    if (rc == RX_OK && ev.kind == RX_EV_GAP) {
      gap = 1;
      CHECK(ev.gap_start_ms <= t_kill + 50);
      CHECK(ev.gap_end_ms >= ev.gap_start_ms);
      CHECK(ev.reconnects >= 1);
      CHECKF(strstr(ev.data, old_addr) != NULL, "gap data \"%s\", expected %s", ev.data, old_addr);
    }
  }
  CHECK(gap);
  fprintf(stderr,
          "  gap %lld..%lld (%lld ms) after %d attempts: %s; reported %lld ms after the kill\n",
          ev.gap_start_ms, ev.gap_end_ms, ev.gap_end_ms - ev.gap_start_ms, ev.reconnects, ev.data,
          rx_now_ms() - t_kill);
  CHECK(rx_sub_is_connected(ks_sub));
  char keys[10][48];
  int counter = 0;
  for (int i = 0; i < 10; i++) key_on(promoted, "after", &counter, keys[i], 48);
  for (int i = 0; i < 10; i++) CHECK(set_px(rc_, keys[i], strlen(keys[i]), "100"));
  CHECK_EQ_INT(wait_expired(ks_sub, keys, 10, 15000, NULL, NULL), 10);

  /* Dropping the keyspace subscription keeps the plain one working. */
  CHECK_EQ_INT(rx_sub_unsubscribe(ks_sub, "__keyevent@0__:expired", 22), RX_OK);
  CHECK_EQ_INT(rx_sub_count(ks_sub), 1);
  CHECK(rx_sub_is_connected(ks_sub));
  const char *pub[3] = {"PUBLISH", "news", "still"};
  rx_reply_free(cmd(rc_, 3, pub, NULL));
  CHECK_EQ_INT(rx_sub_next(ks_sub, 3000, &ev), RX_OK);
  CHECK_MEM(ev.data, ev.data_len, "still", 5);
  CHECK_EQ_INT(rx_sub_next(ks_sub, 300, &ev), RX_TIMEOUT);
}

/* ------------------------------------------------------------ sharded */

/* SPUBLISHes until the subscriber gets the message (its resubscription
 * happens inside rx_sub_next), counting gap events. 1 when received. */
static int spublish_until_received(rx_sub *s, const char *ch, int timeout_ms, int *gaps) {
  long long deadline = rxt_ms() + timeout_ms;
  int i = 0;
  while (rxt_ms() < deadline) {
    char msg[32];
    snprintf(msg, sizeof msg, "m%d", i++);
    const char *argv[3] = {"SPUBLISH", ch, msg};
    rx_reply *r = cmd(rc_, 3, argv, NULL);
    rx_reply_free(r);
    long long until = rxt_ms() + 300;
    while (rxt_ms() < until) {
      rx_event ev;
      int rc = rx_sub_next(s, 100, &ev);
      if (rc != RX_OK) continue;
      if (ev.kind == RX_EV_GAP) {
        if (gaps) (*gaps)++;
        continue;
      }
      if (ev.kind == RX_EV_SMESSAGE && ev.channel_len == strlen(ch) &&
          !memcmp(ev.channel, ch, ev.channel_len))
        return 1;
    }
  }
  return 0;
}

static rxt_server *takeover_target;
static int takeover_ok;

static void *takeover_later(void *arg) {
  (void)arg;
  rxt_sleep_ms(500);
  const char *argv[] = {"CLUSTER", "FAILOVER", "TAKEOVER", NULL};
  char *r = rxt_cmd(takeover_target, argv);
  takeover_ok = r && !strncmp(r, "+OK", 3);
  free(r);
  return NULL;
}

static void test_sharded(void) {
  CHECK(cluster_up);
  rx_sub *s = new_sub(cl.url);
  CHECK(s);
  /* One channel per master. */
  char ch[3][48];
  rxt_server *owner[3];
  int counter = 0, nch = 0;
  for (int i = 0; i < cl.count && nch < 3; i++) {
    if (cl.node[i].pid <= 0 || !rxt_cluster_is_master(&cl.node[i])) continue;
    owner[nch] = &cl.node[i];
    key_on(&cl.node[i], "sch", &counter, ch[nch++], 48);
  }
  CHECK_EQ_INT(nch, 3);
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(rx_sub_ssubscribe(s, ch[i], strlen(ch[i])), RX_OK);
  CHECK(rx_sub_is_connected(s));
  for (int i = 0; i < 3; i++) {
    const char *argv[3] = {"SPUBLISH", ch[i], "hi"};
    rx_reply *r = cmd(rc_, 3, argv, NULL);
    CHECK(r && r->type == RX_REPLY_INTEGER && r->integer == 1); /* exactly our one subscription */
    rx_reply_free(r);
  }
  int got[3] = {0};
  rx_event ev;
  for (int k = 0; k < 3; k++) {
    CHECK_EQ_INT(rx_sub_next(s, 3000, &ev), RX_OK);
    CHECK_EQ_INT(ev.kind, RX_EV_SMESSAGE);
    CHECK_MEM(ev.data, ev.data_len, "hi", 2);
    for (int i = 0; i < 3; i++)
      if (ev.channel_len == strlen(ch[i]) && !memcmp(ev.channel, ch[i], ev.channel_len)) got[i]++;
  }
  CHECK(got[0] == 1 && got[1] == 1 && got[2] == 1);

  /* Resharding: the source unsubscribes us (server-sent sunsubscribe); the
   * subscriber follows the slot to its new master. */
  int slot0 = rx_cluster_keyslot(ch[0], strlen(ch[0]));
  rxt_server *to = owner[1];
  CHECK_EQ_INT(rxt_cluster_migrate_begin(&cl, slot0, owner[0], to), 0);
  CHECK_EQ_INT(rxt_cluster_migrate_keys(&cl, slot0, owner[0], to), 0);
  CHECK_EQ_INT(rxt_cluster_migrate_end(&cl, slot0, owner[0], to), 0);
  int gaps = 0;
  CHECK(spublish_until_received(s, ch[0], 10000, &gaps));
  /* A gap was reported for the moment the slot moved (it may come before
   * or right after the first message on the new owner). */
  if (!gaps) {
    while (rx_sub_next(s, 300, &ev) == RX_OK)
      if (ev.kind == RX_EV_GAP) gaps++;
  }
  CHECK(gaps >= 1);

  /* Failover of another channel's master. */
  rxt_server *victim = NULL;
  int vi = -1;
  for (int i = 1; i < 3 && !victim; i++)
    if (rxt_cluster_replica_of(&cl, owner[i])) {
      victim = owner[i];
      vi = i;
    }
  CHECK(victim);
  char victim_addr[64], key[48];
  snprintf(victim_addr, sizeof victim_addr, "127.0.0.1:%d", victim->port);
  key_on(victim, "during", &counter, key, sizeof key);
  /* This time the replica is promoted only 500 ms after its master died,
   * while a command for that master's slots is already retrying. */
  takeover_target = rxt_cluster_replica_of(&cl, victim);
  CHECK(takeover_target);
  rxt_server_kill(victim);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, takeover_later, NULL) == 0);
  long long t0 = rxt_ms();
  int ok = set_px(rc_, key, strlen(key), NULL);
  long long took = rxt_ms() - t0;
  pthread_join(th, NULL);
  CHECKF(ok, "SET during the failover failed after %lld ms", took);
  CHECKF(took >= 400 && took < 5000, "took %lld ms", took);
  fprintf(stderr, "  a SET issued right after the kill succeeded after %lld ms\n", took);
  CHECK(takeover_ok);
  CHECK_EQ_INT(rxt_cluster_wait_ok(&cl, 10000), 0);
  CHECK(get_is(rc_, key, "v"));
  gaps = 0;
  int gap_named = 0;
  long long deadline = rxt_ms() + 20000;
  while (!gaps && rxt_ms() < deadline) {
    if (rx_sub_next(s, 300, &ev) == RX_OK && ev.kind == RX_EV_GAP) {
      gaps++;
      gap_named = strstr(ev.data, victim_addr) != NULL;
    }
  }
  CHECK(gaps == 1 && gap_named);
  CHECK(spublish_until_received(s, ch[vi], 10000, NULL));
  /* Every channel still works, each message once. */
  for (int i = 0; i < 3; i++) {
    const char *argv[3] = {"SPUBLISH", ch[i], "again"};
    rx_reply *r = cmd(rc_, 3, argv, NULL);
    CHECKF(r && r->type == RX_REPLY_INTEGER && r->integer == 1, "channel %d", i);
    rx_reply_free(r);
  }
  memset(got, 0, sizeof got);
  int total = 0;
  while (rx_sub_next(s, 500, &ev) == RX_OK) {
    if (ev.kind != RX_EV_SMESSAGE || ev.data_len != 5 || memcmp(ev.data, "again", 5)) continue;
    total++;
    for (int i = 0; i < 3; i++)
      if (ev.channel_len == strlen(ch[i]) && !memcmp(ev.channel, ch[i], ev.channel_len)) got[i]++;
  }
  CHECK(got[0] == 1 && got[1] == 1 && got[2] == 1 && total == 3);
  CHECK_EQ_INT(rx_sub_sunsubscribe(s, NULL, 0), RX_OK);
  CHECK_EQ_INT(rx_sub_count(s), 0);
  CHECK_EQ_INT(rx_sub_next(s, 100, &ev), RX_ESTATE);
  rx_sub_free(s);
}

/* ------------------------------------------------------------ main */

int main(void) {
  long long t0 = rxt_ms();
  RUN(test_keyslot_vectors);
  if (rxt_server_start(&standalone, NULL) != 0) {
    fprintf(stderr, "cannot start redis-server\n");
    return 1;
  }
  RUN(test_urls_and_not_cluster);
  cluster_up = rxt_cluster_start(&cl, 3, 1) == 0;
  fprintf(stderr, "  cluster %s in %lld ms: %s\n", cluster_up ? "up" : "FAILED", rxt_ms() - t0,
          cl.url);
  if (cluster_up) {
    char err[256];
    rc_ = rx_cluster_new(cl.url, err, sizeof err);
    if (!rc_) fprintf(stderr, "rx_cluster_new: %s\n", err);
    cluster_up = rc_ != NULL;
  }
  RUN(test_keyslot_server);
  RUN(test_topology);
  RUN(test_routing);
  RUN(test_migration_ask_moved);
  RUN(test_keyspace_every_master);
  RUN(test_failover);
  RUN(test_sharded);
  rx_sub_free(ks_sub);
  rx_cluster_free(rc_);
  rxt_cluster_cleanup(&cl);
  rxt_server_cleanup(&standalone);
  fprintf(stderr, "  total %lld ms\n", rxt_ms() - t0);
  return TEST_REPORT();
}
