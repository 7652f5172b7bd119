/* The connection layer against real redis-server processes: commands,
 * pipelining, unix sockets, AUTH and ACL users, TLS (verify on and off,
 * wrong host, wrong CA, TLS against plain and plain against TLS), a peer that
 * is not Redis, a server that vanishes mid-command, timeouts, wakeups from
 * another thread and EINTR. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rx_private.h"
#include "server.h"
#include "test.h"

static rxt_server plain;

static rx_conn *open_url(const char *url) {
  char err[256];
  rx_conn *c = rx_conn_new(url, err, sizeof err);
  if (!c) fprintf(stderr, "rx_conn_new(%s): %s\n", url, err);
  return c;
}

static void test_commands(void) {
  rx_conn *c = open_url(plain.url);
  CHECK(c);
  rx_reply *r = NULL;
  const char *set[3] = {"SET", "bin\0key\xff", "v\0\xff\r\n"};
  size_t setl[3] = {3, 8, 5};
  CHECK_EQ_INT(rx_conn_call(c, &r, 3, set, setl), RX_OK);
  CHECK(rx__reply_is(r, "OK"));
  rx_reply_free(r);
  const char *get[2] = {"GET", "bin\0key\xff"};
  size_t getl[2] = {3, 8};
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, get, getl), RX_OK);
  CHECK_EQ_INT(r->type, RX_REPLY_STRING);
  CHECK_MEM(r->str, r->len, "v\0\xff\r\n", 5);
  rx_reply_free(r);
  /* Error replies: rx_conn_command hands them over, rx_conn_call maps them. */
  const char *lp[3] = {"LPUSH", "bin\0key\xff", "x"};
  size_t lpl[3] = {5, 8, 1};
  CHECK_EQ_INT(rx_conn_command(c, &r, 3, lp, lpl), RX_OK);
  CHECK_EQ_INT(r->type, RX_REPLY_ERROR);
  rx_reply_free(r);
  CHECK_EQ_INT(rx_conn_call(c, &r, 3, lp, lpl), RX_EWRONGTYPE);
  CHECK(r == NULL);
  CHECK(strstr(rx_conn_errstr(c), "WRONGTYPE") != NULL);
  const char *nosuch[1] = {"NOSUCHCOMMAND"};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, nosuch, NULL), RX_EREPLY);
  /* The link survives error replies. */
  const char *ping[1] = {"PING"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 1, ping, NULL), RX_OK);
  CHECK(rx__reply_is(r, "PONG"));
  rx_reply_free(r);
  /* Arrays and integers. */
  const char *rp[5] = {"RPUSH", "list", "a", "", "c"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 5, rp, NULL), RX_OK);
  CHECK_EQ_INT(r->type, RX_REPLY_INTEGER);
  CHECK_EQ_INT(r->integer, 3);
  rx_reply_free(r);
  const char *lr[4] = {"LRANGE", "list", "0", "-1"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 4, lr, NULL), RX_OK);
  CHECK_EQ_INT(r->type, RX_REPLY_ARRAY);
  CHECK_EQ_INT(r->elements, 3);
  CHECK_EQ_INT(r->element[1]->len, 0);
  CHECK(rx__reply_is(r->element[2], "c"));
  rx_reply_free(r);
  const char *g2[2] = {"GET", "missing"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, g2, NULL), RX_OK);
  CHECK_EQ_INT(r->type, RX_REPLY_NIL);
  rx_reply_free(r);
  /* A large value (beyond one read). */
  size_t big = 3 * 1024 * 1024;
  char *val = malloc(big);
  CHECK(val);
  for (size_t i = 0; i < big; i++) val[i] = (char)(i * 7);
  const char *sb[3] = {"SET", "big", val};
  size_t sbl[3] = {3, 3, big};
  int rc = rx_conn_call(c, NULL, 3, sb, sbl);
  const char *gb[2] = {"GET", "big"};
  if (rc == RX_OK) rc = rx_conn_call(c, &r, 2, gb, NULL);
  int same = rc == RX_OK && r->len == big && memcmp(r->str, val, big) == 0;
  free(val);
  rx_reply_free(r);
  CHECK(same);
  rx_conn_free(c);
}

static void test_pipeline_publish(void) {
  rx_conn *c = open_url(plain.url);
  CHECK(c);
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "%d", i);
    const char *argv[3] = {"SET", key, key};
    CHECK_EQ_INT(rx_conn_append(c, 3, argv, NULL), RX_OK);
  }
  const char *argv[2] = {"GET", "999"};
  CHECK_EQ_INT(rx_conn_append(c, 2, argv, NULL), RX_OK);
  rx_reply *r;
  for (int i = 0; i < 1000; i++) {
    CHECK_EQ_INT(rx_conn_get_reply(c, &r), RX_OK);
    CHECK(rx__reply_is(r, "OK"));
    rx_reply_free(r);
  }
  CHECK_EQ_INT(rx_conn_get_reply(c, &r), RX_OK);
  CHECK(rx__reply_is(r, "999"));
  rx_reply_free(r);
  CHECK_EQ_INT(rx_conn_get_reply(c, &r), RX_ESTATE);
  long long n = -1;
  CHECK_EQ_INT(rx_conn_publish(c, "ch\0an", 5, "m\xff", 2, &n), RX_OK);
  CHECK_EQ_INT(n, 0);
  rx_conn_free(c);
}

static void test_unix_select_name(void) {
  char url[800];
  snprintf(url, sizeof url, "unix://%s?db=4&client_name=tester", plain.unix_path);
  rx_conn *c = open_url(url);
  CHECK(c);
  rx_reply *r;
  const char *set[3] = {"SET", "where", "db4"};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 3, set, NULL), RX_OK);
  const char *name[2] = {"CLIENT", "GETNAME"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, name, NULL), RX_OK);
  CHECK(rx__reply_is(r, "tester"));
  rx_reply_free(r);
  rx_conn_free(c);
  /* The key is in db 4, not in db 0. */
  snprintf(url, sizeof url, "%s/4", plain.url);
  c = open_url(url);
  CHECK(c);
  const char *get[2] = {"GET", "where"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, get, NULL), RX_OK);
  CHECK(rx__reply_is(r, "db4"));
  rx_reply_free(r);
  rx_conn_free(c);
  c = open_url(plain.url);
  CHECK(c);
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, get, NULL), RX_OK);
  CHECK_EQ_INT(r->type, RX_REPLY_NIL);
  rx_reply_free(r);
  rx_conn_free(c);
  /* A database that does not exist. */
  snprintf(url, sizeof url, "%s/99", plain.url);
  c = open_url(url);
  CHECK(c);
  CHECK(rx_conn_connect(c) < 0);
  CHECK(strstr(rx_conn_errstr(c), "SELECT") != NULL);
  rx_conn_free(c);
}

static void test_auth(void) {
  rxt_server s;
  const char *args[] = {"--requirepass", "Sup3rSecret", NULL};
  CHECK(rxt_server_start(&s, args) == 0);
  char *r = rxt_cmd_ex(&s, NULL, "Sup3rSecret", 8,
                       (const char *const[]){"ACL", "SETUSER", "alice", "on", ">Al1cePw", "~*",
                                             "&*", "+@all"},
                       NULL, NULL);
  free(r);
  char url[800];
  rx_conn *c;
  /* Password for the default user. */
  snprintf(url, sizeof url, "redis://:Sup3rSecret@127.0.0.1:%d", s.port);
  c = open_url(url);
  CHECK(c);
  CHECK_EQ_INT(rx_conn_connect(c), RX_OK);
  rx_conn_free(c);
  /* ACL user. */
  snprintf(url, sizeof url, "redis://alice:Al1cePw@127.0.0.1:%d", s.port);
  c = open_url(url);
  CHECK(c);
  rx_reply *rep;
  const char *who[2] = {"ACL", "WHOAMI"};
  CHECK_EQ_INT(rx_conn_call(c, &rep, 2, who, NULL), RX_OK);
  CHECK(rx__reply_is(rep, "alice"));
  rx_reply_free(rep);
  rx_conn_free(c);
  /* Wrong password: RX_EAUTH, and the message never shows it. */
  snprintf(url, sizeof url, "redis://:WrongPassw0rd@127.0.0.1:%d", s.port);
  c = open_url(url);
  CHECK(c);
  CHECK_EQ_INT(rx_conn_connect(c), RX_EAUTH);
  CHECKF(strstr(rx_conn_errstr(c), "WrongPassw0rd") == NULL, "%s", rx_conn_errstr(c));
  CHECK(strstr(rx_conn_errstr(c), "authentication") != NULL);
  rx_conn_free(c);
  /* Unknown ACL user. */
  snprintf(url, sizeof url, "redis://mallory:Sup3rSecret@127.0.0.1:%d", s.port);
  c = open_url(url);
  CHECK(c);
  CHECK_EQ_INT(rx_conn_connect(c), RX_EAUTH);
  CHECK(strstr(rx_conn_errstr(c), "Sup3rSecret") == NULL);
  rx_conn_free(c);
  /* No password at all: the first command is refused with RX_EAUTH. */
  c = open_url(s.url);
  CHECK(c);
  const char *ping[1] = {"PING"};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_EAUTH);
  rx_conn_free(c);
  rxt_server_cleanup(&s);
}

static void test_connect_errors(void) {
  char url[200];
  int port = rxt_free_port();
  snprintf(url, sizeof url, "redis://:pw@127.0.0.1:%d?connect_timeout=2", port);
  rx_conn *c = open_url(url);
  CHECK(c);
  CHECK_EQ_INT(rx_conn_connect(c), RX_ECONNECT);
  CHECK(strstr(rx_conn_errstr(c), "refused") != NULL);
  const char *ping[1] = {"PING"};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_ECONNECT);
  rx_conn_free(c);
  c = open_url("redis://no-such-host.invalid:6379");
  CHECK(c);
  CHECK_EQ_INT(rx_conn_connect(c), RX_ERESOLVE);
  rx_conn_free(c);
  c = open_url("unix:///nonexistent/dir/redis.sock");
  CHECK(c);
  CHECK_EQ_INT(rx_conn_connect(c), RX_ECONNECT);
  rx_conn_free(c);
  char err[200];
  CHECK(rx_conn_new("redis://u:topsecret@host:99999", err, sizeof err) == NULL);
  CHECK(strstr(err, "topsecret") == NULL && strstr(err, "port") != NULL);
}

/* A peer that is not Redis: answers like an HTTP server and closes. */
static int http_fd;
static void *http_thread(void *arg) {
  (void)arg;
  int c = accept(http_fd, NULL, NULL);
  if (c >= 0) {
    char buf[256];
    ssize_t n = read(c, buf, sizeof buf);
    (void)n;
    const char *resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    n = write(c, resp, strlen(resp));
    (void)n;
    usleep(200000);
    close(c);
  }
  return NULL;
}

static void test_not_redis(void) {
  http_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(http_fd, (struct sockaddr *)&a, sizeof a) == 0);
  socklen_t al = sizeof a;
  getsockname(http_fd, (struct sockaddr *)&a, &al);
  listen(http_fd, 4);
  pthread_t t;
  pthread_create(&t, NULL, http_thread, NULL);
  char url[100];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
  rx_conn *c = open_url(url);
  const char *ping[1] = {"PING"};
  int rc = rx_conn_call(c, NULL, 1, ping, NULL);
  pthread_join(t, NULL);
  close(http_fd);
  CHECKF(rc == RX_EPROTO, "got %s: %s", rx_errname(rc), rx_conn_errstr(c));
  CHECK(strstr(rx_conn_errstr(c), "protocol") != NULL);
  rx_conn_free(c);
}

static void test_tls(void) {
  rxt_server s;
  CHECK(rxt_server_start_tls(&s, 1, NULL) == 0);
  char url[1200];
  rx_reply *r;
  const char *ping[1] = {"PING"};
  /* Verified against our CA, host name localhost. */
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_ca_certs=%s/ca.crt", s.tls_port, s.dir);
  rx_conn *c = open_url(url);
  CHECK(c);
  CHECKF(rx_conn_call(c, &r, 1, ping, NULL) == RX_OK, "%s", rx_conn_errstr(c));
  CHECK(rx__reply_is(r, "PONG"));
  rx_reply_free(r);
  /* A big value through TLS both ways. */
  size_t big = 1 << 20;
  char *val = malloc(big);
  memset(val, 'x', big);
  const char *sb[3] = {"SET", "big", val};
  size_t sbl[3] = {3, 3, big};
  int rc = rx_conn_call(c, NULL, 3, sb, sbl);
  free(val);
  CHECK_EQ_INT(rc, RX_OK);
  const char *gb[2] = {"STRLEN", "big"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 2, gb, NULL), RX_OK);
  CHECK_EQ_INT(r->integer, (long long)big);
  rx_reply_free(r);
  rx_conn_free(c);
  /* By IP address: the certificate has IP:127.0.0.1. */
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d?ssl_ca_certs=%s/ca.crt", s.tls_port, s.dir);
  c = open_url(url);
  CHECKF(rx_conn_connect(c) == RX_OK, "%s", rx_conn_errstr(c));
  rx_conn_free(c);
  /* Without our CA, verification fails; with ssl_cert_reqs=none it passes. */
  snprintf(url, sizeof url, "rediss://localhost:%d", s.tls_port);
  c = open_url(url);
  CHECK_EQ_INT(rx_conn_connect(c), RX_ETLSVERIFY);
  CHECK(strstr(rx_conn_errstr(c), "ssl_cert_reqs=none") != NULL);
  rx_conn_free(c);
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_cert_reqs=none", s.tls_port);
  c = open_url(url);
  CHECKF(rx_conn_call(c, NULL, 1, ping, NULL) == RX_OK, "%s", rx_conn_errstr(c));
  rx_conn_free(c);
  /* The wrong CA. */
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_ca_certs=%s/other-ca.crt", s.tls_port, s.dir);
  c = open_url(url);
  CHECK_EQ_INT(rx_conn_connect(c), RX_ETLSVERIFY);
  rx_conn_free(c);
  /* TLS against the plain port, and plain against the TLS port. */
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_cert_reqs=none&connect_timeout=1", s.port);
  c = open_url(url);
  rc = rx_conn_connect(c);
  /* Redis reads the ClientHello as the start of an inline command and waits
   * for the rest, so the handshake times out; the message says why. */
  CHECKF(rc == RX_ETLS || rc == RX_ETIMEDOUT, "%s: %s", rx_errname(rc), rx_conn_errstr(c));
  CHECK(strstr(rx_conn_errstr(c), "TLS") != NULL);
  rx_conn_free(c);
  snprintf(url, sizeof url, "redis://localhost:%d?timeout=3", s.tls_port);
  c = open_url(url);
  rc = rx_conn_call(c, NULL, 1, ping, NULL);
  CHECKF(rc == RX_EIO || rc == RX_EPROTO || rc == RX_ETIMEDOUT, "%s", rx_errname(rc));
  rx_conn_free(c);
  rxt_server_cleanup(&s);

  /* A server whose certificate names another host: refused by default,
   * accepted only when the host-name check is turned off. */
  const char *args[] = {"--tls-cert-file", "@DIR@/wronghost.crt", "--tls-key-file",
                        "@DIR@/wronghost.key", NULL};
  CHECK(rxt_server_start_tls(&s, 0, args) == 0);
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_ca_certs=%s/ca.crt", s.tls_port, s.dir);
  c = open_url(url);
  CHECK_EQ_INT(rx_conn_connect(c), RX_ETLSVERIFY);
  CHECK(strstr(rx_conn_errstr(c), "another host") != NULL);
  rx_conn_free(c);
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_ca_certs=%s/ca.crt&ssl_server_name=wrong.example",
           s.tls_port, s.dir);
  c = open_url(url);
  CHECKF(rx_conn_connect(c) == RX_OK, "%s", rx_conn_errstr(c));
  rx_conn_free(c);
  snprintf(url, sizeof url, "rediss://localhost:%d?ssl_ca_certs=%s/ca.crt&ssl_check_hostname=false",
           s.tls_port, s.dir);
  c = open_url(url);
  CHECKF(rx_conn_connect(c) == RX_OK, "%s", rx_conn_errstr(c));
  rx_conn_free(c);
  rxt_server_cleanup(&s);
}

static void test_vanish_and_timeout(void) {
  rxt_server s;
  CHECK(rxt_server_start(&s, NULL) == 0);
  char url[800];
  snprintf(url, sizeof url, "%s?timeout=1", s.url);
  rx_conn *c = open_url(url);
  const char *ping[1] = {"PING"};
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_OK);
  /* A paused server: the command times out and the link is dropped. */
  rxt_server_pause(&s);
  long long t0 = rxt_ms();
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_ETIMEDOUT);
  long long took = rxt_ms() - t0;
  CHECKF(took >= 900 && took < 3000, "took %lld ms", took);
  CHECK(!rx_conn_is_connected(c));
  rxt_server_resume(&s);
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_OK);
  /* The server dies in the middle of a blocking command. */
  CHECK_EQ_INT(rx_conn_set(c, "timeout", "0"), RX_OK);
  CHECK_EQ_INT(rx_conn_append(c, 3, (const char *const[]){"BLPOP", "nothing", "0"}, NULL), RX_OK);
  rx_reply *r = NULL;
  CHECK_EQ_INT(rx__conn_flush(c, -1), RX_OK);
  rxt_server_kill(&s);
  CHECK_EQ_INT(rx_conn_get_reply(c, &r), RX_EIO);
  CHECK(r == NULL);
  CHECK(!rx_conn_is_connected(c));
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_ECONNECT);
  CHECK(rxt_server_restart(&s) == 0);
  CHECK_EQ_INT(rx_conn_call(c, NULL, 1, ping, NULL), RX_OK);
  rx_conn_free(c);
  rxt_server_cleanup(&s);
}

static void *wake_later(void *arg) {
  rxt_sleep_ms(200);
  rx_conn_wakeup(arg);
  return NULL;
}

static void on_alarm(int sig) { (void)sig; }

static void test_wakeup_eintr(void) {
  rx_conn *c = open_url(plain.url);
  rx_reply *r = NULL;
  const char *blpop[3] = {"BLPOP", "never", "1"};
  pthread_t t;
  pthread_create(&t, NULL, wake_later, c);
  long long t0 = rxt_ms();
  int rc = rx_conn_command(c, &r, 3, blpop, NULL);
  long long took = rxt_ms() - t0;
  pthread_join(t, NULL);
  CHECK_EQ_INT(rc, RX_WOKEN);
  CHECKF(took < 700, "took %lld ms", took);
  /* The interrupted link is dropped: the next command reconnects and gets
   * its own reply, not the late BLPOP one. */
  CHECK(!rx_conn_is_connected(c));
  const char *ping[1] = {"PING"};
  CHECK_EQ_INT(rx_conn_call(c, &r, 1, ping, NULL), RX_OK);
  CHECK(rx__reply_is(r, "PONG"));
  rx_reply_free(r);
  /* A signal interrupts the wait: RX_EINTR, not a silent retry. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART */
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval itv = {{0, 0}, {0, 200000}};
  setitimer(ITIMER_REAL, &itv, NULL);
  t0 = rxt_ms();
  rc = rx_conn_command(c, &r, 3, blpop, NULL);
  took = rxt_ms() - t0;
  CHECK_EQ_INT(rc, RX_EINTR);
  CHECKF(took < 700, "took %lld ms", took);
  CHECK_EQ_INT(rx_conn_call(c, &r, 1, ping, NULL), RX_OK);
  CHECK(rx__reply_is(r, "PONG"));
  rx_reply_free(r);
  /* A wakeup before the wait also stops it. */
  rx_conn_wakeup(c);
  CHECK_EQ_INT(rx_conn_command(c, &r, 3, blpop, NULL), RX_WOKEN);
  rx_conn_free(c);
}

int main(void) {
  signal(SIGPIPE, SIG_DFL); /* the library must never raise SIGPIPE */
  if (rxt_server_start(&plain, NULL) != 0) return 1;
  RUN(test_commands);
  RUN(test_pipeline_publish);
  RUN(test_unix_select_name);
  RUN(test_auth);
  RUN(test_connect_errors);
  RUN(test_not_redis);
  RUN(test_tls);
  RUN(test_vanish_and_timeout);
  RUN(test_wakeup_eintr);
  rxt_server_cleanup(&plain);
  return TEST_REPORT();
}
