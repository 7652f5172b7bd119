/* proxy.c — see proxy.h. One thread, poll() over all sockets, bounded
 * buffers; everything is on 127.0.0.1. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXPAIRS 32

typedef struct pair {
  int a, b; /* client side, server side; -1 when unused */
} pair;

struct rxt_proxy {
  int listen_fd, target, port;
  pthread_t thread;
  pthread_mutex_t lock;
  volatile int mode, delay_ms, stop;
  long accepted;
  pair pairs[MAXPAIRS];
};

static void close_pair(pair *pr) {
  if (pr->a >= 0) {
    struct linger lg = {1, 0}; /* RST, like a crashed middlebox */
    setsockopt(pr->a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(pr->a);
  }
  if (pr->b >= 0) close(pr->b);
  pr->a = pr->b = -1;
}

static int connect_target(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* Copies what is readable on from to to; -1 when either side is done. */
static int pump(int from, int to, int delay_ms) {
  char buf[16384];
  ssize_t n = recv(from, buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return -1;
  if (n < 0) return 0;
  if (delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  for (ssize_t off = 0; off < n;) {
    ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        struct pollfd p = {to, POLLOUT, 0};
        poll(&p, 1, 100);
        continue;
      }
      return -1;
    }
    off += w;
  }
  return 0;
}

static void *run(void *arg) {
  rxt_proxy *p = arg;
  while (!p->stop) {
    struct pollfd fds[1 + 2 * MAXPAIRS];
    int idx[1 + 2 * MAXPAIRS];
    int nf = 0;
    int mode = p->mode;
    fds[nf].fd = p->listen_fd;
    fds[nf].events = POLLIN;
    idx[nf++] = -1;
    if (mode == PROXY_DROP) {
      for (int i = 0; i < MAXPAIRS; i++) close_pair(&p->pairs[i]);
    } else if (mode != PROXY_BLACKHOLE) {
      for (int i = 0; i < MAXPAIRS; i++) {
        if (p->pairs[i].a < 0) continue;
        fds[nf].fd = p->pairs[i].a;
        fds[nf].events = POLLIN;
        idx[nf++] = i;
        fds[nf].fd = p->pairs[i].b;
        fds[nf].events = POLLIN;
        idx[nf++] = i;
      }
    }
    if (poll(fds, (nfds_t)nf, 50) <= 0) continue;
    for (int k = 0; k < nf; k++) {
      if (!fds[k].revents) continue;
      if (idx[k] < 0) {
        int c = accept(p->listen_fd, NULL, NULL);
        if (c < 0) continue;
        p->accepted++;
        if (mode == PROXY_DROP) {
          pair tmp = {c, -1};
          close_pair(&tmp);
          continue;
        }
        int s = connect_target(p->target);
        int placed = 0;
        for (int i = 0; s >= 0 && i < MAXPAIRS && !placed; i++) {
          if (p->pairs[i].a < 0) {
            p->pairs[i].a = c;
            p->pairs[i].b = s;
            placed = 1;
          }
        }
        if (!placed) {
          pair tmp = {c, s};
          close_pair(&tmp);
        }
        continue;
      }
      pair *pr = &p->pairs[idx[k]];
      if (pr->a < 0) continue;
      int from = fds[k].fd, to = from == pr->a ? pr->b : pr->a;
      if (pump(from, to, mode == PROXY_DELAY ? p->delay_ms : 0) < 0) close_pair(pr);
    }
  }
  return NULL;
}

rxt_proxy *rxt_proxy_start(int target_port) {
  rxt_proxy *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  for (int i = 0; i < MAXPAIRS; i++) p->pairs[i].a = p->pairs[i].b = -1;
  p->target = target_port;
  p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t al = sizeof a;
  if (bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listen_fd, 16) != 0 ||
      getsockname(p->listen_fd, (struct sockaddr *)&a, &al) != 0) {
    close(p->listen_fd);
    free(p);
    return NULL;
  }
  p->port = ntohs(a.sin_port);
  pthread_mutex_init(&p->lock, NULL);
  pthread_create(&p->thread, NULL, run, p);
  return p;
}

int rxt_proxy_port(const rxt_proxy *p) { return p->port; }
void rxt_proxy_mode(rxt_proxy *p, int mode, int delay_ms) {
  p->delay_ms = delay_ms;
  p->mode = mode;
}
long rxt_proxy_connections(const rxt_proxy *p) { return p->accepted; }

void rxt_proxy_stop(rxt_proxy *p) {
  if (!p) return;
  p->stop = 1;
  pthread_join(p->thread, NULL);
  for (int i = 0; i < MAXPAIRS; i++) close_pair(&p->pairs[i]);
  close(p->listen_fd);
  pthread_mutex_destroy(&p->lock);
  free(p);
}
