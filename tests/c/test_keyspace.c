/* test_keyspace.c — channel parsing and event names; no server needed. */
#include "reactis/reactis.h"
#include "test.h"

#include <limits.h>

/* Parses a channel and message given as (literal, sizeof - 1) pairs. */
#define PARSE(ch, msg, ev) \
  rx_keyspace_parse((ch), sizeof(ch) - 1, (msg), sizeof(msg) - 1, (ev))

static void test_keyspace_basic(void) {
  rx_key_event ev;
  CHECK_EQ_INT(PARSE("__keyspace@0__:mykey", "set", &ev), RX_OK);
  CHECK_EQ_INT(ev.space, RX_SPACE_KEYSPACE);
  CHECK_EQ_INT(ev.db, 0);
  CHECK_EQ_INT(ev.type, RX_KEV_SET);
  CHECK_MEM(ev.key, ev.key_len, "mykey", 5);
  CHECK_MEM(ev.event, ev.event_len, "set", 3);
}

static void test_keyevent_basic(void) {
  rx_key_event ev;
  CHECK_EQ_INT(PARSE("__keyevent@3__:expired", "job:42", &ev), RX_OK);
  CHECK_EQ_INT(ev.space, RX_SPACE_KEYEVENT);
  CHECK_EQ_INT(ev.db, 3);
  CHECK_EQ_INT(ev.type, RX_KEV_EXPIRED);
  CHECK_MEM(ev.key, ev.key_len, "job:42", 6);
  CHECK_MEM(ev.event, ev.event_len, "expired", 7);
}

static void test_binary_keys(void) {
  rx_key_event ev;
  static const char ch[] = "__keyspace@0__:a\0b\xff:c@d";
  static const char key[] = "a\0b\xff:c@d";
  static const char msg[] = "x\0\xff@:y";
  CHECK_EQ_INT(rx_keyspace_parse(ch, sizeof ch - 1, "del", 3, &ev), RX_OK);
  CHECK_MEM(ev.key, ev.key_len, key, sizeof key - 1);
  CHECK_EQ_INT(ev.type, RX_KEV_DEL);
  /* The key points into the channel: borrowed, not copied. */
  CHECK(ev.key == ch + 15);

  /* Keyevent: the key is the message, any bytes. */
  CHECK_EQ_INT(rx_keyspace_parse("__keyevent@0__:del", 18, msg, sizeof msg - 1, &ev), RX_OK);
  CHECK_MEM(ev.key, ev.key_len, msg, sizeof msg - 1);
  CHECK(ev.key == msg);

  /* A key that itself looks like a keyspace channel. */
  CHECK_EQ_INT(PARSE("__keyspace@1__:__keyspace@2__:k", "set", &ev), RX_OK);
  CHECK_EQ_INT(ev.db, 1);
  CHECK_MEM(ev.key, ev.key_len, "__keyspace@2__:k", 16);

  /* ':' and '@' and "__:" inside the key. */
  CHECK_EQ_INT(PARSE("__keyspace@0__:user@host:1__:x", "hset", &ev), RX_OK);
  CHECK_MEM(ev.key, ev.key_len, "user@host:1__:x", 15);
  CHECK_EQ_INT(ev.type, RX_KEV_HSET);
}

static void test_never_reads_past_len(void) {
  /* The channel is cut in the middle of a longer buffer: only the given
   * bytes count. */
  rx_key_event ev;
  static const char buf[] = "__keyspace@12__:abcdef";
  CHECK_EQ_INT(rx_keyspace_parse(buf, 18, "set", 3, &ev), RX_OK);
  CHECK_MEM(ev.key, ev.key_len, "ab", 2);
  CHECK_EQ_INT(rx_keyspace_parse(buf, 13, "set", 3, &ev), RX_NOMATCH); /* "__keyspace@12" */
  CHECK_EQ_INT(rx_keyspace_parse(buf, 15, "set", 3, &ev), RX_NOMATCH); /* "__keyspace@12__" */
  CHECK_EQ_INT(rx_keyspace_parse(buf, 16, "set", 3, &ev), RX_OK);      /* empty key */
  CHECK_EQ_INT(ev.key_len, 0);
  /* The event is cut too. */
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, "expired", 3, &ev), RX_OK);
  CHECK_MEM(ev.event, ev.event_len, "exp", 3);
  CHECK_EQ_INT(ev.type, RX_KEV_OTHER);
}

static void test_db_numbers(void) {
  rx_key_event ev;
  char ch[64];
  int n;
  CHECK_EQ_INT(PARSE("__keyspace@0__:k", "set", &ev), RX_OK);
  CHECK_EQ_INT(ev.db, 0);
  CHECK_EQ_INT(PARSE("__keyspace@15__:k", "set", &ev), RX_OK);
  CHECK_EQ_INT(ev.db, 15);
  CHECK_EQ_INT(PARSE("__keyevent@123456__:set", "k", &ev), RX_OK);
  CHECK_EQ_INT(ev.db, 123456);
  n = snprintf(ch, sizeof ch, "__keyspace@%d__:k", INT_MAX);
  CHECK_EQ_INT(rx_keyspace_parse(ch, (size_t)n, "set", 3, &ev), RX_OK);
  CHECK_EQ_INT(ev.db, INT_MAX);
  n = snprintf(ch, sizeof ch, "__keyspace@%lld__:k", (long long)INT_MAX + 1);
  CHECK_EQ_INT(rx_keyspace_parse(ch, (size_t)n, "set", 3, &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@99999999999__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@99999999999999999999999999__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@-1__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@+1__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@ 1__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@1 __:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@01__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0x1__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@1e3__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@x__:set", "k", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyevent@x__:set", "k", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@*__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@1\0__:k", 17, "set", 3, &ev), RX_NOMATCH);
}

static void test_truncated_and_hostile(void) {
  rx_key_event ev;
  CHECK_EQ_INT(PARSE("", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("_", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyevent@", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0_", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0__", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyevent@0__", "k", &ev), RX_NOMATCH);
  /* Wrong underscores and separators. */
  CHECK_EQ_INT(PARSE("_keyspace@0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("___keyspace@0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0_:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0___:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0__k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0__;k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace_0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace#0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__KEYSPACE@0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspaces@0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyevents@0__:set", "k", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE(" __keyspace@0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keymiss@0__:k", "set", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("news", "hello", &ev), RX_NOMATCH);
  /* On NOMATCH the event is cleared, never half-filled. */
  CHECK(ev.key == NULL && ev.event == NULL && ev.space == 0);
}

static void test_empty_key_and_event(void) {
  rx_key_event ev;
  /* Redis keys may be empty strings. */
  CHECK_EQ_INT(PARSE("__keyspace@0__:", "set", &ev), RX_OK);
  CHECK_EQ_INT(ev.key_len, 0);
  CHECK(ev.key != NULL);
  CHECK_EQ_INT(ev.type, RX_KEV_SET);
  CHECK_EQ_INT(PARSE("__keyevent@0__:set", "", &ev), RX_OK);
  CHECK_EQ_INT(ev.key_len, 0);
  CHECK(ev.key != NULL);
  CHECK_EQ_INT(rx_keyspace_parse("__keyevent@0__:set", 18, NULL, 0, &ev), RX_OK);
  CHECK(ev.key != NULL && ev.key_len == 0);
  /* Empty or NUL-holding event names are not events. */
  CHECK_EQ_INT(PARSE("__keyevent@0__:", "k", &ev), RX_NOMATCH);
  CHECK_EQ_INT(PARSE("__keyspace@0__:k", "", &ev), RX_NOMATCH);
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, NULL, 0, &ev), RX_NOMATCH);
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, "se\0t", 4, &ev), RX_NOMATCH);
  CHECK_EQ_INT(rx_keyspace_parse("__keyevent@0__:se\0t", 19, "k", 1, &ev), RX_NOMATCH);
  CHECK_EQ_INT(rx_keyspace_parse("__keyevent@0__:\0", 16, "k", 1, &ev), RX_NOMATCH);
}

static void test_invalid_args(void) {
  rx_key_event ev;
  CHECK_EQ_INT(rx_keyspace_parse(NULL, 0, "set", 3, &ev), RX_EINVAL);
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, "set", 3, NULL), RX_EINVAL);
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, NULL, 3, &ev), RX_EINVAL);
  /* NOMATCH is a normal outcome (positive), EINVAL an error. */
  CHECK(RX_NOMATCH > 0 && RX_EINVAL < 0);
}

static void test_event_names_round_trip(void) {
  for (int t = RX_KEV_OTHER + 1; t < RX__KEV_COUNT; t++) {
    const char *name = rx_key_event_name(t);
    rx_key_event ev;
    char ch[128];
    int n;
    CHECKF(name[0] != '\0', "type %d has no name", t);
    CHECKF(rx_key_event_type_of(name, strlen(name)) == t, "%s", name);
    /* Through both kinds of channel too. */
    CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, name, strlen(name), &ev), RX_OK);
    CHECK_EQ_INT(ev.type, t);
    n = snprintf(ch, sizeof ch, "__keyevent@7__:%s", name);
    CHECK_EQ_INT(rx_keyspace_parse(ch, (size_t)n, "k", 1, &ev), RX_OK);
    CHECK_EQ_INT(ev.type, t);
    CHECK_EQ_INT(ev.db, 7);
    /* Names are unique. */
    for (int u = t + 1; u < RX__KEV_COUNT; u++)
      CHECKF(strcmp(name, rx_key_event_name(u)) != 0, "%s twice", name);
  }
  CHECK_STR(rx_key_event_name(RX_KEV_EXPIRED), "expired");
  CHECK_STR(rx_key_event_name(RX_KEV_XGROUP_CREATECONSUMER), "xgroup-createconsumer");
  CHECK_STR(rx_key_event_name(RX_KEV_NEW), "new");
  CHECK_STR(rx_key_event_name(RX_KEV_OTHER), "");
  CHECK_STR(rx_key_event_name(-1), "");
  CHECK_STR(rx_key_event_name(RX__KEV_COUNT), "");
  CHECK_STR(rx_key_event_name(INT_MAX), "");
}

static void test_unknown_events(void) {
  rx_key_event ev;
  CHECK_EQ_INT(rx_key_event_type_of("json.set", 8), RX_KEV_OTHER);
  CHECK_EQ_INT(rx_key_event_type_of("", 0), RX_KEV_OTHER);
  CHECK_EQ_INT(rx_key_event_type_of(NULL, 0), RX_KEV_OTHER);
  CHECK_EQ_INT(rx_key_event_type_of("SET", 3), RX_KEV_OTHER); /* case matters */
  CHECK_EQ_INT(rx_key_event_type_of("se", 2), RX_KEV_OTHER);  /* no prefix match */
  CHECK_EQ_INT(rx_key_event_type_of("sets", 4), RX_KEV_OTHER);
  CHECK_EQ_INT(rx_key_event_type_of("set\0", 4), RX_KEV_OTHER);
  CHECK_EQ_INT(rx_key_event_type_of("expired!", 7), RX_KEV_EXPIRED); /* length wins */
  /* A module's event: OTHER, the name kept. */
  CHECK_EQ_INT(PARSE("__keyspace@0__:doc", "json.set", &ev), RX_OK);
  CHECK_EQ_INT(ev.type, RX_KEV_OTHER);
  CHECK_MEM(ev.event, ev.event_len, "json.set", 8);
  CHECK_EQ_INT(PARSE("__keyevent@0__:hexpired", "h", &ev), RX_OK);
  CHECK_EQ_INT(ev.type, RX_KEV_OTHER);
  CHECK_MEM(ev.event, ev.event_len, "hexpired", 8);
  CHECK_MEM(ev.key, ev.key_len, "h", 1);
  /* Binary junk (no NUL) is still just an unknown name. */
  CHECK_EQ_INT(rx_keyspace_parse("__keyspace@0__:k", 16, "\xff\xfe", 2, &ev), RX_OK);
  CHECK_EQ_INT(ev.type, RX_KEV_OTHER);
}

/* Every prefix of a valid channel, and every single-byte mutation of it,
 * parses or not without reading out of bounds (run under ASan/valgrind). */
static void test_prefix_and_mutation_sweep(void) {
  static const char base[] = "__keyevent@42__:expired";
  char buf[sizeof base];
  rx_key_event ev;
  int ok = 0;
  for (size_t n = 0; n <= sizeof base - 1; n++) {
    char *heap = malloc(n ? n : 1);
    CHECK(heap != NULL);
    memcpy(heap, base, n); /* exact-size heap block: ASan sees any overread */
    if (rx_keyspace_parse(heap, n, "k", 1, &ev) == RX_OK) ok++;
    free(heap);
  }
  CHECK_EQ_INT(ok, 7); /* the prefixes ending in at least one event byte */
  for (size_t i = 0; i < sizeof base - 1; i++) {
    for (int b = 0; b < 256; b++) {
      int rc;
      memcpy(buf, base, sizeof base);
      buf[i] = (char)b;
      rc = rx_keyspace_parse(buf, sizeof base - 1, "k", 1, &ev);
      CHECK(rc == RX_OK || rc == RX_NOMATCH);
      if (rc == RX_OK) CHECK(ev.db >= 0 && ev.event_len > 0);
    }
  }
}

int main(void) {
  RUN(test_keyspace_basic);
  RUN(test_keyevent_basic);
  RUN(test_binary_keys);
  RUN(test_never_reads_past_len);
  RUN(test_db_numbers);
  RUN(test_truncated_and_hostile);
  RUN(test_empty_key_and_event);
  RUN(test_invalid_args);
  RUN(test_event_names_round_trip);
  RUN(test_unknown_events);
  RUN(test_prefix_and_mutation_sweep);
  return TEST_REPORT();
}
