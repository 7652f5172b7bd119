/* test_support.c — the test helpers themselves: servers start, answer,
 * restart on the same port, TLS listens, and nothing is left running. */
#include "server.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int file_exists(const char *dir, const char *name) {
  char path[700];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &st) == 0 && st.st_size > 0;
}

static void test_helpers(void) {
  long long t0 = rxt_ms();
  int p = rxt_free_port();
  CHECK(p > 0 && p < 65536);
  rxt_sleep_ms(20);
  CHECK(rxt_ms() - t0 >= 19);
  CHECK(rxt_tmp_root()[0] == '/');
}

static void test_resp_flat(void) {
  const char *items[4];
  size_t lens[4];
  static const char msg[] = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\na\0b\r\n";
  CHECK_EQ_INT(rxt_resp_flat(msg, sizeof msg - 1, items, lens, 4), 3);
  CHECK_MEM(items[0], lens[0], "message", 7);
  CHECK_MEM(items[2], lens[2], "a\0b", 3);
  CHECK_EQ_INT(rxt_resp_flat("+OK\r\n", 5, items, lens, 4), 1);
  CHECK_MEM(items[0], lens[0], "OK", 2);
  CHECK_EQ_INT(rxt_resp_flat(":42\r\n", 5, items, lens, 4), 1);
  CHECK_MEM(items[0], lens[0], "42", 2);
  CHECK_EQ_INT(rxt_resp_flat("*2\r\n$-1\r\n:1\r\n", 13, items, lens, 4), 2);
  CHECK(items[0] == NULL);
  CHECK_EQ_INT(rxt_resp_flat("*2\r\n$3\r\nab", 10, items, lens, 4), -1);
}

static void test_start_cmd_restart(void) {
  rxt_server s;
  char *r;
  int port, pid;
  const char *ping[] = {"PING", NULL};
  const char *set[] = {"SET", "k", "v", NULL};
  const char *get[] = {"GET", "k", NULL};
  CHECK(rxt_server_start(&s, NULL) == 0);
  CHECK(s.pid > 0 && s.port > 0 && s.tls_port == 0);
  CHECK(strstr(s.url, "redis://127.0.0.1:") == s.url);
  CHECK(strstr(s.unix_path, s.dir) == s.unix_path);
  r = rxt_cmd(&s, ping);
  CHECK(r != NULL);
  CHECK_STR(r, "+PONG\r\n");
  free(r);
  r = rxt_cmd(&s, set);
  CHECK(r && strcmp(r, "+OK\r\n") == 0);
  free(r);
  r = rxt_cmd(&s, get);
  CHECK(r && strcmp(r, "$1\r\nv\r\n") == 0);
  free(r);

  /* Restart: same port, new process, no persistence. */
  port = s.port;
  pid = s.pid;
  CHECK(rxt_server_restart(&s) == 0);
  CHECK(s.port == port && s.pid != pid && s.pid > 0);
  r = rxt_cmd(&s, get);
  CHECK(r && strcmp(r, "$-1\r\n") == 0);
  free(r);

  /* Kill, then restart again. */
  rxt_server_kill(&s);
  CHECK(s.pid == 0);
  CHECK(kill(pid, 0) != 0);
  CHECK(rxt_server_restart(&s) == 0);
  r = rxt_cmd(&s, ping);
  CHECK(r && strcmp(r, "+PONG\r\n") == 0);
  free(r);

  /* Pause: the port still accepts but nothing answers; resume fixes it. */
  {
    rxt_raw raw;
    CHECK(rxt_raw_open(&s, &raw) == 0);
    rxt_server_pause(&s);
    CHECK(rxt_raw_send(&raw, 1, ping, NULL) == 0);
    CHECK(rxt_raw_read(&raw, 200, NULL) == NULL);
    rxt_server_resume(&s);
    CHECK(rxt_raw_read(&raw, 5000, NULL) != NULL);
    CHECK_STR(raw.last, "+PONG\r\n");
    rxt_raw_close(&raw);
  }
  pid = s.pid;
  rxt_server_stop(&s);
  CHECK(s.pid == 0 && kill(pid, 0) != 0);
  rxt_server_cleanup(&s);
  CHECK(access(s.dir, F_OK) != 0);
}

static void test_extra_args_auth(void) {
  rxt_server s;
  const char *args[] = {"--requirepass", "pw", NULL};
  const char *ping[] = {"PING", NULL};
  char *r;
  CHECK(rxt_server_start(&s, args) == 0);
  r = rxt_cmd(&s, ping);
  CHECK(r && strncmp(r, "-NOAUTH", 7) == 0);
  free(r);
  r = rxt_cmd_ex(&s, NULL, "pw", 1, ping, NULL, NULL);
  CHECK(r && strcmp(r, "+PONG\r\n") == 0);
  free(r);
  rxt_server_cleanup(&s);
}

static void test_unix_only_cmd(void) {
  /* A TLS-only server has no plain port: rxt_cmd goes over the socket. */
  rxt_server s;
  const char *ping[] = {"PING", NULL};
  char *r;
  CHECK(rxt_server_start_tls(&s, 0, NULL) == 0);
  CHECK(s.port == 0 && s.tls_port > 0 && s.url[0] == '\0');
  CHECK(strstr(s.tls_url, "rediss://localhost:") == s.tls_url);
  CHECK(file_exists(s.dir, "ca.crt") && file_exists(s.dir, "ca.key"));
  CHECK(file_exists(s.dir, "server.crt") && file_exists(s.dir, "server.key"));
  CHECK(file_exists(s.dir, "wronghost.crt") && file_exists(s.dir, "wronghost.key"));
  CHECK(file_exists(s.dir, "other-ca.crt") && file_exists(s.dir, "client.crt"));
  CHECK(file_exists(s.dir, "client.key"));
  r = rxt_cmd(&s, ping);
  CHECK(r && strcmp(r, "+PONG\r\n") == 0);
  free(r);
  {
    /* The TLS port accepts TCP connections. */
    rxt_server probe = s;
    rxt_raw raw;
    probe.port = s.tls_port;
    CHECK(rxt_raw_open(&probe, &raw) == 0);
    rxt_raw_close(&raw);
  }
  rxt_server_cleanup(&s);
}

static void test_tls_plain_too(void) {
  rxt_server s;
  const char *ping[] = {"PING", NULL};
  char *r;
  CHECK(rxt_server_start_tls(&s, 1, NULL) == 0);
  CHECK(s.port > 0 && s.tls_port > 0 && s.port != s.tls_port);
  r = rxt_cmd(&s, ping);
  CHECK(r && strcmp(r, "+PONG\r\n") == 0);
  free(r);
  CHECK(rxt_server_restart(&s) == 0);
  r = rxt_cmd(&s, ping);
  CHECK(r && strcmp(r, "+PONG\r\n") == 0);
  free(r);
  rxt_server_cleanup(&s);
}

/* "@DIR@" in extra args, and a later argument overriding a default. */
static void test_dir_placeholder(void) {
  rxt_server s;
  const char *args[] = {"--tls-cert-file", "@DIR@/wronghost.crt", "--tls-key-file",
                        "@DIR@/wronghost.key", NULL};
  const char *get[] = {"CONFIG", "GET", "tls-cert-file", NULL};
  char *r;
  CHECK(rxt_server_start_tls(&s, 0, args) == 0);
  r = rxt_cmd(&s, get);
  CHECK(r != NULL);
  CHECKF(strstr(r, s.dir) && strstr(r, "/wronghost.crt"), "%s", r);
  free(r);
  rxt_server_cleanup(&s);
}

static void test_bad_args_fail_cleanly(void) {
  rxt_server s;
  const char *args[] = {"--no-such-option", "1", NULL};
  fprintf(stderr, "  (a start-up failure report is expected below)\n");
  CHECK(rxt_server_start(&s, args) == -1);
  CHECK(s.pid == 0);
  rxt_server_cleanup(&s);
}

/* A child process that starts a server and then dies without cleaning up:
 * the server must not survive it. */
static void test_no_orphans(void) {
  int fds[2], status, port = 0;
  pid_t child;
  CHECK(pipe(fds) == 0);
  child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    rxt_server s;
    close(fds[0]);
    if (rxt_server_start(&s, NULL) != 0) _exit(2);
    if (write(fds[1], &s.port, sizeof s.port) != (ssize_t)sizeof s.port) _exit(3);
    close(fds[1]);
    raise(SIGKILL); /* no atexit, no handlers: only PDEATHSIG remains */
    _exit(4);
  }
  close(fds[1]);
  CHECK(read(fds[0], &port, sizeof port) == (ssize_t)sizeof port);
  close(fds[0]);
  waitpid(child, &status, 0);
  CHECK(port > 0);
  {
    /* Nothing listens on the port any more (give the kernel a moment). */
    rxt_server probe;
    long long deadline = rxt_ms() + 5000;
    int gone = 0;
    memset(&probe, 0, sizeof probe);
    probe.port = port;
    while (!gone && rxt_ms() < deadline) {
      const char *ping[] = {"PING", NULL};
      rxt_raw raw;
      int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 2); /* the expected connection failure is not news */
      gone = rxt_raw_open(&probe, &raw) != 0;
      dup2(saved, 2);
      close(saved);
      close(devnull);
      if (!gone) {
        gone = rxt_raw_send(&raw, 1, ping, NULL) != 0 || rxt_raw_read(&raw, 500, NULL) == NULL;
        rxt_raw_close(&raw);
      }
      if (!gone) rxt_sleep_ms(50);
    }
    CHECK(gone);
  }
}

int main(void) {
  RUN(test_helpers);
  RUN(test_resp_flat);
  RUN(test_start_cmd_restart);
  RUN(test_extra_args_auth);
  RUN(test_unix_only_cmd);
  RUN(test_tls_plain_too);
  RUN(test_dir_placeholder);
  RUN(test_bad_args_fail_cleanly);
  RUN(test_no_orphans);
  return TEST_REPORT();
}
