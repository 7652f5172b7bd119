/* URL and option parsing: no server needed. */
#include "rx_private.h"
#include "test.h"

static int parse(rx_opts *o, const char *url, char *err, size_t n) {
  return rx__opts_parse(o, url, err, n);
}

static void test_defaults(void) {
  rx_opts o;
  char err[200];
  CHECK_EQ_INT(parse(&o, "redis://localhost", err, sizeof err), RX_OK);
  CHECK_EQ_INT(o.scheme, RX_SCHEME_TCP);
  CHECK_STR(o.host, "localhost");
  CHECK_EQ_INT(o.port, 6379);
  CHECK_EQ_INT(o.db, 0);
  CHECK(o.password == NULL && o.username == NULL);
  CHECK_EQ_INT(o.timeout_ms, 5000);
  CHECK_EQ_INT(o.tls_verify, 1);
  CHECK_EQ_INT(o.tls_check_hostname, 1);
  rx__opts_free(&o);
  CHECK_EQ_INT(parse(&o, "redis://", err, sizeof err), RX_OK);
  CHECK_STR(o.host, "localhost");
  rx__opts_free(&o);
}

static void test_full(void) {
  rx_opts o;
  char err[200];
  CHECK_EQ_INT(parse(&o, "rediss://alice:s%3Acr%40t@redis.example.com:6380/3?timeout=2.5&client_name=w1&ssl_cert_reqs=none", err, sizeof err), RX_OK);
  CHECK_EQ_INT(o.scheme, RX_SCHEME_TLS);
  CHECK_STR(o.username, "alice");
  CHECK_STR(o.password, "s:cr@t");
  CHECK_STR(o.host, "redis.example.com");
  CHECK_EQ_INT(o.port, 6380);
  CHECK_EQ_INT(o.db, 3);
  CHECK_EQ_INT(o.timeout_ms, 2500);
  CHECK_STR(o.client_name, "w1");
  CHECK_EQ_INT(o.tls_verify, 0);
  char d[300];
  rx__opts_describe(&o, d, sizeof d);
  CHECK_STR(d, "rediss://alice:***@redis.example.com:6380/3");
  rx__opts_free(&o);
  /* Password only (Heroku's URLs: "redis://h:PASSWORD@host" and ":PASSWORD@"). */
  CHECK_EQ_INT(parse(&o, "redis://:p%20w@10.0.0.1:7000", err, sizeof err), RX_OK);
  CHECK(o.username == NULL);
  CHECK_STR(o.password, "p w");
  rx__opts_free(&o);
  /* An unescaped '@' in the password: the last '@' ends the userinfo. */
  CHECK_EQ_INT(parse(&o, "redis://u:a@b@host", err, sizeof err), RX_OK);
  CHECK_STR(o.password, "a@b");
  CHECK_STR(o.host, "host");
  rx__opts_free(&o);
}

static void test_ipv6_unix(void) {
  rx_opts o;
  char err[200];
  CHECK_EQ_INT(parse(&o, "redis://[::1]:6390/2", err, sizeof err), RX_OK);
  CHECK_STR(o.host, "::1");
  CHECK_EQ_INT(o.port, 6390);
  CHECK_EQ_INT(o.db, 2);
  char d[300];
  rx__opts_describe(&o, d, sizeof d);
  CHECK_STR(d, "redis://[::1]:6390/2");
  rx__opts_free(&o);
  CHECK_EQ_INT(parse(&o, "unix:///tmp/redis.sock?db=5&password=pw", err, sizeof err), RX_OK);
  CHECK_EQ_INT(o.scheme, RX_SCHEME_UNIX);
  CHECK_STR(o.path, "/tmp/redis.sock");
  CHECK_EQ_INT(o.db, 5);
  CHECK_STR(o.password, "pw");
  rx__opts_free(&o);
}

static void test_malformed(void) {
  static const char *const bad[] = {
      "", "localhost:6379", "http://localhost", "redis://host:0", "redis://host:65536",
      "redis://host:abc", "redis://host:", "redis://host/abc", "redis://host/-1",
      "redis://host/99999999999999", "redis://[::1", "redis://[]:1", "redis://[zz]:1",
      "redis://ho st", "redis://host?timeout", "redis://host?timeout=-1",
      "redis://host?timeout=abc", "redis://host?nosuch=1", "redis://host#frag",
      "redis://u:%zz@host", "redis://u:%00@host", "unix://", "unix://host/path",
      "redis://host?ssl_cert_reqs=maybe", "redis://host\n", "redis://host?db=x",
      "redis://ho\x01st", "redis://h%2Fst", "redis://host:12345678", "redis://host?client_name=a%20b",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rx_opts o;
    char err[200] = "";
    int rc = parse(&o, bad[i], err, sizeof err);
    CHECKF(rc == RX_EURL, "\"%s\" gave %d", bad[i], rc);
    CHECKF(err[0] != '\0', "no message for \"%s\"", bad[i]);
  }
  CHECK(rx__opts_parse(NULL == NULL ? &(rx_opts){0} : NULL, NULL, NULL, 0) == RX_EURL);
}

static void test_no_password_in_errors(void) {
  const char *urls[] = {"redis://u:SECRETPW@host:99999", "redis://u:SECRETPW@host/x",
                        "redis://:SECRETPW@host?nosuch=1", "redis://host?password=SECRETPW&db=z",
                        "rediss://u:SECRETPW@[::1"};
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    rx_opts o;
    char err[300] = "";
    CHECK(parse(&o, urls[i], err, sizeof err) == RX_EURL);
    CHECKF(strstr(err, "SECRETPW") == NULL, "password leaked: %s", err);
    char red[300];
    rx_url_redact(urls[i], red, sizeof red);
    CHECKF(strstr(red, "SECRETPW") == NULL, "password leaked: %s", red);
  }
  char red[300];
  rx_url_redact("redis://bob:SECRETPW@h:1/2", red, sizeof red);
  CHECK_STR(red, "redis://bob:***@h:1/2");
  rx_conn *c = rx_conn_new("redis://bob:SECRETPW@h:1/2", NULL, 0);
  CHECK(c != NULL);
  rx_conn_describe(c, red, sizeof red);
  CHECK_STR(red, "redis://bob:***@h:1/2");
  rx_conn_free(c);
}

static void test_options(void) {
  rx_opts o;
  char err[200];
  CHECK_EQ_INT(parse(&o, "redis://h?connect_timeout=0.25&keepalive=0&health_check_interval=1&health_check_timeout=0.5&reconnect_min=0.01&reconnect_max=1&reconnect_max_attempts=3&ssl_check_hostname=false&ssl_ca_certs=/x/ca.pem&username=u&db=7", err, sizeof err), RX_OK);
  CHECK_EQ_INT(o.connect_timeout_ms, 250);
  CHECK_EQ_INT(o.keepalive_s, 0);
  CHECK_EQ_INT(o.health_interval_ms, 1000);
  CHECK_EQ_INT(o.health_timeout_ms, 500);
  CHECK_EQ_INT(o.reconnect_min_ms, 10);
  CHECK_EQ_INT(o.reconnect_max_ms, 1000);
  CHECK_EQ_INT(o.reconnect_max_attempts, 3);
  CHECK_EQ_INT(o.tls_check_hostname, 0);
  CHECK_STR(o.tls_ca_file, "/x/ca.pem");
  CHECK_STR(o.username, "u");
  CHECK_EQ_INT(o.db, 7);
  rx_opts copy;
  CHECK_EQ_INT(rx__opts_copy(&copy, &o), RX_OK);
  rx__opts_free(&o);
  CHECK_STR(copy.tls_ca_file, "/x/ca.pem");
  rx__opts_free(&copy);
  rx_conn *c = rx_conn_new("redis://h", err, sizeof err);
  CHECK(c != NULL);
  CHECK_EQ_INT(rx_conn_set(c, "timeout", "1"), RX_OK);
  CHECK_EQ_INT(rx_conn_set(c, "nosuch", "1"), RX_EURL);
  CHECK(strstr(rx_conn_errstr(c), "nosuch") != NULL);
  CHECK_EQ_INT(rx_conn_set(c, NULL, "1"), RX_EINVAL);
  rx_conn_free(c);
  rx_conn_free(NULL);
}

static void test_status_table(void) {
  CHECK_STR(rx_errname(RX_OK), "OK");
  CHECK_STR(rx_errname(RX_ETIMEDOUT), "ETIMEDOUT");
  CHECK_STR(rx_errname(12345), "UNKNOWN");
  CHECK(strlen(rx_strerror(RX_EAUTH)) > 0);
  CHECK_STR(rx_strerror(-9999), "unknown status code");
  CHECK_STR(rx_version(), RX_VERSION_STRING);
  /* Every code has a distinct name. */
  int codes[] = {
#define X(name, value, msg) value,
      RX_STATUS_MAP(X)
#undef X
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) CHECK(codes[i] != codes[j]);
}

/* Server errors to codes (no server needed), the ones a command raised
 * inside a script as Redis 7 sends them and as 6.2 wrapped them. */
static int code_of(const char *text) {
  rx_reply r;
  memset(&r, 0, sizeof r);
  r.type = RX_REPLY_ERROR;
  r.str = (char *)text;
  r.len = strlen(text);
  return rx__reply_error_code(&r);
}

static void test_error_codes(void) {
  CHECK_EQ_INT(code_of("OOM command not allowed when used memory > 'maxmemory'."), RX_EOOM);
  CHECK_EQ_INT(code_of("WRONGTYPE Operation against a key holding the wrong kind of value"),
               RX_EWRONGTYPE);
  CHECK_EQ_INT(code_of("NOSCRIPT No matching script."), RX_ENOSCRIPT);
  CHECK_EQ_INT(code_of("ERR unknown command 'FOO'"), RX_EREPLY);
  CHECK_EQ_INT(code_of("OOMX not a code"), RX_EREPLY);
  /* Redis 6.2: the command's own error after the last ": -". */
  CHECK_EQ_INT(code_of("ERR Error running script (call to f_d9272757): @user_script:53: "
                       "@user_script: 53: -OOM command not allowed when used memory > "
                       "'maxmemory'."),
               RX_EOOM);
  CHECK_EQ_INT(code_of("ERR Error running script (call to f_1): @user_script:1: @user_script: "
                       "1: -WRONGTYPE Operation against a key holding the wrong kind of value"),
               RX_EWRONGTYPE);
  CHECK_EQ_INT(code_of("ERR Error running script (call to f_1): @user_script:1: @user_script: "
                       "1: -READONLY You can't write against a read only replica."),
               RX_EREADONLY);
  /* A script's own error, or a wrapped one without a code of ours. */
  CHECK_EQ_INT(code_of("ERR Error running script (call to f_1): @user_script:9: bad arg"),
               RX_EREPLY);
  CHECK_EQ_INT(code_of("ERR Error running script (call to f_1): @user_script:1: @user_script: "
                       "1: -ERR wrong number of arguments"),
               RX_EREPLY);
  CHECK_EQ_INT(code_of("ERR Error running script: -"), RX_EREPLY);
  CHECK_EQ_INT(code_of("ERR Error running script"), RX_EREPLY);
}

static void test_format(void) {
  rx_buf b = {0};
  const char *argv[3] = {"SET", "k\0y", ""};
  size_t lens[3] = {3, 3, 0};
  CHECK_EQ_INT(rx__format_command(&b, 3, argv, lens), RX_OK);
  CHECK_MEM(b.data, b.len, "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$0\r\n\r\n", 28);
  rx__buf_free(&b);
  CHECK_EQ_INT(rx__format_command(&b, 0, argv, lens), RX_EINVAL);
  rx__buf_free(&b);
}

int main(void) {
  RUN(test_defaults);
  RUN(test_full);
  RUN(test_ipv6_unix);
  RUN(test_malformed);
  RUN(test_no_password_in_errors);
  RUN(test_options);
  RUN(test_status_table);
  RUN(test_format);
  RUN(test_error_codes);
  return TEST_REPORT();
}
