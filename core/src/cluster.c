/* cluster.c — Redis Cluster: topology, slot routing, redirections.
 *
 * The handle keeps one rx__cl_node per node it has heard of (never freed
 * before the handle, so pointers to nodes and to their connections stay
 * valid) and a map from each of the 16384 hash slots to its master. The map
 * comes from CLUSTER SHARDS (Redis 7.0+) or CLUSTER SLOTS (older servers),
 * asked of whichever known node or seed answers first.
 *
 * A command goes to the master of its key's slot. MOVED updates that slot
 * and marks the map for a full refresh before the next command (a MOVED
 * usually means many slots moved: a resharding or a failover). ASK sends
 * ASKING and the command to the target once, without touching the map.
 * TRYAGAIN, CLUSTERDOWN, LOADING and READONLY are refusals: the command did
 * not run, so it is retried after a short backoff (with a refresh for the
 * last three). A node that refuses the connection is the typical sign of a
 * dead master: the map is refreshed, and the command retried until a
 * replica has been promoted or the command's time is up. Only commands that
 * certainly did not run are resent; a link lost after the write is the
 * caller's to judge, as with a single rx_conn. */
#include "rx_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------- key slot */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis's
 * crc16.c, which the hash slot is defined by. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
    0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
    0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
    0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
    0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
    0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
    0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
    0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
    0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
    0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
    0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
    0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
    0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
    0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
    0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
    0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
    0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
    0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
    0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
    0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
    0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static uint16_t crc16(const char *buf, size_t len) {
  uint16_t crc = 0;
  for (size_t i = 0; i < len; i++)
    crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
  return crc;
}

int rx_cluster_keyslot(const char *key, size_t len) {
  size_t s, e;
  if (!key) return 0;
  /* Redis's keyHashSlot: the first '{', then the first '}' after it; an
   * empty tag ("{}") or no '}' means the whole key is hashed. */
  for (s = 0; s < len; s++)
    if (key[s] == '{') break;
  if (s == len) return crc16(key, len) & (RX_CLUSTER_SLOTS - 1);
  for (e = s + 1; e < len; e++)
    if (key[e] == '}') break;
  if (e == len || e == s + 1) return crc16(key, len) & (RX_CLUSTER_SLOTS - 1);
  return crc16(key + s + 1, e - s - 1) & (RX_CLUSTER_SLOTS - 1);
}

/* ---------------------------------------------------------------- errors */

static int seterr(rx_cluster *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int seterr(rx_cluster *c, int code, const char *fmt, ...) {
  va_list ap;
  c->err = code;
  va_start(ap, fmt);
  vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
  va_end(ap);
  return code;
}

/* The error of a node's connection, on the cluster handle. */
static int conn_err(rx_cluster *c, const rx_conn *conn, int code) {
  return seterr(c, code, "%s", conn->errstr[0] ? conn->errstr : rx_strerror(code));
}

int rx_cluster_err(const rx_cluster *c) { return c ? c->err : RX_EINVAL; }
const char *rx_cluster_errstr(const rx_cluster *c) { return c ? c->errstr : "no cluster"; }

int rx__cluster_err_is(const rx_reply *r, const char *w) {
  size_t n = strlen(w);
  return r && r->type == RX_REPLY_ERROR && r->len >= n && memcmp(r->str, w, n) == 0 &&
         (r->len == n || r->str[n] == ' ');
}

/* ---------------------------------------------------------------- URL */

/* Where the authority of a redis:// or rediss:// URL is: *auth and *authlen
 * (userinfo included), and where its host list starts. -1 if the URL has no
 * "scheme://". */
static int url_hosts(const char *url, const char **hosts, size_t *hostlen, const char **after) {
  const char *sep = strstr(url, "://");
  if (!sep) return -1;
  const char *rest = sep + 3;
  const char *q = strchr(rest, '?');
  size_t mainlen = q ? (size_t)(q - rest) : strlen(rest);
  const char *slash = memchr(rest, '/', mainlen);
  size_t authlen = slash ? (size_t)(slash - rest) : mainlen;
  const char *h = rest;
  for (size_t i = 0; i < authlen; i++)
    if (rest[i] == '@') h = rest + i + 1; /* the last '@', as url.c */
  *hosts = h;
  *hostlen = (size_t)(rest + authlen - h);
  *after = rest + authlen;
  return 0;
}

int rx__cluster_url(const char *url) {
  const char *hosts, *after;
  size_t hl;
  if (!url || url_hosts(url, &hosts, &hl, &after) != 0) return 0;
  if (memchr(hosts, ',', hl)) return 1;
  rx_opts o;
  char err[200];
  if (rx__opts_parse(&o, url, err, sizeof err) != RX_OK) return 0;
  int yes = o.cluster;
  rx__opts_free(&o);
  return yes;
}

int rx_url_is_cluster(const char *url) { return rx__cluster_url(url); }

/* Host and port of one "host[:port]" or "[v6][:port]", checked by the URL
 * parser itself so that seeds obey the same rules as URLs. */
static int parse_seed(const char *seed, size_t n, char **host, int *port, char *errstr,
                      size_t errlen) {
  char buf[600];
  rx_opts o;
  if (n == 0 || n > 500 || memchr(seed, '/', n) || memchr(seed, '?', n) ||
      memchr(seed, '@', n) || memchr(seed, '#', n)) {
    rx__fmt(errstr, errlen, "malformed URL: bad host in the host list (\"%.*s\")",
            (int)(n > 60 ? 60 : n), seed);
    return RX_EURL;
  }
  rx__fmt(buf, sizeof buf, "redis://%.*s", (int)n, seed);
  int rc = rx__opts_parse(&o, buf, errstr, errlen);
  if (rc != RX_OK) return rc;
  *host = o.host;
  *port = o.port;
  o.host = NULL;
  rx__opts_free(&o);
  return RX_OK;
}

static int add_seed(rx_cluster *c, char *host, int port) {
  for (size_t i = 0; i < c->seed_count; i++) {
    if (c->seed_port[i] == port && !strcmp(c->seed_host[i], host)) {
      rx__free(host);
      return RX_OK;
    }
  }
  char **h = rx__realloc(c->seed_host, (c->seed_count + 1) * sizeof *h);
  if (!h) {
    rx__free(host);
    return RX_ENOMEM;
  }
  c->seed_host = h;
  int *p = rx__realloc(c->seed_port, (c->seed_count + 1) * sizeof *p);
  if (!p) {
    rx__free(host);
    return RX_ENOMEM;
  }
  c->seed_port = p;
  c->seed_host[c->seed_count] = host;
  c->seed_port[c->seed_count] = port;
  c->seed_count++;
  return RX_OK;
}

/* Parses the URL: the options (with the first host) into c->opts, every
 * host into the seeds. */
static int parse_url(rx_cluster *c, const char *url, char *errstr, size_t errlen) {
  const char *hosts, *after;
  size_t hl;
  if (!url || !*url) {
    rx__fmt(errstr, errlen, "malformed URL: empty (expected redis://host:port,host:port)");
    return RX_EURL;
  }
  if (!strncasecmp(url, "unix:", 5)) {
    rx__fmt(errstr, errlen, "Redis Cluster needs redis:// or rediss:// URLs, not unix://");
    return RX_EURL;
  }
  if (url_hosts(url, &hosts, &hl, &after) != 0) {
    /* Let the URL parser explain what is wrong. */
    int rc = rx__opts_parse(&c->opts, url, errstr, errlen);
    if (rc == RX_OK) rx__opts_free(&c->opts);
    return RX_EURL;
  }
  const char *comma = memchr(hosts, ',', hl);
  size_t first = comma ? (size_t)(comma - hosts) : hl;
  if (first == 0 && comma) {
    rx__fmt(errstr, errlen, "malformed URL: empty host in the host list");
    return RX_EURL;
  }
  /* The URL with only the first host, for the options. */
  size_t head = (size_t)(hosts - url), tail = strlen(after);
  char *one = rx__malloc(head + first + tail + 1);
  if (!one) {
    rx__fmt(errstr, errlen, "out of memory");
    return RX_ENOMEM;
  }
  memcpy(one, url, head);
  memcpy(one + head, hosts, first);
  memcpy(one + head + first, after, tail + 1);
  int rc = rx__opts_parse(&c->opts, one, errstr, errlen);
  memset(one, 0, head + first + tail); /* it holds the password */
  rx__free(one);
  if (rc != RX_OK) return rc;
  if (c->opts.scheme == RX_SCHEME_UNIX) {
    rx__fmt(errstr, errlen, "Redis Cluster needs redis:// or rediss:// URLs, not unix://");
    return RX_EURL;
  }
  if (c->opts.db != 0) {
    rx__fmt(errstr, errlen, "Redis Cluster has only database 0 (the URL asks for db %d)",
            c->opts.db);
    return RX_EURL;
  }
  const char *p = hosts, *end = hosts + hl;
  while (p <= end) {
    const char *e = memchr(p, ',', (size_t)(end - p));
    if (!e) e = end;
    char *h = NULL;
    int port = 0;
    if (e == p) {
      rx__fmt(errstr, errlen, "malformed URL: empty host in the host list");
      return RX_EURL;
    }
    rc = parse_seed(p, (size_t)(e - p), &h, &port, errstr, errlen);
    if (rc != RX_OK) return rc;
    rc = add_seed(c, h, port);
    if (rc != RX_OK) {
      rx__fmt(errstr, errlen, "out of memory");
      return rc;
    }
    p = e + 1;
  }
  return RX_OK;
}

/* ---------------------------------------------------------------- life */

static void cluster_free(rx_cluster *c) {
  for (size_t i = 0; i < c->node_count; i++) {
    rx__cl_node *n = c->nodes[i];
    rx__conn_deinit(&n->conn);
    rx__free(n->host);
    rx__free(n->ranges);
    rx__free(n);
  }
  rx__free(c->nodes);
  for (size_t i = 0; i < c->seed_count; i++) rx__free(c->seed_host[i]);
  rx__free(c->seed_host);
  rx__free(c->seed_port);
  rx__free(c->slots);
  if (c->wake_rd >= 0) close(c->wake_rd);
  if (c->wake_wr >= 0) close(c->wake_wr);
  rx__opts_free(&c->opts);
  rx__free(c);
}

rx_cluster *rx__cluster_new(const char *url, char *errstr, size_t errlen) {
  if (errstr && errlen) errstr[0] = '\0';
  rx_cluster *c = rx__calloc(1, sizeof *c);
  if (!c) {
    rx__fmt(errstr, errlen, "out of memory");
    return NULL;
  }
  c->wake_rd = c->wake_wr = -1;
  /* parse_url initialises c->opts first thing; until then it is zeroes,
   * which rx__opts_free accepts. */
  if (parse_url(c, url, errstr, errlen) != RX_OK) {
    cluster_free(c);
    return NULL;
  }
  c->slots = rx__calloc(RX_CLUSTER_SLOTS, sizeof *c->slots);
  if (!c->slots || rx__wake_pipe(&c->wake_rd, &c->wake_wr) != RX_OK) {
    rx__fmt(errstr, errlen, "out of memory or file descriptors");
    cluster_free(c);
    return NULL;
  }
  return c;
}

rx_cluster *rx_cluster_new(const char *url, char *errstr, size_t errstr_len) {
  return rx__cluster_new(url, errstr, errstr_len);
}

void rx_cluster_free(rx_cluster *c) {
  if (c) cluster_free(c);
}

int rx_cluster_add_seed(rx_cluster *c, const char *host_port) {
  if (!c || !host_port) return c ? seterr(c, RX_EINVAL, "no seed given") : RX_EINVAL;
  char *h = NULL, err[200];
  int port = 0;
  int rc = parse_seed(host_port, strlen(host_port), &h, &port, err, sizeof err);
  if (rc != RX_OK) return seterr(c, rc, "%s", err);
  rc = add_seed(c, h, port);
  return rc ? seterr(c, rc, "out of memory") : RX_OK;
}

int rx_cluster_set(rx_cluster *c, const char *name, const char *value) {
  if (!c) return RX_EINVAL;
  char err[200];
  if (name && value && !strcmp(name, "db") && strcmp(value, "0"))
    return seterr(c, RX_EURL, "Redis Cluster has only database 0");
  int rc = rx__opts_set(&c->opts, name, value, err, sizeof err);
  if (rc) return seterr(c, rc, "%s", err);
  for (size_t i = 0; i < c->node_count; i++) {
    rc = rx__opts_set(&c->nodes[i]->conn.opts, name, value, err, sizeof err);
    if (rc) return seterr(c, rc, "%s", err);
  }
  return RX_OK;
}

void rx_cluster_wakeup(rx_cluster *c) {
  if (!c || c->wake_wr < 0) return;
  char b = 1;
  ssize_t n = write(c->wake_wr, &b, 1); /* a full pipe already holds a wakeup */
  (void)n;
}

const char *rx_cluster_describe(const rx_cluster *c, char *buf, size_t buf_len) {
  if (!buf || !buf_len) return buf;
  if (!c) {
    rx__fmt(buf, buf_len, "(none)");
    return buf;
  }
  const rx_opts *o = &c->opts;
  size_t used;
  /* The same shape as rx__opts_describe, with the seed list as the host. */
  rx__fmt(buf, buf_len, "%s://%s%s%s", o->scheme == RX_SCHEME_TLS ? "rediss" : "redis",
          o->username ? o->username : "", o->password ? ":***" : "",
          (o->username || o->password) ? "@" : "");
  for (size_t i = 0; i < c->seed_count; i++) {
    used = strlen(buf);
    if (used + 1 >= buf_len) break;
    int v6 = strchr(c->seed_host[i], ':') != NULL;
    rx__fmt(buf + used, buf_len - used, "%s%s%s%s:%d", i ? "," : "", v6 ? "[" : "",
            c->seed_host[i], v6 ? "]" : "", c->seed_port[i]);
  }
  return buf;
}

int rx_cluster_is_connected(const rx_cluster *c) {
  if (!c || !c->have_map) return 0;
  for (size_t i = 0; i < c->node_count; i++)
    if (rx_conn_is_connected(&c->nodes[i]->conn)) return 1;
  return 0;
}

void rx_cluster_get_stats(const rx_cluster *c, rx_cluster_stats *out) {
  if (!out) return;
  if (!c) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = c->stats;
}

/* ---------------------------------------------------------------- nodes */

int rx__cluster_conn_init(rx_cluster *c, rx_conn *conn, const rx__cl_node *n) {
  rx_opts o;
  if (rx__opts_copy(&o, &c->opts) != RX_OK) return RX_ENOMEM;
  rx__free(o.host);
  o.host = rx__strdup(n->host);
  o.port = n->port;
  o.cluster = 0;
  if (!o.host) {
    rx__opts_free(&o);
    return RX_ENOMEM;
  }
  int rc = rx__conn_init(conn, &o);
  rx__opts_free(&o);
  if (rc != RX_OK) return rc;
  /* Every connection of the cluster waits on the same wakeup pipe (its own
   * duplicates of the descriptors), so one rx_cluster_wakeup or
   * rx_sub_wakeup stops whichever wait is under way. */
  close(conn->wake_rd);
  close(conn->wake_wr);
  conn->wake_rd = fcntl(c->wake_rd, F_DUPFD_CLOEXEC, 0);
  conn->wake_wr = fcntl(c->wake_wr, F_DUPFD_CLOEXEC, 0);
  if (conn->wake_rd < 0 || conn->wake_wr < 0) {
    rx__conn_deinit(conn);
    return RX_ESYS;
  }
  return RX_OK;
}

rx__cl_node *rx__cluster_node(rx_cluster *c, const char *host, int port) {
  for (size_t i = 0; i < c->node_count; i++)
    if (c->nodes[i]->port == port && !strcmp(c->nodes[i]->host, host)) return c->nodes[i];
  if (c->node_count == c->node_cap) {
    size_t cap = c->node_cap ? c->node_cap * 2 : 8;
    rx__cl_node **v = rx__realloc(c->nodes, cap * sizeof *v);
    if (!v) return NULL;
    c->nodes = v;
    c->node_cap = cap;
  }
  rx__cl_node *n = rx__calloc(1, sizeof *n);
  if (!n) return NULL;
  n->host = rx__strdup(host);
  n->port = port;
  if (!n->host || rx__cluster_conn_init(c, &n->conn, n) != RX_OK) {
    rx__free(n->host);
    rx__free(n);
    return NULL;
  }
  if (strchr(host, ':'))
    rx__fmt(n->addr, sizeof n->addr, "[%s]:%d", host, port);
  else
    rx__fmt(n->addr, sizeof n->addr, "%s:%d", host, port);
  c->nodes[c->node_count++] = n;
  return n;
}

/* A link the server closed while idle (a killed or restarted node, an idle
 * timeout) is found before a command is written to it, so the command can
 * go out on a fresh link instead of failing with an unknown outcome. */
static void drop_if_closed(rx_conn *conn) {
  if (conn->fd < 0 || conn->pending > 0) return;
  char b;
  ssize_t n = recv(conn->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    rx_conn_close(conn);
}

/* Remaining ms until deadline (-1: none) capped by limit (0: none); 0 means
 * "no limit at all", as the conn layer reads it; RX_TIMEOUT-style "passed"
 * is -1. */
static int budget(long long deadline, int limit) {
  if (deadline < 0) return limit > 0 ? limit : 0;
  long long left = deadline - rx_monotonic_ms();
  if (left <= 0) return -1;
  if (limit > 0 && limit < left) return limit;
  return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Connects conn if needed, within the deadline. */
static int ensure_open(rx_conn *conn, long long deadline) {
  drop_if_closed(conn);
  if (conn->fd >= 0) return RX_OK;
  int saved = conn->opts.connect_timeout_ms;
  int t = budget(deadline, saved);
  if (t < 0) return rx__conn_seterr(conn, RX_ETIMEDOUT, "no time left to connect");
  conn->opts.connect_timeout_ms = t;
  int rc = rx__conn_open(conn);
  conn->opts.connect_timeout_ms = saved;
  return rc;
}

static int command_within(rx_conn *conn, rx_reply **r, int argc, const char *const *argv,
                          const size_t *lens, long long deadline) {
  int t = budget(deadline, conn->opts.timeout_ms);
  if (t < 0) return rx__conn_seterr(conn, RX_ETIMEDOUT, "no time left for the command");
  return rx__conn_command_timeout(conn, r, argc, argv, lens, t);
}

/* ---------------------------------------------------------------- topology */

/* One node of a topology reply; strings point into the reply. */
typedef struct topo_node {
  const char *host;
  size_t host_len;
  int port;
  const char *id;
  size_t id_len;
  int master, failed;
} topo_node;

typedef struct topo {
  topo_node *nodes;
  size_t count, cap;
  int *ranges; /* triples: first, last, index of the master in nodes */
  size_t range_count, range_cap;
} topo;

static void topo_free(topo *t) {
  rx__free(t->nodes);
  rx__free(t->ranges);
}

/* Adds a node (deduplicated by address); its index, or -1 on no memory. */
static int topo_add(topo *t, const topo_node *n) {
  for (size_t i = 0; i < t->count; i++) {
    topo_node *o = &t->nodes[i];
    if (o->port == n->port && o->host_len == n->host_len &&
        !memcmp(o->host, n->host, n->host_len)) {
      if (n->master) o->master = 1;
      return (int)i;
    }
  }
  if (t->count == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    topo_node *v = rx__realloc(t->nodes, cap * sizeof *v);
    if (!v) return -1;
    t->nodes = v;
    t->cap = cap;
  }
  t->nodes[t->count] = *n;
  return (int)t->count++;
}

static int topo_range(topo *t, long long first, long long last, int master) {
  if (first < 0 || last < first || last >= RX_CLUSTER_SLOTS) return RX_EPROTO;
  if (t->range_count == t->range_cap) {
    size_t cap = t->range_cap ? t->range_cap * 2 : 16;
    int *v = rx__realloc(t->ranges, cap * 3 * sizeof *v);
    if (!v) return RX_ENOMEM;
    t->ranges = v;
    t->range_cap = cap;
  }
  t->ranges[t->range_count * 3] = (int)first;
  t->ranges[t->range_count * 3 + 1] = (int)last;
  t->ranges[t->range_count * 3 + 2] = master;
  t->range_count++;
  return RX_OK;
}

static int is_text(const rx_reply *r) {
  return r && (r->type == RX_REPLY_STRING || r->type == RX_REPLY_STATUS);
}

/* A usable host string: not empty and not "?" (unknown endpoint). */
static int usable_host(const rx_reply *r) {
  return is_text(r) && r->len > 0 && !(r->len == 1 && r->str[0] == '?');
}

/* CLUSTER SHARDS (7.0+): an array of shards, each a flat map with "slots"
 * (pairs of integers) and "nodes" (flat maps: id, port, tls-port, ip,
 * endpoint, hostname, role, replication-offset, health). */
static int parse_shards(const rx_cluster *c, const rx__cl_node *from, const rx_reply *r,
                        topo *t) {
  if (r->type != RX_REPLY_ARRAY) return RX_EPROTO;
  for (size_t s = 0; s < r->elements; s++) {
    const rx_reply *sh = r->element[s], *slots = NULL, *nodes = NULL;
    if (sh->type != RX_REPLY_ARRAY || sh->elements % 2) return RX_EPROTO;
    for (size_t i = 0; i + 1 < sh->elements; i += 2) {
      if (rx__reply_is(sh->element[i], "slots")) slots = sh->element[i + 1];
      else if (rx__reply_is(sh->element[i], "nodes")) nodes = sh->element[i + 1];
    }
    if (!nodes || nodes->type != RX_REPLY_ARRAY) return RX_EPROTO;
    int master = -1;
    for (size_t k = 0; k < nodes->elements; k++) {
      const rx_reply *nm = nodes->element[k];
      const rx_reply *id = NULL, *ip = NULL, *endpoint = NULL, *role = NULL, *health = NULL;
      long long port = 0, tls_port = 0;
      if (nm->type != RX_REPLY_ARRAY || nm->elements % 2) return RX_EPROTO;
      for (size_t i = 0; i + 1 < nm->elements; i += 2) {
        const rx_reply *key = nm->element[i], *v = nm->element[i + 1];
        if (rx__reply_is(key, "id")) id = v;
        else if (rx__reply_is(key, "ip")) ip = v;
        else if (rx__reply_is(key, "endpoint")) endpoint = v;
        else if (rx__reply_is(key, "role")) role = v;
        else if (rx__reply_is(key, "health")) health = v;
        else if (rx__reply_is(key, "port")) rx__reply_int(v, &port);
        else if (rx__reply_is(key, "tls-port")) rx__reply_int(v, &tls_port);
      }
      topo_node tn;
      memset(&tn, 0, sizeof tn);
      const rx_reply *h = usable_host(endpoint) ? endpoint : usable_host(ip) ? ip : NULL;
      if (h) {
        tn.host = h->str;
        tn.host_len = h->len;
      } else {
        /* No announced address: the node is reachable where we asked. */
        tn.host = from->host;
        tn.host_len = strlen(from->host);
      }
      long long p = c->opts.scheme == RX_SCHEME_TLS && tls_port > 0 ? tls_port : port;
      if (p <= 0 || p > 65535) continue; /* no port we can use */
      tn.port = (int)p;
      if (is_text(id)) {
        tn.id = id->str;
        tn.id_len = id->len;
      }
      tn.master = rx__reply_is(role, "master");
      tn.failed = rx__reply_is(health, "fail");
      int idx = topo_add(t, &tn);
      if (idx < 0) return RX_ENOMEM;
      if (tn.master && master < 0) master = idx;
    }
    if (slots && slots->type == RX_REPLY_ARRAY && master >= 0) {
      for (size_t i = 0; i + 1 < slots->elements; i += 2) {
        long long a, b;
        if (rx__reply_int(slots->element[i], &a) || rx__reply_int(slots->element[i + 1], &b))
          return RX_EPROTO;
        int rc = topo_range(t, a, b, master);
        if (rc) return rc;
      }
    }
  }
  return RX_OK;
}

/* CLUSTER SLOTS: [first, last, [host, port, id, ...], replicas...]. */
static int parse_slots(const rx__cl_node *from, const rx_reply *r, topo *t) {
  if (r->type != RX_REPLY_ARRAY) return RX_EPROTO;
  for (size_t s = 0; s < r->elements; s++) {
    const rx_reply *e = r->element[s];
    long long a, b;
    if (e->type != RX_REPLY_ARRAY || e->elements < 3 || rx__reply_int(e->element[0], &a) ||
        rx__reply_int(e->element[1], &b))
      return RX_EPROTO;
    int master = -1;
    for (size_t k = 2; k < e->elements; k++) {
      const rx_reply *nd = e->element[k];
      long long port;
      if (nd->type != RX_REPLY_ARRAY || nd->elements < 2 || rx__reply_int(nd->element[1], &port))
        return RX_EPROTO;
      if (is_text(nd->element[0]) && nd->element[0]->len == 1 && nd->element[0]->str[0] == '?')
        continue; /* unknown endpoint */
      if (port <= 0 || port > 65535) continue;
      topo_node tn;
      memset(&tn, 0, sizeof tn);
      if (usable_host(nd->element[0])) {
        tn.host = nd->element[0]->str;
        tn.host_len = nd->element[0]->len;
      } else {
        tn.host = from->host; /* "": the node we asked */
        tn.host_len = strlen(from->host);
      }
      tn.port = (int)port;
      if (nd->elements >= 3 && is_text(nd->element[2])) {
        tn.id = nd->element[2]->str;
        tn.id_len = nd->element[2]->len;
      }
      tn.master = k == 2;
      int idx = topo_add(t, &tn);
      if (idx < 0) return RX_ENOMEM;
      if (k == 2) master = idx;
    }
    if (master >= 0) {
      int rc = topo_range(t, a, b, master);
      if (rc) return rc;
    }
  }
  return RX_OK;
}

static int node_add_range(rx__cl_node *n, int first, int last) {
  if (n->range_count == n->range_cap) {
    size_t cap = n->range_cap ? n->range_cap * 2 : 4;
    int *v = rx__realloc(n->ranges, cap * 2 * sizeof *v);
    if (!v) return RX_ENOMEM;
    n->ranges = v;
    n->range_cap = cap;
  }
  /* Merge with the previous range when contiguous (CLUSTER SLOTS lists
   * ranges in slot order). */
  if (n->range_count && n->ranges[n->range_count * 2 - 1] + 1 == first) {
    n->ranges[n->range_count * 2 - 1] = last;
    return RX_OK;
  }
  n->ranges[n->range_count * 2] = first;
  n->ranges[n->range_count * 2 + 1] = last;
  n->range_count++;
  return RX_OK;
}

static int cmp_range(const void *a, const void *b) {
  const int *x = a, *y = b;
  return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Makes the parsed topology the current one. */
static int apply_topo(rx_cluster *c, topo *t) {
  if (t->range_count == 0) return RX_ECLUSTER; /* a node that serves nothing yet */
  rx__cl_node **slots = rx__calloc(RX_CLUSTER_SLOTS, sizeof *slots);
  rx__cl_node **map = rx__calloc(t->count ? t->count : 1, sizeof *map);
  if (!slots || !map) {
    rx__free(slots);
    rx__free(map);
    return RX_ENOMEM;
  }
  for (size_t i = 0; i < t->count; i++) {
    char host[256];
    if (t->nodes[i].host_len >= sizeof host) continue;
    memcpy(host, t->nodes[i].host, t->nodes[i].host_len);
    host[t->nodes[i].host_len] = '\0';
    map[i] = rx__cluster_node(c, host, t->nodes[i].port);
    if (!map[i]) {
      rx__free(slots);
      rx__free(map);
      return RX_ENOMEM;
    }
  }
  /* Past this point nothing fails but range storage; a failure there
   * leaves a map without some ranges, which the next refresh repairs. */
  for (size_t i = 0; i < c->node_count; i++) {
    rx__cl_node *n = c->nodes[i];
    n->in_topology = n->is_master = n->failed = 0;
    n->range_count = 0;
  }
  for (size_t i = 0; i < t->count; i++) {
    rx__cl_node *n = map[i];
    if (!n) continue;
    n->in_topology = 1;
    n->is_master = t->nodes[i].master;
    n->failed = t->nodes[i].failed;
    if (t->nodes[i].id_len && t->nodes[i].id_len < sizeof n->id) {
      memcpy(n->id, t->nodes[i].id, t->nodes[i].id_len);
      n->id[t->nodes[i].id_len] = '\0';
    }
  }
  int rc = RX_OK;
  for (size_t r = 0; r < t->range_count; r++) {
    int first = t->ranges[r * 3], last = t->ranges[r * 3 + 1];
    rx__cl_node *n = map[t->ranges[r * 3 + 2]];
    if (!n) continue;
    for (int s = first; s <= last; s++) slots[s] = n;
    if (rc == RX_OK) rc = node_add_range(n, first, last);
  }
  for (size_t i = 0; i < c->node_count; i++) {
    rx__cl_node *n = c->nodes[i];
    if (n->range_count > 1) {
      qsort(n->ranges, n->range_count, 2 * sizeof(int), cmp_range);
      /* Merge neighbours that the sort brought together. */
      size_t w = 0;
      for (size_t k = 1; k < n->range_count; k++) {
        if (n->ranges[w * 2 + 1] + 1 >= n->ranges[k * 2]) {
          if (n->ranges[k * 2 + 1] > n->ranges[w * 2 + 1])
            n->ranges[w * 2 + 1] = n->ranges[k * 2 + 1];
        } else {
          w++;
          n->ranges[w * 2] = n->ranges[k * 2];
          n->ranges[w * 2 + 1] = n->ranges[k * 2 + 1];
        }
      }
      n->range_count = w + 1;
    }
  }
  rx__free(c->slots);
  c->slots = slots;
  rx__free(map);
  c->have_map = 1;
  c->need_refresh = 0;
  c->last_refresh_ms = rx_monotonic_ms();
  c->stats.refreshes++;
  return rc;
}

static int is_not_cluster(const rx_reply *r) {
  static const char msg[] = "cluster support disabled";
  if (!r || r->type != RX_REPLY_ERROR) return 0;
  for (size_t i = 0; i + sizeof msg - 1 <= r->len; i++)
    if (!memcmp(r->str + i, msg, sizeof msg - 1)) return 1;
  return 0;
}

/* Asks node n for the topology and applies it. */
static int refresh_from(rx_cluster *c, rx__cl_node *n, long long deadline) {
  rx_conn *conn = &n->conn;
  rx_reply *r = NULL;
  int rc = ensure_open(conn, deadline);
  if (rc != RX_OK) return conn_err(c, conn, rc);
  const char *shards[2] = {"CLUSTER", "SHARDS"};
  rc = command_within(conn, &r, 2, shards, NULL, deadline);
  if (rc != RX_OK) return conn_err(c, conn, rc);
  int slots_fmt = 0;
  if (r->type == RX_REPLY_ERROR && !is_not_cluster(r)) {
    /* Before 7.0: "ERR unknown subcommand 'SHARDS'"; ask the old way. */
    const char *old[2] = {"CLUSTER", "SLOTS"};
    rx_reply_free(r);
    r = NULL;
    rc = command_within(conn, &r, 2, old, NULL, deadline);
    if (rc != RX_OK) return conn_err(c, conn, rc);
    slots_fmt = 1;
  }
  if (is_not_cluster(r)) {
    rx_reply_free(r);
    c->not_cluster = 1;
    return seterr(c, RX_ECLUSTER,
                  "%s is not a Redis Cluster node (cluster support disabled): use a "
                  "single-host URL without cluster=yes for a standalone server",
                  n->addr);
  }
  if (r->type == RX_REPLY_ERROR) {
    rc = seterr(c, rx__reply_error_code(r), "%s refused CLUSTER SLOTS: %.*s", n->addr,
                (int)(r->len > 150 ? 150 : r->len), r->str);
    rx_reply_free(r);
    return rc;
  }
  topo t;
  memset(&t, 0, sizeof t);
  rc = slots_fmt ? parse_slots(n, r, &t) : parse_shards(c, n, r, &t);
  if (rc == RX_OK) rc = apply_topo(c, &t);
  topo_free(&t);
  rx_reply_free(r);
  if (rc == RX_EPROTO) return seterr(c, rc, "%s sent a topology reply we cannot read", n->addr);
  if (rc == RX_ECLUSTER)
    return seterr(c, rc, "%s knows no slot assignment yet (is the cluster created?)", n->addr);
  if (rc == RX_ENOMEM) return seterr(c, rc, "out of memory");
  return rc;
}

/* Tries the known nodes (live links first, masters before replicas, failed
 * ones last), then the seeds, until one answers. */
static int refresh_until(rx_cluster *c, long long deadline) {
  size_t cap = c->node_count + c->seed_count;
  rx__cl_node **order = rx__calloc(cap ? cap : 1, sizeof *order);
  if (!order) return seterr(c, RX_ENOMEM, "out of memory");
  size_t n = 0;
  for (int pass = 0; pass < 4; pass++) {
    for (size_t i = 0; i < c->node_count; i++) {
      rx__cl_node *nd = c->nodes[i];
      if (!nd->in_topology) continue;
      int live = nd->conn.fd >= 0;
      int want = pass == 0 ? live && nd->is_master && !nd->failed
               : pass == 1 ? live && !nd->failed
               : pass == 2 ? !live && !nd->failed
                           : nd->failed;
      if (want) order[n++] = nd;
    }
  }
  size_t known = n;
  for (size_t i = 0; i < c->seed_count; i++) {
    rx__cl_node *nd = rx__cluster_node(c, c->seed_host[i], c->seed_port[i]);
    if (!nd) {
      rx__free(order);
      return seterr(c, RX_ENOMEM, "out of memory");
    }
    int dup = 0;
    for (size_t k = 0; k < known; k++) dup |= order[k] == nd;
    if (!dup && n < cap) order[n++] = nd;
  }
  int rc = RX_ECONNECT, tried = 0;
  char last[256] = "no node to ask";
  for (size_t i = 0; i < n; i++) {
    if (deadline >= 0 && rx_monotonic_ms() >= deadline && tried) break;
    tried++;
    rc = refresh_from(c, order[i], deadline);
    if (rc == RX_OK || rc == RX_WOKEN || rc == RX_EINTR) break;
    /* A standalone server is a configuration error, not a failover. */
    if (rc == RX_ECLUSTER && !c->have_map && c->not_cluster) break;
    if (rc == RX_EAUTH || rc == RX_ETLSVERIFY || rc == RX_ENOPERM || rc == RX_ENOMEM) break;
    rx__fmt(last, sizeof last, "%s", c->errstr);
  }
  rx__free(order);
  if (rc == RX_OK) {
    c->err = RX_OK;
    c->errstr[0] = '\0';
    return RX_OK;
  }
  if (rc != RX_WOKEN && rc != RX_EINTR && rc != RX_ECLUSTER && rc != RX_EAUTH &&
      rc != RX_ETLSVERIFY && rc != RX_ENOPERM && rc != RX_ENOMEM)
    seterr(c, rc, "no cluster node answered (last: %s)", last);
  return rc;
}

static long long refresh_deadline(const rx_cluster *c) {
  int t = c->opts.timeout_ms > c->opts.connect_timeout_ms ? c->opts.timeout_ms
                                                         : c->opts.connect_timeout_ms;
  return t > 0 ? rx_monotonic_ms() + t : -1;
}

int rx__cluster_refresh(rx_cluster *c) { return refresh_until(c, refresh_deadline(c)); }

int rx_cluster_refresh(rx_cluster *c) {
  if (!c) return RX_EINVAL;
  return rx__cluster_refresh(c);
}

rx__cl_node *rx__cluster_redirect(rx_cluster *c, const rx__cl_node *from, const rx_reply *r,
                                  int *slot, int *is_ask) {
  *is_ask = rx__cluster_err_is(r, "ASK");
  if (!*is_ask && !rx__cluster_err_is(r, "MOVED")) return NULL;
  /* "MOVED 3999 127.0.0.1:6381"; an empty host means the node that sent it. */
  char text[300];
  rx__fmt(text, sizeof text, "%.*s", (int)(r->len < sizeof text ? r->len : sizeof text - 1),
          r->str);
  char *sp1 = strchr(text, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp2) return NULL;
  *sp2 = '\0';
  char *end;
  long s = strtol(sp1 + 1, &end, 10);
  if (*end || s < 0 || s >= RX_CLUSTER_SLOTS) return NULL;
  char *addr = sp2 + 1;
  char *colon = strrchr(addr, ':');
  if (!colon) return NULL;
  *colon = '\0';
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535) return NULL;
  char *host = addr;
  if (*host == '[') { /* an IPv6 literal */
    host++;
    char *close = strchr(host, ']');
    if (close) *close = '\0';
  }
  if (!*host) host = from->host;
  rx__cl_node *n = rx__cluster_node(c, host, (int)port);
  if (!n) return NULL;
  *slot = (int)s;
  if (!*is_ask) {
    c->slots[s] = n;
    n->is_master = 1;
    c->need_refresh = 1;
  }
  return n;
}

/* ---------------------------------------------------------------- routing */

/* Where the key is, for the commands whose key is not argv[1]. */
enum { KEY_NONE = 0, KEY_EVAL = -1, KEY_STREAMS = -2 };

typedef struct key_rule {
  const char *name;
  int where; /* KEY_*, or the argv index of the key */
} key_rule;

static const key_rule key_rules[] = {
    /* No key: any master serves them (PUBLISH is broadcast cluster-wide). */
    {"PING", KEY_NONE}, {"ECHO", KEY_NONE}, {"INFO", KEY_NONE}, {"TIME", KEY_NONE},
    {"PUBLISH", KEY_NONE}, {"PUBSUB", KEY_NONE}, {"CONFIG", KEY_NONE}, {"CLIENT", KEY_NONE},
    {"CLUSTER", KEY_NONE}, {"COMMAND", KEY_NONE}, {"SCRIPT", KEY_NONE},
    {"FUNCTION", KEY_NONE}, {"DBSIZE", KEY_NONE}, {"RANDOMKEY", KEY_NONE},
    {"SCAN", KEY_NONE}, {"KEYS", KEY_NONE}, {"FLUSHALL", KEY_NONE}, {"FLUSHDB", KEY_NONE},
    {"WAIT", KEY_NONE}, {"WAITAOF", KEY_NONE}, {"LASTSAVE", KEY_NONE}, {"ROLE", KEY_NONE},
    {"ACL", KEY_NONE}, {"AUTH", KEY_NONE}, {"HELLO", KEY_NONE}, {"LATENCY", KEY_NONE},
    {"SLOWLOG", KEY_NONE}, {"MODULE", KEY_NONE}, {"DEBUG", KEY_NONE}, {"SAVE", KEY_NONE},
    {"BGSAVE", KEY_NONE}, {"BGREWRITEAOF", KEY_NONE}, {"SWAPDB", KEY_NONE},
    {"SELECT", KEY_NONE}, {"READONLY", KEY_NONE}, {"READWRITE", KEY_NONE},
    /* The key after a subcommand. */
    {"XGROUP", 2}, {"XINFO", 2}, {"OBJECT", 2}, {"MEMORY", 2},
    /* numkeys at argv[2], then the keys. */
    {"EVAL", KEY_EVAL}, {"EVALSHA", KEY_EVAL}, {"EVAL_RO", KEY_EVAL},
    {"EVALSHA_RO", KEY_EVAL}, {"FCALL", KEY_EVAL}, {"FCALL_RO", KEY_EVAL},
    /* The first key after STREAMS. */
    {"XREAD", KEY_STREAMS}, {"XREADGROUP", KEY_STREAMS},
};

static int arg_is(const char *a, size_t n, const char *w) {
  size_t wl = strlen(w);
  return n == wl && strncasecmp(a, w, wl) == 0;
}

/* The index of the key argument, or -1 for a keyless command. */
static int key_index_of(int argc, const char *const *argv, const size_t *lens) {
  size_t n0 = lens ? lens[0] : strlen(argv[0]);
  for (size_t i = 0; i < sizeof key_rules / sizeof key_rules[0]; i++) {
    if (!arg_is(argv[0], n0, key_rules[i].name)) continue;
    int w = key_rules[i].where;
    if (w == KEY_NONE) return -1;
    if (w == KEY_EVAL) {
      if (argc < 4) return -1;
      char num[24];
      size_t nl = lens ? lens[2] : strlen(argv[2]);
      if (nl == 0 || nl >= sizeof num) return -1;
      memcpy(num, argv[2], nl);
      num[nl] = '\0';
      return atol(num) > 0 ? 3 : -1;
    }
    if (w == KEY_STREAMS) {
      for (int k = 1; k + 1 < argc; k++)
        if (arg_is(argv[k], lens ? lens[k] : strlen(argv[k]), "STREAMS")) return k + 1;
      return -1;
    }
    return w < argc ? w : -1;
  }
  return argc > 1 ? 1 : -1;
}

/* A master for a keyless command: a random one, so that many clients do not
 * all pile onto the first. */
static rx__cl_node *any_master(rx_cluster *c) {
  size_t count = 0;
  for (size_t i = 0; i < c->node_count; i++) {
    rx__cl_node *n = c->nodes[i];
    if (n->in_topology && n->is_master && !n->failed && n->range_count) count++;
  }
  if (!count) return NULL;
  size_t pick = (size_t)(rx__random() % count);
  for (size_t i = 0; i < c->node_count; i++) {
    rx__cl_node *n = c->nodes[i];
    if (n->in_topology && n->is_master && !n->failed && n->range_count && pick-- == 0) return n;
  }
  return NULL;
}

/* Sleeps for a retry's backoff on the wakeup pipe (never past the
 * deadline). RX_OK, RX_WOKEN or RX_EINTR. */
static int backoff_wait(rx_cluster *c, int step, long long deadline) {
  long long d = 10;
  for (int i = 0; i < step && d < 250; i++) d *= 2;
  if (d > 250) d = 250;
  d = d / 2 + (long long)(rx__random() % (uint64_t)(d / 2 + 1));
  long long until = rx_monotonic_ms() + d;
  if (deadline >= 0 && until > deadline) until = deadline;
  struct pollfd p = {c->wake_rd, POLLIN, 0};
  int n = poll(&p, 1, rx__remaining(until));
  if (n < 0) return errno == EINTR ? RX_EINTR : RX_OK;
  if (n > 0) {
    rx__wake_drain(c->wake_rd);
    return RX_WOKEN;
  }
  return RX_OK;
}

/* ASKING and the command, pipelined; the reply to the command in *r, each
 * reply waited for up to t ms (0 = forever). */
static int asking_command(rx_conn *conn, rx_reply **r, int argc, const char *const *argv,
                          const size_t *lens, int t) {
  const char *asking[1] = {"ASKING"};
  rx_reply *ra = NULL;
  if (conn->pending > 0)
    return rx__conn_seterr(conn, RX_ESTATE, "pipelined replies are pending: read them first");
  int rc = rx_conn_append(conn, 1, asking, NULL);
  if (rc != RX_OK) return rc;
  rc = rx_conn_append(conn, argc, argv, lens);
  if (rc != RX_OK) {
    rx_conn_close(conn); /* drop the lone ASKING */
    return rc;
  }
  rc = rx__conn_get_reply_timeout(conn, &ra, t);
  if (rc == RX_WOKEN || rc == RX_EINTR) {
    conn->pending--; /* the command's reply is skipped too */
    conn->skip++;
  }
  if (rc != RX_OK) return rc;
  rx_reply_free(ra);
  return rx__conn_get_reply_timeout(conn, r, t);
}

static int is_permanent(int code) {
  return code == RX_EAUTH || code == RX_EURL || code == RX_ETLSVERIFY || code == RX_ENOPERM ||
         code == RX_ENOMEM || code == RX_ESYS || code == RX_EINVAL || code == RX_ESTATE;
}

#define RX_CLUSTER_MAX_REDIRECTS 5
#define RX_CLUSTER_MAX_TRIES 20 /* without a command timeout */

/* wait_ms: how long the reply may take (0 = forever), or -1 for the
 * command timeout, within the overall deadline. */
static int route(rx_cluster *c, int key_index, rx_reply **reply, int argc,
                 const char *const *argv, const size_t *lens, int wait_ms) {
  long long deadline = rx__deadline(c->opts.timeout_ms > 0 ? c->opts.timeout_ms : -1);
  int slot = -1, redirects = 0, step = 0, rc;
  rx__cl_node *forced = NULL, *ask = NULL;
  rx_reply *refusal = NULL; /* the last TRYAGAIN/CLUSTERDOWN..., returned if time runs out */
  if (key_index >= 1 && key_index < argc)
    slot = rx_cluster_keyslot(argv[key_index], lens ? lens[key_index] : strlen(argv[key_index]));
  c->err = RX_OK;
  c->errstr[0] = '\0';
  for (int tries = 0;; tries++) {
    int last = RX_OK;
    if (!c->have_map ||
        (c->need_refresh && rx_monotonic_ms() - c->last_refresh_ms >= 100 && !forced && !ask)) {
      rc = refresh_until(c, deadline);
      if (rc == RX_WOKEN || rc == RX_EINTR || (rc < 0 && is_permanent(rc))) goto fail;
      if (rc == RX_ECLUSTER && !c->have_map && c->not_cluster) goto fail;
      if (rc != RX_OK && !c->have_map) {
        last = rc;
        goto retry;
      }
    }
    rx__cl_node *n = ask ? ask : forced ? forced : slot >= 0 ? c->slots[slot] : any_master(c);
    if (!n) {
      c->need_refresh = 1;
      if (slot >= 0)
        last = seterr(c, RX_ECLUSTER, "no node serves hash slot %d", slot);
      else
        last = seterr(c, RX_ECLUSTER, "no master is known");
      goto retry;
    }
    rx_conn *conn = &n->conn;
    rc = ensure_open(conn, deadline);
    if (rc != RX_OK) {
      conn_err(c, conn, rc);
      if (rc == RX_WOKEN || rc == RX_EINTR || is_permanent(rc)) goto fail;
      /* Not sent: a dead node, most likely a master being failed over. */
      c->need_refresh = 1;
      forced = ask = NULL;
      last = rc;
      goto retry;
    }
    rx_reply *r = NULL;
    int wait = wait_ms >= 0 ? wait_ms : budget(deadline, conn->opts.timeout_ms);
    if (wait < 0)
      rc = rx__conn_seterr(conn, RX_ETIMEDOUT, "no time left for the command");
    else if (ask)
      rc = asking_command(conn, &r, argc, argv, lens, wait);
    else
      rc = rx__conn_command_timeout(conn, &r, argc, argv, lens, wait);
    ask = NULL;
    if (rc != RX_OK) {
      /* Sent, and the outcome is unknown: not retried. */
      conn_err(c, conn, rc);
      if (rc != RX_WOKEN && rc != RX_EINTR) c->need_refresh = 1;
      goto fail;
    }
    if (r->type == RX_REPLY_ERROR) {
      int s = -1, is_ask = 0;
      rx__cl_node *t = rx__cluster_redirect(c, n, r, &s, &is_ask);
      if (t) {
        if (++redirects > RX_CLUSTER_MAX_REDIRECTS) {
          seterr(c, RX_ECLUSTER, "too many redirections (last: %.*s)",
                 (int)(r->len > 150 ? 150 : r->len), r->str);
          rx_reply_free(r);
          rc = RX_ECLUSTER;
          goto fail;
        }
        rx_reply_free(r);
        if (is_ask) {
          c->stats.ask++;
          ask = t;
          forced = NULL;
        } else {
          c->stats.moved++;
          forced = t;
        }
        continue;
      }
      int refresh = rx__cluster_err_is(r, "CLUSTERDOWN") || rx__cluster_err_is(r, "READONLY") ||
                    rx__cluster_err_is(r, "LOADING");
      if (refresh || rx__cluster_err_is(r, "TRYAGAIN")) {
        /* Refused without running: try again shortly. */
        if (refresh) c->need_refresh = 1;
        forced = NULL;
        rx_reply_free(refusal);
        refusal = r;
        last = RX_OK;
        goto retry;
      }
    }
    rx_reply_free(refusal);
    *reply = r;
    return RX_OK;

  retry:
    if ((deadline >= 0 && rx_monotonic_ms() >= deadline) ||
        (deadline < 0 && tries + 1 >= RX_CLUSTER_MAX_TRIES)) {
      if (refusal) {
        *reply = refusal; /* the server's last word */
        return RX_OK;
      }
      rc = last ? last : RX_ETIMEDOUT;
      if (!c->errstr[0]) seterr(c, rc, "the cluster did not serve the command in time");
      goto fail;
    }
    rc = backoff_wait(c, step++, deadline);
    if (rc != RX_OK) {
      seterr(c, rc, "%s", rx_strerror(rc));
      goto fail;
    }
    c->stats.retries++;
  }
fail:
  rx_reply_free(refusal);
  if (c->err != rc) {
    if (rc == RX_WOKEN || rc == RX_EINTR) seterr(c, rc, "%s", rx_strerror(rc));
    else c->err = rc;
  }
  return rc;
}

int rx_cluster_command_key(rx_cluster *c, int key_index, rx_reply **reply, int argc,
                           const char *const *argv, const size_t *argvlen) {
  if (reply) *reply = NULL;
  if (!c) return RX_EINVAL;
  if (!reply || argc <= 0 || !argv) return seterr(c, RX_EINVAL, "no command or no reply pointer");
  if (key_index != -1 && (key_index < 1 || key_index >= argc))
    return seterr(c, RX_EINVAL, "key index %d is not an argument (argc %d)", key_index, argc);
  return route(c, key_index, reply, argc, argv, argvlen, -1);
}

int rx_cluster_command(rx_cluster *c, rx_reply **reply, int argc, const char *const *argv,
                       const size_t *argvlen) {
  if (reply) *reply = NULL;
  if (!c) return RX_EINVAL;
  if (!reply || argc <= 0 || !argv) return seterr(c, RX_EINVAL, "no command or no reply pointer");
  return route(c, key_index_of(argc, argv, argvlen), reply, argc, argv, argvlen, -1);
}

int rx__cluster_command_timeout(rx_cluster *c, int key_index, rx_reply **reply, int argc,
                                const char *const *argv, const size_t *argvlen, int timeout_ms) {
  if (reply) *reply = NULL;
  if (!c) return RX_EINVAL;
  if (!reply || argc <= 0 || !argv) return seterr(c, RX_EINVAL, "no command or no reply pointer");
  if (key_index == RX__CLUSTER_KEY_AUTO) key_index = key_index_of(argc, argv, argvlen);
  if (key_index != -1 && (key_index < 1 || key_index >= argc))
    return seterr(c, RX_EINVAL, "key index %d is not an argument (argc %d)", key_index, argc);
  return route(c, key_index, reply, argc, argv, argvlen, timeout_ms < 0 ? 0 : timeout_ms);
}

int rx_cluster_call(rx_cluster *c, rx_reply **reply, int argc, const char *const *argv,
                    const size_t *argvlen) {
  rx_reply *r = NULL;
  if (reply) *reply = NULL;
  int rc = rx_cluster_command(c, &r, argc, argv, argvlen);
  if (rc != RX_OK) return rc;
  if (r->type == RX_REPLY_ERROR) {
    rc = rx__cluster_err_is(r, "CLUSTERDOWN") || rx__cluster_err_is(r, "TRYAGAIN") ||
                 rx__cluster_err_is(r, "MOVED") || rx__cluster_err_is(r, "ASK")
             ? RX_ECLUSTER
             : rx__reply_error_code(r);
    seterr(c, rc, "%.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
    rx_reply_free(r);
    return rc;
  }
  if (reply)
    *reply = r;
  else
    rx_reply_free(r);
  return RX_OK;
}

/* ---------------------------------------------------------------- nodes list */

static int first_slot(const rx__cl_node *n) {
  return n->range_count ? n->ranges[0] : RX_CLUSTER_SLOTS;
}

static int cmp_node(const void *a, const void *b) {
  const rx__cl_node *x = *(rx__cl_node *const *)a, *y = *(rx__cl_node *const *)b;
  if (x->is_master != y->is_master) return y->is_master - x->is_master;
  int fx = first_slot(x), fy = first_slot(y);
  if (fx != fy) return (fx > fy) - (fx < fy);
  int h = strcmp(x->host, y->host);
  return h ? h : (x->port > y->port) - (x->port < y->port);
}

/* The nodes of the topology matching `which`, sorted; caller frees. */
static int sorted_nodes(rx_cluster *c, int which, rx__cl_node ***out, size_t *count) {
  rx__cl_node **v = rx__calloc(c->node_count ? c->node_count : 1, sizeof *v);
  if (!v) return seterr(c, RX_ENOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < c->node_count; i++) {
    rx__cl_node *n = c->nodes[i];
    if (!n->in_topology) continue;
    if ((n->is_master && (which & RX_CLUSTER_MASTERS)) ||
        (!n->is_master && (which & RX_CLUSTER_REPLICAS)))
      v[k++] = n;
  }
  qsort(v, k, sizeof *v, cmp_node);
  *out = v;
  *count = k;
  return RX_OK;
}

int rx_cluster_nodes(rx_cluster *c, int which, rx_cluster_node *out, size_t max) {
  if (!c) return RX_EINVAL;
  if (max && !out) return seterr(c, RX_EINVAL, "no output array");
  c->err = RX_OK;
  c->errstr[0] = '\0';
  if (!c->have_map || c->need_refresh) {
    int rc = rx__cluster_refresh(c);
    if (rc != RX_OK && !c->have_map) {
      /* A positive status would read as a number of nodes. */
      if (rc > 0) {
        seterr(c, rc, "%s", rx_strerror(rc));
        return 0;
      }
      return rc;
    }
  }
  rx__cl_node **v;
  size_t k;
  int rc = sorted_nodes(c, which, &v, &k);
  if (rc != RX_OK) return rc;
  for (size_t i = 0; i < k && i < max; i++) {
    rx__cl_node *n = v[i];
    out[i].host = n->host;
    out[i].port = n->port;
    out[i].id = n->id;
    out[i].is_master = n->is_master;
    out[i].failed = n->failed;
    out[i].range_count = n->range_count;
    out[i].ranges = n->ranges;
    out[i].conn = &n->conn;
  }
  rx__free(v);
  return k > 0x7fffffff ? 0x7fffffff : (int)k;
}

/* ---------------------------------------------------------------- notify */

/* A short hash tag whose slot n serves, so that n accepts the notify probe's
 * write (a key of another node's slot gets MOVED, and the probe could not
 * tell whether "n" is on). "" when n serves no slot (a replica): its probe
 * is refused either way (READONLY) and "n" is kept, as the contract says. */
static void owned_tag(const rx__cl_node *n, char *tag, size_t len) {
  tag[0] = '\0';
  if (!n->is_master || n->range_count == 0) return;
  /* A node serving a third of the slots takes about 3 tries; 100,000
   * candidates cover every slot many times over. */
  for (unsigned i = 0; i < 100000; i++) {
    char cand[16];
    int slot;
    rx__fmt(cand, sizeof cand, "%u", i);
    slot = rx_cluster_keyslot(cand, strlen(cand));
    for (size_t r = 0; r < n->range_count; r++) {
      if (slot >= n->ranges[2 * r] && slot <= n->ranges[2 * r + 1]) {
        rx__fmt(tag, len, "%s", cand);
        return;
      }
    }
  }
}

int rx_cluster_notify_ensure(rx_cluster *c, const char *flags, char *effective,
                             size_t effective_len) {
  if (effective && effective_len) effective[0] = '\0';
  if (!c) return RX_EINVAL;
  if (!flags) return seterr(c, RX_EINVAL, "flags is NULL");
  if (!c->have_map || c->need_refresh) {
    int rc = rx__cluster_refresh(c);
    if (rc != RX_OK && !c->have_map) return rc;
  }
  rx__cl_node **v;
  size_t k;
  int rc = sorted_nodes(c, RX_CLUSTER_MASTERS | RX_CLUSTER_REPLICAS, &v, &k);
  if (rc != RX_OK) return rc;
  int first_err = RX_OK, done_first = 0;
  char eff[128];
  for (size_t i = 0; i < k; i++) {
    rx__cl_node *n = v[i];
    if (n->failed) continue;
    drop_if_closed(&n->conn);
    eff[0] = '\0';
    char tag[16];
    owned_tag(n, tag, sizeof tag);
    rc = rx__notify_ensure_tagged(&n->conn, flags, eff, sizeof eff, tag[0] ? tag : NULL);
    if (rc == RX_WOKEN || rc == RX_EINTR) {
      first_err = seterr(c, rc, "%s", rx_strerror(rc));
      break;
    }
    if (rc != RX_OK) {
      if (first_err == RX_OK)
        first_err = seterr(c, rc, "%s: %s", n->addr, rx_conn_errstr(&n->conn));
      if (rc == RX_EINVAL) break; /* a bad flag is bad everywhere */
      continue;
    }
    if (!done_first && n->is_master) {
      done_first = 1;
      if (effective) rx__fmt(effective, effective_len, "%s", eff);
    }
  }
  rx__free(v);
  return first_err;
}
