/* server.c — starts, stops and talks to real redis-server processes for the
 * C tests, with plain sockets only (see server.h). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RXT_READY_TIMEOUT_MS 10000
#define RXT_CMD_TIMEOUT_MS 10000
#define RXT_MAX_SERVERS 256

/* ------------------------------------------------------------ clock, tmp */

long long rxt_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rxt_sleep_ms(int ms) {
  struct timespec ts;
  if (ms <= 0) return;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp) return -1;
  memcpy(tmp, path, n + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
  return 0;
}

const char *rxt_tmp_root(void) {
  static char root[PATH_MAX];
  const char *env = getenv("RX_TEST_TMP");
  if (root[0]) return root;
  if (env == NULL || env[0] == '\0' || strlen(env) >= sizeof root) env = "/tmp";
  snprintf(root, sizeof root, "%s", env);
  if (mkdir_p(root) != 0) {
    fprintf(stderr, "rxt: cannot create %s (%s), using /tmp\n", root, strerror(errno));
    snprintf(root, sizeof root, "/tmp");
  }
  return root;
}

int rxt_free_port(void) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;
  if (fd < 0) return -1;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

/* ------------------------------------------------------------ registry */

/* Pids of running servers. Plain array of sig_atomic-sized slots so the
 * fatal-signal handler can read it without locks. */
static volatile pid_t g_pids[RXT_MAX_SERVERS];
static int g_installed;

static void kill_all(void) {
  for (int i = 0; i < RXT_MAX_SERVERS; i++) {
    pid_t p = g_pids[i];
    if (p > 0) {
      kill(p, SIGKILL);
      g_pids[i] = 0;
    }
  }
}

static void at_exit_kill(void) {
  for (int i = 0; i < RXT_MAX_SERVERS; i++) {
    pid_t p = g_pids[i];
    if (p > 0) {
      kill(p, SIGKILL);
      waitpid(p, NULL, 0);
      g_pids[i] = 0;
    }
  }
}

static void on_fatal(int sig) {
  kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Installs the atexit handler, and handlers for fatal signals that still
 * have the default action (a test's or a sanitizer's own handler wins). */
static void install_guards(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
                             SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  if (g_installed) return;
  g_installed = 1;
  atexit(at_exit_kill);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction old;
    if (sigaction(sigs[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
        old.sa_handler == SIG_DFL) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_fatal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESETHAND;
      sigaction(sigs[i], &sa, NULL);
    }
  }
}

static void reg_add(pid_t p) {
  install_guards();
  for (int i = 0; i < RXT_MAX_SERVERS; i++) {
    if (g_pids[i] == 0) {
      g_pids[i] = p;
      return;
    }
  }
  fprintf(stderr, "rxt: more than %d servers; pid %d is not guarded\n",
          RXT_MAX_SERVERS, (int)p);
}

static void reg_del(pid_t p) {
  for (int i = 0; i < RXT_MAX_SERVERS; i++)
    if (g_pids[i] == p) g_pids[i] = 0;
}

/* ------------------------------------------------------------ argv */

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d == NULL) {
    fprintf(stderr, "rxt: out of memory\n");
    abort();
  }
  memcpy(d, s, n);
  return d;
}

typedef struct argv_b {
  char **v;
  int n, cap;
} argv_b;

static void ab_push(argv_b *a, const char *s) {
  if (a->n + 2 > a->cap) {
    int cap = a->cap ? a->cap * 2 : 32;
    char **v = realloc(a->v, (size_t)cap * sizeof *v);
    if (v == NULL) {
      fprintf(stderr, "rxt: out of memory\n");
      abort();
    }
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = xstrdup(s);
  a->v[a->n] = NULL;
}

static void ab_pushf(argv_b *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ab_pushf(argv_b *a, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  ab_push(a, buf);
}

static void argv_free(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* The redis-server binary as an absolute or relative path, found before
 * forking so that a missing binary is a clear message, not a child's exit. */
static int find_binary(char *out, size_t len) {
  const char *name = getenv("RX_REDIS_SERVER");
  const char *path;
  if (name == NULL || name[0] == '\0') name = "redis-server";
  if (strchr(name, '/')) {
    if (access(name, X_OK) != 0) {
      fprintf(stderr, "rxt: RX_REDIS_SERVER=%s is not executable\n", name);
      return -1;
    }
    snprintf(out, len, "%s", name);
    return 0;
  }
  path = getenv("PATH");
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *e = strchr(path, ':');
    size_t n = e ? (size_t)(e - path) : strlen(path);
    char cand[PATH_MAX];
    snprintf(cand, sizeof cand, "%.*s/%s", (int)n, n ? path : ".", name);
    if (access(cand, X_OK) == 0) {
      snprintf(out, len, "%s", cand);
      return 0;
    }
    path += n;
    if (*path == ':') path++;
  }
  fprintf(stderr, "rxt: %s not found on PATH (set RX_REDIS_SERVER)\n", name);
  return -1;
}

/* ------------------------------------------------------------ files */

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Reads path from offset into a malloc'd NUL-terminated string ("" if none). */
static char *read_file_from(const char *path, long offset) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long size, n;
  if (f == NULL) return xstrdup("");
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  if (offset < 0 || offset > size) offset = 0;
  fseek(f, offset, SEEK_SET);
  buf = malloc((size_t)(size - offset) + 1);
  if (buf == NULL) {
    fclose(f);
    return xstrdup("");
  }
  n = (long)fread(buf, 1, (size_t)(size - offset), f);
  buf[n < 0 ? 0 : n] = '\0';
  fclose(f);
  return buf;
}

static void print_tail(const char *path, long offset, int lines) {
  char *text = read_file_from(path, offset);
  size_t n = strlen(text);
  const char *p = text + n;
  int seen = 0;
  while (p > text) {
    if (p[-1] == '\n' && p != text + n && ++seen >= lines) break;
    p--;
  }
  if (*p) fprintf(stderr, "---- %s ----\n%s%s", path, p, p[strlen(p) - 1] == '\n' ? "" : "\n");
  free(text);
}

void rxt_server_log_tail(const rxt_server *s, int lines) {
  char path[600];
  snprintf(path, sizeof path, "%s/redis.log", s->dir);
  print_tail(path, 0, lines);
  snprintf(path, sizeof path, "%s/redis.out", s->dir);
  print_tail(path, 0, lines);
}

/* rm -rf for the server's own directory (no symlinks are followed). */
static void rm_rf_at(const char *path, int depth) {
  struct stat st;
  if (depth > 16 || lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *e;
    if (d != NULL) {
      while ((e = readdir(d)) != NULL) {
        char child[PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        rm_rf_at(child, depth + 1);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static void rm_rf(const char *dir) {
  if (dir[0] == '\0' || strcmp(dir, "/") == 0) return;
  rm_rf_at(dir, 0);
}

/* ------------------------------------------------------------ sockets */

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Connects to 127.0.0.1:port (port > 0) or to the unix socket path, within
 * timeout_ms. Returns a non-blocking fd or -1 (errno set). */
static int connect_to(int port, const char *unix_path, int timeout_ms) {
  int fd, rc;
  if (port > 0) {
    struct sockaddr_in sa;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)port);
    set_nonblock(fd);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  } else {
    struct sockaddr_un su;
    if (unix_path == NULL || strlen(unix_path) >= sizeof su.sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    memcpy(su.sun_path, unix_path, strlen(unix_path) + 1);
    set_nonblock(fd);
    rc = connect(fd, (struct sockaddr *)&su, sizeof su);
  }
  if (rc != 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
    struct pollfd pfd = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t el = sizeof err;
    rc = poll(&pfd, 1, timeout_ms);
    if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
      return fd;
    close(fd);
    errno = rc == 0 ? ETIMEDOUT : (err ? err : EIO);
    return -1;
  }
  if (rc != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int write_all(int fd, const char *p, size_t n, long long deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      long long left = deadline - rxt_ms();
      if (left <= 0) return -1;
      poll(&pfd, 1, (int)left);
      continue;
    }
    return -1;
  }
  return 0;
}

/* Length of one complete RESP2 reply at p (bytes), 0 when incomplete, -1
 * when malformed. RESP3 types are accepted too, for robustness. */
static long resp_len(const char *p, size_t len, int depth) {
  const char *nl;
  long long n;
  size_t hdr;
  char *end;
  if (depth > 64) return -1;
  if (len == 0) return 0;
  nl = memchr(p, '\n', len);
  if (nl == NULL) return 0;
  if (nl == p || nl[-1] != '\r') return -1;
  hdr = (size_t)(nl - p) + 1;
  switch (p[0]) {
  case '+': case '-': case ':': case '_': case ',': case '#': case '(':
    return (long)hdr;
  case '$': case '=': case '!':
    n = strtoll(p + 1, &end, 10);
    if (end != nl - 1) return -1;
    if (n < 0) return (long)hdr;
    if (len < hdr + (size_t)n + 2) return 0;
    return (long)(hdr + (size_t)n + 2);
  case '*': case '~': case '>': case '%': case '|': {
    size_t off = hdr;
    n = strtoll(p + 1, &end, 10);
    if (end != nl - 1) return -1;
    if (p[0] == '%' || p[0] == '|') n *= 2;
    for (long long i = 0; i < n; i++) {
      long e = resp_len(p + off, len - off, depth + 1);
      if (e <= 0) return e;
      off += (size_t)e;
    }
    return (long)off;
  }
  default:
    return -1;
  }
}

static void fmt_command(char **out, size_t *out_len, int argc,
                        const char *const *argv, const size_t *argvlen) {
  size_t cap = 32, len = 0;
  char *b;
  for (int i = 0; i < argc; i++) cap += 32 + (argvlen ? argvlen[i] : strlen(argv[i]));
  b = malloc(cap);
  if (b == NULL) abort();
  len += (size_t)snprintf(b + len, cap - len, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
    len += (size_t)snprintf(b + len, cap - len, "$%zu\r\n", n);
    memcpy(b + len, argv[i], n);
    len += n;
    b[len++] = '\r';
    b[len++] = '\n';
  }
  *out = b;
  *out_len = len;
}

/* ------------------------------------------------------------ raw conn */

int rxt_raw_open(rxt_server *s, rxt_raw *r) {
  memset(r, 0, sizeof *r);
  r->fd = connect_to(s->port, s->unix_path, 5000);
  if (r->fd < 0) {
    fprintf(stderr, "rxt: cannot connect to %s: %s\n",
            s->port ? s->url : s->unix_path, strerror(errno));
    return -1;
  }
  return 0;
}

int rxt_raw_send(rxt_raw *r, int argc, const char *const *argv, const size_t *argvlen) {
  char *cmd;
  size_t n;
  int rc;
  if (r->fd < 0) return -1;
  fmt_command(&cmd, &n, argc, argv, argvlen);
  rc = write_all(r->fd, cmd, n, rxt_ms() + RXT_CMD_TIMEOUT_MS);
  free(cmd);
  return rc;
}

const char *rxt_raw_read(rxt_raw *r, int timeout_ms, size_t *len) {
  long long deadline = rxt_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  free(r->last);
  r->last = NULL;
  if (r->fd < 0) return NULL;
  for (;;) {
    long n = resp_len(r->buf, r->len, 0);
    if (n < 0) {
      fprintf(stderr, "rxt: malformed reply from server\n");
      return NULL;
    }
    if (n > 0) {
      r->last = malloc((size_t)n + 1);
      if (r->last == NULL) abort();
      memcpy(r->last, r->buf, (size_t)n);
      r->last[n] = '\0';
      memmove(r->buf, r->buf + n, r->len - (size_t)n);
      r->len -= (size_t)n;
      if (len) *len = (size_t)n;
      return r->last;
    }
    if (r->cap - r->len < 4096) {
      size_t cap = r->cap ? r->cap * 2 : 16384;
      char *b = realloc(r->buf, cap);
      if (b == NULL) abort();
      r->buf = b;
      r->cap = cap;
    }
    {
      ssize_t got = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
      if (got > 0) {
        r->len += (size_t)got;
        continue;
      }
      if (got == 0) return NULL;
      if (errno != EAGAIN && errno != EINTR) return NULL;
    }
    {
      struct pollfd pfd = {r->fd, POLLIN, 0};
      long long left = deadline - rxt_ms();
      if (left <= 0) return NULL;
      poll(&pfd, 1, (int)left);
    }
  }
}

void rxt_raw_close(rxt_raw *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  free(r->buf);
  free(r->last);
  r->buf = r->last = NULL;
  r->len = r->cap = 0;
}

char *rxt_cmd_ex(rxt_server *s, const char *user, const char *pass, int argc,
                 const char *const *argv, const size_t *argvlen, size_t *reply_len) {
  rxt_raw r;
  const char *rep;
  size_t n = 0;
  char *out;
  if (rxt_raw_open(s, &r) != 0) return NULL;
  if (pass) {
    const char *av[3] = {"AUTH", user ? user : pass, pass};
    if (rxt_raw_send(&r, user ? 3 : 2, av, NULL) != 0 ||
        rxt_raw_read(&r, RXT_CMD_TIMEOUT_MS, NULL) == NULL) {
      fprintf(stderr, "rxt: AUTH failed on the raw connection\n");
      rxt_raw_close(&r);
      return NULL;
    }
  }
  if (rxt_raw_send(&r, argc, argv, argvlen) != 0 ||
      (rep = rxt_raw_read(&r, RXT_CMD_TIMEOUT_MS, &n)) == NULL) {
    fprintf(stderr, "rxt: command %s got no reply\n", argc > 0 ? argv[0] : "?");
    rxt_raw_close(&r);
    return NULL;
  }
  out = malloc(n + 1);
  if (out == NULL) abort();
  memcpy(out, rep, n + 1);
  if (reply_len) *reply_len = n;
  rxt_raw_close(&r);
  return out;
}

char *rxt_cmd(rxt_server *s, const char *const *argv) {
  int argc = 0;
  while (argv[argc]) argc++;
  return rxt_cmd_ex(s, NULL, NULL, argc, argv, NULL, NULL);
}

int rxt_server_major(rxt_server *s) {
  const char *av[] = {"INFO", "server", NULL};
  char *info = rxt_cmd(s, av);
  const char *p = info ? strstr(info, "redis_version:") : NULL;
  int major = p ? atoi(p + strlen("redis_version:")) : 0;
  free(info);
  return major;
}

int rxt_resp_flat(const char *text, size_t len, const char **items, size_t *lens, int max) {
  long total = resp_len(text, len, 0);
  const char *p = text;
  long long count = 1;
  char *end;
  int out = 0;
  if (total <= 0) return -1;
  if (p[0] == '*') {
    const char *nl = memchr(p, '\n', len);
    count = strtoll(p + 1, &end, 10);
    if (count < 0) return -1;
    p = nl + 1;
  }
  for (long long i = 0; i < count; i++) {
    const char *nl = memchr(p, '\n', (size_t)(text + total - p));
    const char *item;
    size_t ilen;
    if (nl == NULL) return -1;
    switch (p[0]) {
    case '+': case '-': case ':':
      item = p + 1;
      ilen = (size_t)(nl - 1 - item);
      p = nl + 1;
      break;
    case '$': {
      long long n = strtoll(p + 1, &end, 10);
      if (n < 0) {
        item = NULL;
        ilen = 0;
        p = nl + 1;
      } else {
        item = nl + 1;
        ilen = (size_t)n;
        p = item + n + 2;
      }
      break;
    }
    default:
      return -1;
    }
    if (out < max) {
      items[out] = item;
      lens[out] = ilen;
    }
    out++;
  }
  return out;
}

/* ------------------------------------------------------------ lifecycle */

/* 1 if the server answers PING on its plain port or unix socket. */
/* 1 when PING on the port (or, with port 0, the unix socket) gets +PONG or
 * -NOAUTH. */
static int answers_ping(int port, const char *unix_path) {
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  char buf[256];
  size_t got = 0;
  long long deadline = rxt_ms() + 1000;
  int fd = connect_to(port, unix_path, 500), ok = 0;
  if (fd < 0) return 0;
  if (write_all(fd, ping, sizeof ping - 1, deadline) != 0) goto done;
  while (got < sizeof buf - 1) {
    ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (n > 0) {
      got += (size_t)n;
      if (memchr(buf, '\n', got)) break;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) goto done;
    {
      struct pollfd pfd = {fd, POLLIN, 0};
      long long left = deadline - rxt_ms();
      if (left <= 0) goto done;
      poll(&pfd, 1, (int)left);
    }
  }
  buf[got] = '\0';
  ok = strncmp(buf, "+PONG", 5) == 0 || strncmp(buf, "-NOAUTH", 7) == 0;
done:
  close(fd);
  return ok;
}

static int tcp_accepts(int port) {
  int fd = connect_to(port, NULL, 500);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

static pid_t spawn(rxt_server *s) {
  char out_path[600];
  pid_t parent = getpid(), pid;
  snprintf(out_path, sizeof out_path, "%s/redis.out", s->dir);
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, "rxt: fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int fd;
    /* Die with the test, whatever kills it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    signal(SIGPIPE, SIG_DFL);
    fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      if (fd > 2) close(fd);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0 && fd != 0) {
      dup2(fd, 0);
      close(fd);
    }
    for (int i = 3; i < 1024; i++) close(i);
    execv(s->argv_[0], s->argv_);
    _exit(127);
  }
  return pid;
}

/* Why a start failed: 1 = the port was taken (retry), 0 = anything else. */
static int log_says_in_use(const rxt_server *s) {
  char path[600];
  char *text;
  int in_use;
  snprintf(path, sizeof path, "%s/redis.log", s->dir);
  text = read_file_from(path, s->log_offset_);
  in_use = strstr(text, "Address already in use") != NULL;
  free(text);
  snprintf(path, sizeof path, "%s/redis.out", s->dir);
  text = read_file_from(path, 0);
  in_use = in_use || strstr(text, "Address already in use") != NULL;
  free(text);
  return in_use;
}

static void fail_report(const rxt_server *s, const char *why) {
  char path[600];
  fprintf(stderr, "rxt: redis-server (%s) %s\n", s->argv_ ? s->argv_[0] : "?", why);
  snprintf(path, sizeof path, "%s/redis.log", s->dir);
  print_tail(path, s->log_offset_, 20);
  snprintf(path, sizeof path, "%s/redis.out", s->dir);
  print_tail(path, 0, 20);
}

/* Starts the process from s->argv_ and waits until it is ready.
 * 0, -1 (failed, reported unless quiet_in_use and the port was taken: then
 * -2 and nothing printed). */
static int launch(rxt_server *s, int quiet_in_use) {
  char path[600];
  long long deadline = rxt_ms() + RXT_READY_TIMEOUT_MS;
  int status;
  pid_t pid;
  snprintf(path, sizeof path, "%s/redis.log", s->dir);
  s->log_offset_ = file_size(path);
  snprintf(path, sizeof path, "%s/redis.out", s->dir);
  unlink(path);
  pid = spawn(s);
  if (pid < 0) return -1;
  s->pid = (int)pid;
  reg_add(pid);
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reg_del(pid);
      s->pid = 0;
      if (quiet_in_use && log_says_in_use(s)) return -2;
      fail_report(s, WIFEXITED(status) ? "exited during start-up" : "died during start-up");
      return -1;
    }
    /* The unix socket lives in our private directory, so only our process
     * can answer there, and Redis opens it after binding its TCP ports (it
     * exits when a bind fails). Asking it first means a server another test
     * started on a port picked at the same moment is never taken for ours. */
    if (answers_ping(0, s->unix_path) && (s->port == 0 || answers_ping(s->port, NULL)) &&
        (s->tls_port == 0 || tcp_accepts(s->tls_port)))
      return 0;
    if (rxt_ms() > deadline) {
      fail_report(s, "did not answer PING within 10 s");
      rxt_server_kill(s);
      return -1;
    }
    rxt_sleep_ms(10);
  }
}

/* Builds s->argv_ for the current ports. */
static void build_argv(rxt_server *s, const char *binary, int tls,
                       const char *const *extra) {
  argv_b a = {NULL, 0, 0};
  argv_free(s->argv_);
  ab_push(&a, binary);
  ab_push(&a, "--port");
  ab_pushf(&a, "%d", s->port);
  ab_push(&a, "--bind");
  ab_push(&a, "127.0.0.1");
  ab_push(&a, "--daemonize");
  ab_push(&a, "no");
  ab_push(&a, "--save");
  ab_push(&a, "");
  ab_push(&a, "--appendonly");
  ab_push(&a, "no");
  ab_push(&a, "--dir");
  ab_push(&a, s->dir);
  ab_push(&a, "--unixsocket");
  ab_push(&a, s->unix_path);
  ab_push(&a, "--unixsocketperm");
  ab_push(&a, "700");
  ab_push(&a, "--logfile");
  ab_pushf(&a, "%s/redis.log", s->dir);
  if (tls) {
    ab_push(&a, "--tls-port");
    ab_pushf(&a, "%d", s->tls_port);
    ab_push(&a, "--tls-cert-file");
    ab_pushf(&a, "%s/server.crt", s->dir);
    ab_push(&a, "--tls-key-file");
    ab_pushf(&a, "%s/server.key", s->dir);
    ab_push(&a, "--tls-ca-cert-file");
    ab_pushf(&a, "%s/ca.crt", s->dir);
    ab_push(&a, "--tls-auth-clients");
    ab_push(&a, "no");
  }
  for (int i = 0; extra && extra[i]; i++) {
    /* "@DIR@" stands for the server's directory, which the caller cannot
     * know before the start (e.g. "@DIR@/wronghost.crt"). */
    const char *at = strstr(extra[i], "@DIR@");
    if (at)
      ab_pushf(&a, "%.*s%s%s", (int)(at - extra[i]), extra[i], s->dir, at + 5);
    else
      ab_push(&a, extra[i]);
  }
  s->argv_ = a.v;
}

static void set_urls(rxt_server *s) {
  s->url[0] = s->tls_url[0] = '\0';
  if (s->port) snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
  if (s->tls_port)
    snprintf(s->tls_url, sizeof s->tls_url, "rediss://localhost:%d?ssl_ca_certs=%s/ca.crt",
             s->tls_port, s->dir);
}

/* Creates the server's directory; a path too long for a unix socket
 * (108 bytes) falls back to /tmp. */
static int make_dir(rxt_server *s) {
  const char *root = rxt_tmp_root();
  struct sockaddr_un su;
  for (int pass = 0; pass < 2; pass++) {
    snprintf(s->dir, sizeof s->dir, "%s/rxt-redis-XXXXXX", pass ? "/tmp" : root);
    if (strlen(s->dir) + strlen("/redis.sock") >= sizeof su.sun_path) continue;
    if (mkdtemp(s->dir) == NULL) {
      fprintf(stderr, "rxt: mkdtemp %s: %s\n", s->dir, strerror(errno));
      continue;
    }
    snprintf(s->unix_path, sizeof s->unix_path, "%s/redis.sock", s->dir);
    return 0;
  }
  s->dir[0] = '\0';
  return -1;
}

static int start_common(rxt_server *s, int tls, int plain_too, const char *const *extra) {
  char binary[PATH_MAX];
  memset(s, 0, sizeof *s);
  if (find_binary(binary, sizeof binary) != 0) return -1;
  if (make_dir(s) != 0) return -1;
  if (tls && rxt_certs_make(s->dir) != 0) return -1;
  for (int attempt = 0; attempt < 8; attempt++) {
    int rc;
    s->port = (!tls || plain_too) ? rxt_free_port() : 0;
    s->tls_port = tls ? rxt_free_port() : 0;
    if (s->port < 0 || s->tls_port < 0 || (tls && s->port && s->port == s->tls_port)) continue;
    build_argv(s, binary, tls, extra);
    set_urls(s);
    rc = launch(s, attempt < 7);
    if (rc == 0) return 0;
    if (rc == -1) return -1;
    /* -2: someone took the port in between; pick new ones. */
  }
  fprintf(stderr, "rxt: could not find a free port for redis-server\n");
  return -1;
}

int rxt_server_start(rxt_server *s, const char *const *extra_args) {
  return start_common(s, 0, 1, extra_args);
}

int rxt_server_start_tls(rxt_server *s, int plain_too, const char *const *extra_args) {
  return start_common(s, 1, plain_too, extra_args);
}

void rxt_server_kill(rxt_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    reg_del(s->pid);
  }
  s->pid = 0;
}

void rxt_server_stop(rxt_server *s) {
  long long deadline;
  if (s->pid <= 0) {
    s->pid = 0;
    return;
  }
  kill(s->pid, SIGTERM);
  kill(s->pid, SIGCONT); /* a paused server would never see the SIGTERM */
  deadline = rxt_ms() + 5000;
  for (;;) {
    pid_t w = waitpid(s->pid, NULL, WNOHANG);
    if (w == s->pid || (w < 0 && errno == ECHILD)) break;
    if (rxt_ms() > deadline) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
      break;
    }
    rxt_sleep_ms(5);
  }
  reg_del(s->pid);
  s->pid = 0;
}

int rxt_server_restart(rxt_server *s) {
  long long deadline = rxt_ms() + 5000;
  if (s->argv_ == NULL) {
    fprintf(stderr, "rxt: restart of a server that was never started\n");
    return -1;
  }
  rxt_server_stop(s);
  for (;;) {
    int quiet = rxt_ms() < deadline;
    int rc = launch(s, quiet);
    if (rc == 0) return 0;
    if (rc == -1) return -1;
    rxt_sleep_ms(100);
  }
}

void rxt_server_pause(rxt_server *s) {
  if (s->pid > 0) kill(s->pid, SIGSTOP);
}

void rxt_server_resume(rxt_server *s) {
  if (s->pid > 0) kill(s->pid, SIGCONT);
}

void rxt_server_cleanup(rxt_server *s) {
  rxt_server_stop(s);
  if (s->dir[0]) rm_rf(s->dir);
  s->dir[0] = '\0';
  argv_free(s->argv_);
  s->argv_ = NULL;
}

/* ------------------------------------------------------------ certificates */

/* Runs the openssl CLI with args (NULL-terminated, without "openssl"),
 * output appended to dir/certs.log. 0 or -1. */
static int run_openssl(const char *dir, const char *const *args) {
  char log[600];
  const char *argv[40];
  int n = 0, status;
  pid_t pid;
  argv[n++] = "openssl";
  for (int i = 0; args[i] && n < 39; i++) argv[n++] = args[i];
  argv[n] = NULL;
  snprintf(log, sizeof log, "%s/certs.log", dir);
  fflush(NULL);
  pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 0);
      close(fd);
    }
    if (chdir(dir) != 0) _exit(126);
    execvp("openssl", (char *const *)argv);
    _exit(127);
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "rxt: openssl %s %s failed (status %d)\n", args[0],
            args[1] ? args[1] : "", status);
    print_tail(log, 0, 20);
    return -1;
  }
  return 0;
}

static const char rxt_openssl_cnf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = reactis-test\n"
    "[v3_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "authorityKeyIdentifier = keyid\n"
    "[wronghost]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:wrong.example\n"
    "authorityKeyIdentifier = keyid\n"
    "[client]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = clientAuth\n"
    "authorityKeyIdentifier = keyid\n";

static int make_ca(const char *dir, const char *name, const char *cn) {
  char key[64], crt[64], subj[128];
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(subj, sizeof subj, "/CN=%s", cn);
  {
    const char *args[] = {"req", "-x509", "-new", "-config", "rxt-openssl.cnf",
                          "-extensions", "v3_ca", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                          "-out", crt, "-days", "3650", "-subj", subj, NULL};
    return run_openssl(dir, args);
  }
}

static int make_leaf(const char *dir, const char *name, const char *cn,
                     const char *section, int serial) {
  char key[64], crt[64], csr[64], subj[128], ser[32];
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(csr, sizeof csr, "%s.csr", name);
  snprintf(subj, sizeof subj, "/CN=%s", cn);
  snprintf(ser, sizeof ser, "%d", serial);
  {
    const char *req[] = {"req", "-new", "-config", "rxt-openssl.cnf", "-newkey", "ec",
                         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", key, "-out", csr, "-subj", subj, NULL};
    const char *sign[] = {"x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey",
                          "ca.key", "-set_serial", ser, "-days", "3650", "-sha256",
                          "-extfile", "rxt-openssl.cnf", "-extensions", section,
                          "-out", crt, NULL};
    if (run_openssl(dir, req) != 0 || run_openssl(dir, sign) != 0) return -1;
  }
  {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, csr);
    unlink(path);
  }
  return 0;
}

int rxt_certs_make(const char *dir) {
  char path[700];
  FILE *f;
  int base = (int)(getpid() % 100000) * 10;
  snprintf(path, sizeof path, "%s/rxt-openssl.cnf", dir);
  f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "rxt: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  fputs(rxt_openssl_cnf, f);
  if (fclose(f) != 0) return -1;
  if (make_ca(dir, "ca", "reactis test CA") != 0 ||
      make_ca(dir, "other-ca", "reactis unrelated CA") != 0 ||
      make_leaf(dir, "server", "localhost", "server", base + 1) != 0 ||
      make_leaf(dir, "wronghost", "wrong.example", "wronghost", base + 2) != 0 ||
      make_leaf(dir, "client", "reactis-client", "client", base + 3) != 0)
    return -1;
  return 0;
}
