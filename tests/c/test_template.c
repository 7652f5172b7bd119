/* Key templates: compile, match, format, glob. No server needed. */
#include "reactis/reactis.h"
#include "test.h"

static rx_template *tpl(const char *s) {
  char err[200];
  rx_template *t = rx_template_new(s, strlen(s), err, sizeof err);
  if (!t) fprintf(stderr, "template %s: %s\n", s, err);
  return t;
}

static void test_basic(void) {
  rx_template *t = tpl("user:{user_id}:notifications");
  CHECK(t);
  CHECK_EQ_INT(rx_template_count(t), 1);
  size_t nl;
  const char *nm = rx_template_name(t, 0, &nl);
  CHECK_MEM(nm, nl, "user_id", 7);
  CHECK(rx_template_name(t, 1, &nl) == NULL);
  CHECK_EQ_INT(rx_template_index(t, "user_id", 7), 0);
  CHECK_EQ_INT(rx_template_index(t, "nope", 4), -1);
  rx_capture c[2];
  CHECK_EQ_INT(rx_template_match(t, "user:42:notifications", 21, c, 2), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "42", 2);
  CHECK_EQ_INT(rx_template_match(t, "user::notifications", 19, c, 2), RX_NOMATCH);
  CHECK_EQ_INT(rx_template_match(t, "user:42:notification", 20, c, 2), RX_NOMATCH);
  CHECK_EQ_INT(rx_template_match(t, "xuser:42:notifications", 22, c, 2), RX_NOMATCH);
  CHECK_EQ_INT(rx_template_match(t, "user:4:2:notifications", 22, c, 2), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "4:2", 3);
  size_t gl;
  const char *g = rx_template_glob(t, &gl);
  CHECK_MEM(g, gl, "user:*:notifications", 20);
  const char *v[1] = {"7"};
  size_t vl[1] = {1};
  char *out;
  size_t ol;
  CHECK_EQ_INT(rx_template_format(t, v, vl, 1, &out, &ol), RX_OK);
  CHECK_MEM(out, ol, "user:7:notifications", 20);
  rx_free(out);
  CHECK_EQ_INT(rx_template_format(t, v, vl, 0, &out, &ol), RX_EINVAL);
  vl[0] = 0;
  CHECK_EQ_INT(rx_template_format(t, v, vl, 1, &out, &ol), RX_EINVAL);
  rx_template_free(t);
}

static void test_suffix_and_multi(void) {
  rx_template *t = tpl("last_connection_time_of_device{device}");
  rx_capture c[3];
  CHECK_EQ_INT(rx_template_match(t, "last_connection_time_of_device100002", 36, c, 3), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "100002", 6);
  CHECK_EQ_INT(rx_template_match(t, "last_connection_time_of_device", 30, c, 3), RX_NOMATCH);
  rx_template_free(t);
  t = tpl("{a}:{b}");
  CHECK_EQ_INT(rx_template_match(t, "x:y:z", 5, c, 3), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "x", 1);
  CHECK_MEM(c[1].ptr, c[1].len, "y:z", 3);
  rx_template_free(t);
  /* Backtracking: the first literal occurrence does not always work. */
  t = tpl("{a}ab{b}abc");
  CHECK_EQ_INT(rx_template_match(t, "xabyabzabc", 10, c, 3), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "x", 1);
  CHECK_MEM(c[1].ptr, c[1].len, "yabz", 4);
  CHECK_EQ_INT(rx_template_match(t, "xabcabc", 7, c, 3), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "x", 1);
  CHECK_MEM(c[1].ptr, c[1].len, "c", 1);
  CHECK_EQ_INT(rx_template_match(t, "abab", 4, c, 3), RX_NOMATCH);
  rx_template_free(t);
  /* Capture array shorter than the placeholders: still matches. */
  t = tpl("SELLER:{id}:{kind}");
  CHECK_EQ_INT(rx_template_match(t, "SELLER:1:sms", 12, c, 1), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "1", 1);
  CHECK_EQ_INT(rx_template_match(t, "SELLER:1:sms", 12, NULL, 0), RX_OK);
  rx_template_free(t);
}

static void test_binary_and_escapes(void) {
  char err[200];
  rx_template *t = rx_template_new("k\0{x}\xff", 6, err, sizeof err);
  CHECK(t);
  rx_capture c[1];
  CHECK_EQ_INT(rx_template_match(t, "k\0\x01\x02\xff", 5, c, 1), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "\x01\x02", 2);
  CHECK_EQ_INT(rx_template_match(t, "k\0\xff", 3, c, 1), RX_NOMATCH);
  rx_template_free(t);
  /* Literal braces (a Redis hash tag) and glob characters. */
  t = tpl("rx:{{{queue}}}:ready*?[x]\\");
  CHECK(t);
  CHECK_EQ_INT(rx_template_match(t, "rx:{sms}:ready*?[x]\\", 20, c, 1), RX_OK);
  CHECK_MEM(c[0].ptr, c[0].len, "sms", 3);
  size_t gl;
  const char *g = rx_template_glob(t, &gl);
  CHECK_MEM(g, gl, "rx:{*}:ready\\*\\?\\[x\\]\\\\", 23);
  const char *v[1] = {"q1"};
  size_t vl[1] = {2};
  char *out;
  size_t ol;
  CHECK_EQ_INT(rx_template_format(t, v, vl, 1, &out, &ol), RX_OK);
  CHECK_MEM(out, ol, "rx:{q1}:ready*?[x]\\", 19);
  rx_free(out);
  size_t sl;
  const char *src = rx_template_source(t, &sl);
  CHECK_MEM(src, sl, "rx:{{{queue}}}:ready*?[x]\\", 26);
  rx_template_free(t);
  /* No placeholders at all: an exact name. */
  t = tpl("plain");
  CHECK_EQ_INT(rx_template_match(t, "plain", 5, NULL, 0), RX_OK);
  CHECK_EQ_INT(rx_template_match(t, "plain!", 6, NULL, 0), RX_NOMATCH);
  CHECK_EQ_INT(rx_template_format(t, NULL, NULL, 0, &out, &ol), RX_OK);
  CHECK_MEM(out, ol, "plain", 5);
  rx_free(out);
  rx_template_free(t);
}

static void test_malformed(void) {
  static const char *const bad[] = {"", "a{", "a{b", "a}", "{}", "{1a}", "{a-b}", "{a}{b}",
                                    "{a}:{a}", "x{ }", "{a}}}{", "a}}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[200] = "";
    rx_template *t = rx_template_new(bad[i], strlen(bad[i]), err, sizeof err);
    CHECKF(t == NULL, "\"%s\" compiled", bad[i]);
    CHECKF(err[0], "no message for \"%s\"", bad[i]);
  }
  CHECK(rx_template_new(NULL, 0, NULL, 0) == NULL);
  rx_template_free(NULL);
  CHECK_EQ_INT(rx_template_match(NULL, "x", 1, NULL, 0), RX_EINVAL);
}

static void test_hostile_is_fast(void) {
  /* Many placeholders and a long name of repeated bytes: linear-ish work. */
  rx_template *t = tpl("{a}x{b}x{c}x{d}x{e}x{f}x{g}xy");
  static char name[200000];
  memset(name, 'x', sizeof name);
  rx_capture c[7];
  CHECK_EQ_INT(rx_template_match(t, name, sizeof name, c, 7), RX_NOMATCH);
  name[sizeof name - 1] = 'y';
  CHECK_EQ_INT(rx_template_match(t, name, sizeof name, c, 7), RX_OK);
  CHECK_EQ_INT(c[0].len, 1);
  rx_template_free(t);
}

int main(void) {
  RUN(test_basic);
  RUN(test_suffix_and_multi);
  RUN(test_binary_and_escapes);
  RUN(test_malformed);
  RUN(test_hostile_is_fast);
  return TEST_REPORT();
}
