/* error.c — the status table, allocation hooks, clocks and small helpers
 * every other file uses. */
#include "rx_private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *rx_version(void) { return RX_VERSION_STRING; }

const char *rx_strerror(int status) {
  switch (status) {
#define RX__STATUS_MSG(name, value, msg) \
  case value:                            \
    return msg;
    RX_STATUS_MAP(RX__STATUS_MSG)
#undef RX__STATUS_MSG
  default:
    return "unknown status code";
  }
}

const char *rx_errname(int status) {
  switch (status) {
#define RX__STATUS_NAME(name, value, msg) \
  case value:                             \
    return #name;
    RX_STATUS_MAP(RX__STATUS_NAME)
#undef RX__STATUS_NAME
  default:
    return "UNKNOWN";
  }
}

/* ---------------------------------------------------------------- memory */

static rx_allocator rx__alloc = {malloc, calloc, realloc, free};

void rx_set_allocator(const rx_allocator *a) {
  if (!a) return;
  rx__alloc.malloc_fn = a->malloc_fn ? a->malloc_fn : malloc;
  rx__alloc.calloc_fn = a->calloc_fn ? a->calloc_fn : calloc;
  rx__alloc.realloc_fn = a->realloc_fn ? a->realloc_fn : realloc;
  rx__alloc.free_fn = a->free_fn ? a->free_fn : free;
}

void *rx__malloc(size_t n) { return rx__alloc.malloc_fn(n ? n : 1); }
void *rx__calloc(size_t count, size_t n) {
  return rx__alloc.calloc_fn(count ? count : 1, n ? n : 1);
}
void *rx__realloc(void *p, size_t n) { return rx__alloc.realloc_fn(p, n ? n : 1); }
void rx__free(void *p) {
  if (p) rx__alloc.free_fn(p);
}
void rx_free(void *p) { rx__free(p); }

char *rx__memdup(const void *p, size_t n) {
  char *s = rx__malloc(n + 1);
  if (!s) return NULL;
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

char *rx__strdup(const char *s) { return s ? rx__memdup(s, strlen(s)) : NULL; }

void rx__fmt(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  if (!buf || !len) return;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

int rx__buf_append(rx_buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = rx__realloc(b->data, cap);
    if (!d) return RX_ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return RX_OK;
}

void rx__buf_consume(rx_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void rx__buf_free(rx_buf *b) {
  rx__free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- clocks */

long long rx_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long rx_monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long rx__deadline(int timeout_ms) {
  if (timeout_ms < 0) return -1;
  return rx_monotonic_ms() + timeout_ms;
}

int rx__remaining(long long deadline) {
  if (deadline < 0) return -1;
  long long left = deadline - rx_monotonic_ms();
  if (left <= 0) return 0;
  return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* ---------------------------------------------------------------- wakeup */

int rx__wake_pipe(int *rd, int *wr) {
  int fds[2];
  if (pipe(fds) != 0) return RX_ESYS;
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(fds[i], F_GETFL);
    fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
    fcntl(fds[i], F_SETFD, FD_CLOEXEC);
  }
  *rd = fds[0];
  *wr = fds[1];
  return RX_OK;
}

void rx__wake_drain(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

/* ---------------------------------------------------------------- random */

/* splitmix64 over a seed from the OS and a counter: fast, thread-safe with a
 * mutex, good enough for jitter and unique ids (never for secrets). */
static pthread_mutex_t rx__rand_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rx__rand_state;
static int rx__rand_seeded;
static pid_t rx__rand_pid;

uint64_t rx__random(void) {
  pthread_mutex_lock(&rx__rand_lock);
  /* Reseed in a forked child, or parent and child would share a sequence. */
  if (!rx__rand_seeded || rx__rand_pid != getpid()) {
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed) seed = 0;
      close(fd);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() << 32;
    rx__rand_state = seed;
    rx__rand_seeded = 1;
    rx__rand_pid = getpid();
  }
  uint64_t z = (rx__rand_state += 0x9E3779B97F4A7C15ULL);
  pthread_mutex_unlock(&rx__rand_lock);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
