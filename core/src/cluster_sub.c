/* cluster_sub.c — the subscriber in Redis Cluster mode.
 *
 * rx_sub keeps its API in a cluster; sub.c hands its calls to this file
 * when the URL has several hosts or cluster=yes. The wanted subscriptions
 * are kept as in sub.c (three sets); what differs is where they go:
 *
 *   keyspace / keyevent names (channels and patterns beginning "__key",
 *   i.e. __keyspace@... and __keyevent@...): to EVERY master that serves
 *   slots, because each node publishes notifications only about its own
 *   keys, and only locally;
 *
 *   other SUBSCRIBE / PSUBSCRIBE names: to ONE master (the "general" link):
 *   Redis 7 broadcasts PUBLISH over the cluster bus to every node, so one
 *   node sees every message, and subscribing to more would deliver each
 *   message several times;
 *
 *   SSUBSCRIBE names: to the master of the channel's slot, and again to the
 *   new owner after the server unsubscribes us (a server-sent
 *   "sunsubscribe": the slot moved) or answers MOVED.
 *
 * Replicas are never subscribed to. Replicas also emit keyspace events for
 * the commands they replay, and Redis 7 delivers published messages on
 * replicas too, so subscribing to them would bring duplicates to filter; a
 * replica's own events are not needed as long as its master is up, and once
 * it is promoted it is a master and gets subscribed.
 *
 * There is one link (an rx_conn of its own, not the command connection of
 * the rx_cluster) per master that carries something. Each link counts the
 * confirmations it still expects, is health-checked with PING and a
 * deadline, and is re-established with backoff and jitter, exactly as
 * sub.c's single link. The topology comes from an embedded rx_cluster: it
 * is refreshed every few seconds, after a link is lost, after a reconnect
 * attempt failed, and after a MOVED or a server-sent sunsubscribe; each
 * refresh is followed by `reconcile`, which creates links for new masters,
 * drops links of nodes that no longer serve slots (a failed-over master),
 * moves the general subscriptions and the shard channels where they now
 * belong, and subscribes there.
 *
 * Gaps: when a link that was up is lost, or the server unsubscribes a shard
 * channel, a gap begins (at the last moment that link was known good). It
 * ends, and one RX_EV_GAP event is delivered, once every link the current
 * topology needs is up and has confirmed every subscription. A failover is
 * thus one gap: from the old master's last frame until the promoted replica
 * has confirmed. The event's data names the nodes whose link was lost
 * ("127.0.0.1:7001,..."); its channel is "". Overlapping losses give one
 * gap spanning them all. */
#include "rx_cluster.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

enum { KIND_CHANNEL = 0, KIND_PATTERN = 1, KIND_SHARD = 2, KIND_COUNT = 3 };

static const char *const sub_cmd[KIND_COUNT] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"};
static const char *const unsub_cmd[KIND_COUNT] = {"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};

/* How often the topology is reloaded when nothing happens, and at least how
 * far apart reloads are when links fail (reconnect attempts pace them). */
#define CSUB_REFRESH_MS 5000
#define CSUB_REFRESH_MIN_MS 200
/* Redirected shard subscriptions during a slot migration (ASK) wait this
 * long before they are tried again. */
#define CSUB_ASK_RETRY_MS 200
/* Replies read from one link per pass, so a flood on one cannot starve the
 * others or the timers. */
#define CSUB_READ_BURST 512


/* ---------------------------------------------------------------- structures */

typedef struct csub_link {
  rx__cl_node *node;       /* the master (stable: nodes live as long as the cluster) */
  rx_conn conn;
  int confirms;            /* replies still expected for commands we sent */
  int ping_out;
  long long expect_by;     /* monotonic deadline for the next frame, 0 = none */
  long long last_rx_ms;
  long long last_good_wall;
  int had_link;            /* was up once: losing it starts a gap */
  int linked;              /* opened and not yet known lost (conn.c may close
                              the socket on an I/O error before we hear of it) */
  int fresh;               /* created, never tried yet */
  int attempts;
  long long next_attempt;
  int last_err;
  rx__name_set shards;         /* shard channels assigned to this link */
  rx__name_set unsub;          /* our SUNSUBSCRIBEs awaiting confirmation (multiset) */
  int general;             /* carries the plain SUBSCRIBE / PSUBSCRIBE names */
  int needed;              /* scratch for reconcile */
} csub_link;

struct rx__csub {
  rx_cluster *cl;          /* topology, options and the shared wakeup pipe */
  rx__name_set wanted[KIND_COUNT];
  csub_link **links;
  size_t link_count, link_cap;
  rx__reply_fifo fifo;
  rx_reply **held;
  size_t held_count, held_cap;
  int gap_pending;
  long long gap_start_wall;
  int gap_attempts;
  char gap_nodes[256];     /* nodes of the pending gap */
  char gap_text[256];      /* the delivered gap event's data */
  int need_refresh;        /* the topology is suspect (informational) */
  long long last_refresh;  /* monotonic ms of the last refresh attempt */
  long long next_refresh;  /* monotonic ms the next refresh is due */
  int refresh_failures;    /* failed refreshes in a row (backoff) */
  int need_reconcile;
  long long reconcile_at;
  int epfd;
  struct pollfd *pfd;      /* poll set: the wakeup pipe, then the up links */
  csub_link **pwho;
  size_t pcap;
  int err;
  char errstr[256];
};

enum { PUMP_EVENT = 0, PUMP_CONFIRM = 1 };

/* ---------------------------------------------------------------- helpers */

static int seterr(rx__csub *s, int code, const char *msg) {
  s->err = code;
  rx__fmt(s->errstr, sizeof s->errstr, "%s", msg);
  return code;
}

static const rx_opts *opts(const rx__csub *s) { return &s->cl->opts; }

/* Keyspace and keyevent names: every master publishes its own. */
static int is_keyspace(int kind, const char *p, size_t n) {
  return kind != KIND_SHARD && n >= 5 && memcmp(p, "__key", 5) == 0;
}

static size_t count_where(const rx__csub *s, int keyspace) {
  size_t k = 0;
  for (int kind = KIND_CHANNEL; kind <= KIND_PATTERN; kind++)
    for (size_t i = 0; i < s->wanted[kind].count; i++)
      if (is_keyspace(kind, s->wanted[kind].names[i], s->wanted[kind].lens[i]) == keyspace) k++;
  return k;
}

static long long expect_deadline(const rx__csub *s) {
  int t = opts(s)->health_timeout_ms;
  if (opts(s)->timeout_ms > t) t = opts(s)->timeout_ms;
  if (t <= 0) t = 3000;
  return rx_monotonic_ms() + t;
}

static int backoff_ms(const rx__csub *s, const csub_link *l) {
  long long lo = opts(s)->reconnect_min_ms, hi = opts(s)->reconnect_max_ms;
  if (lo < 1) lo = 1;
  if (hi < lo) hi = lo;
  long long d = lo;
  for (int i = 1; i < l->attempts && d < hi; i++) d *= 2;
  if (d > hi) d = hi;
  long long half = d / 2;
  return (int)(d - half + (long long)(rx__random() % (uint64_t)(half + 1)));
}

/* Something suggests the topology changed: reload soon (urgent: at once),
 * but not more often than every CSUB_REFRESH_MIN_MS, nor faster than the
 * backoff while reloads fail. */
static void want_refresh(rx__csub *s, int urgent) {
  long long t = urgent ? rx_monotonic_ms() : s->last_refresh + CSUB_REFRESH_MIN_MS;
  s->need_refresh = 1;
  if (s->refresh_failures && !urgent) return;
  if (t < s->next_refresh) s->next_refresh = t;
}

static int is_permanent(int code) {
  return code == RX_EAUTH || code == RX_EURL || code == RX_ETLSVERIFY || code == RX_ENOPERM ||
         code == RX_ERESOLVE;
}

static void release_held(rx__csub *s) {
  for (size_t i = 0; i < s->held_count; i++) rx_reply_free(s->held[i]);
  s->held_count = 0;
}

static int hold(rx__csub *s, rx_reply *r) {
  if (s->held_count == s->held_cap) {
    size_t cap = s->held_cap ? s->held_cap * 2 : 16;
    rx_reply **h = rx__realloc(s->held, cap * sizeof *h);
    if (!h) return RX_ENOMEM;
    s->held = h;
    s->held_cap = cap;
  }
  s->held[s->held_count++] = r;
  return RX_OK;
}

/* A gap begins (or widens) at `since`, because of node `addr`. */
static void gap_begin(rx__csub *s, long long since, const char *addr) {
  if (!s->gap_pending) {
    s->gap_pending = 1;
    s->gap_start_wall = since;
    s->gap_attempts = 0;
    s->gap_nodes[0] = '\0';
  } else if (since < s->gap_start_wall) {
    s->gap_start_wall = since;
  }
  /* Name each node once. */
  size_t al = strlen(addr), gl = strlen(s->gap_nodes);
  for (const char *p = s->gap_nodes; (p = strstr(p, addr)) != NULL; p += al)
    if ((p == s->gap_nodes || p[-1] == ',') && (p[al] == ',' || p[al] == '\0')) return;
  if (gl + al + 2 < sizeof s->gap_nodes)
    rx__fmt(s->gap_nodes + gl, sizeof s->gap_nodes - gl, "%s%s", gl ? "," : "", addr);
}

/* ---------------------------------------------------------------- links */

static csub_link *link_of(const rx__csub *s, const rx__cl_node *n) {
  for (size_t i = 0; i < s->link_count; i++)
    if (s->links[i]->node == n) return s->links[i];
  return NULL;
}

static csub_link *link_get(rx__csub *s, rx__cl_node *n) {
  csub_link *l = link_of(s, n);
  if (l) return l;
  if (s->link_count == s->link_cap) {
    size_t cap = s->link_cap ? s->link_cap * 2 : 8;
    csub_link **v = rx__realloc(s->links, cap * sizeof *v);
    if (!v) return NULL;
    s->links = v;
    s->link_cap = cap;
  }
  l = rx__calloc(1, sizeof *l);
  if (!l) return NULL;
  if (rx__cluster_conn_init(s->cl, &l->conn, n) != RX_OK) {
    rx__free(l);
    return NULL;
  }
  l->node = n;
  l->fresh = 1;
  s->links[s->link_count++] = l;
  return l;
}

static void link_free(csub_link *l) {
  rx__conn_deinit(&l->conn);
  rx__set_free(&l->shards);
  rx__set_free(&l->unsub);
  rx__free(l);
}

static int link_up(const csub_link *l) { return l->conn.fd >= 0; }

static void link_lost(rx__csub *s, csub_link *l, int code, const char *why) {
  char msg[400];
  rx__fmt(msg, sizeof msg, "%s: %s", l->node->addr, why);
  if (l->linked) gap_begin(s, l->last_good_wall, l->node->addr);
  l->linked = 0;
  seterr(s, code, msg);
  rx_conn_close(&l->conn);
  l->confirms = 0;
  l->ping_out = 0;
  l->expect_by = 0;
  l->attempts = 0;
  l->next_attempt = 0; /* the first attempt goes at once */
  rx__set_clear(&l->unsub);
  want_refresh(s, 0);
}

/* Queues one (un)subscribe command on an up link. */
static int link_send(rx__csub *s, csub_link *l, const char *cmd, const char *p, size_t n) {
  const char *argv[2] = {cmd, p ? p : ""};
  size_t lens[2] = {strlen(cmd), n};
  int rc = rx__format_command(&l->conn.out, 2, argv, lens);
  if (rc) return seterr(s, rc, "out of memory");
  l->confirms++;
  l->expect_by = expect_deadline(s);
  return RX_OK;
}

/* Does link l carry name i of kind? (Shards: by assignment.) */
static int carries(const csub_link *l, int kind, const char *p, size_t n) {
  if (kind == KIND_SHARD) return rx__set_find(&l->shards, p, n) >= 0;
  return is_keyspace(kind, p, n) || l->general;
}

static void epoll_watch(rx__csub *s, csub_link *l) {
#ifdef __linux__
  if (s->epfd < 0 || l->conn.fd < 0) return;
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.events = EPOLLIN;
  e.data.ptr = l;
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, l->conn.fd, &e) != 0 && errno == EEXIST)
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, l->conn.fd, &e);
#else
  (void)s;
  (void)l;
#endif
}

/* Opens the link and replays everything it carries (not waiting). */
static int link_open(rx__csub *s, csub_link *l) {
  l->fresh = 0;
  if (s->gap_pending) s->gap_attempts++;
  int rc = rx__conn_open(&l->conn);
  if (rc != RX_OK) {
    l->last_err = rc;
    char msg[400];
    rx__fmt(msg, sizeof msg, "%s", l->conn.errstr);
    return seterr(s, rc, msg);
  }
  l->confirms = 0;
  l->ping_out = 0;
  rx__set_clear(&l->unsub);
  for (int k = KIND_CHANNEL; k < KIND_COUNT && rc == RX_OK; k++) {
    const rx__name_set *ns = k == KIND_SHARD ? &l->shards : &s->wanted[k];
    for (size_t i = 0; i < ns->count && rc == RX_OK; i++)
      if (k == KIND_SHARD || carries(l, k, ns->names[i], ns->lens[i]))
        rc = link_send(s, l, sub_cmd[k], ns->names[i], ns->lens[i]);
  }
  if (rc == RX_OK && l->conn.out.len) {
    rc = rx__conn_flush(&l->conn, rx__deadline(opts(s)->timeout_ms > 0 ? opts(s)->timeout_ms : -1));
    if (rc != RX_OK) {
      int code = rc < 0 ? rc : RX_EIO;
      seterr(s, code, rc < 0 ? l->conn.errstr : "interrupted while resubscribing");
      rx_conn_close(&l->conn);
      l->confirms = 0;
      l->last_err = code;
      return code;
    }
  }
  if (rc != RX_OK) {
    rx_conn_close(&l->conn);
    l->confirms = 0;
    return rc;
  }
  l->last_rx_ms = rx_monotonic_ms();
  l->last_good_wall = rx_now_ms();
  l->expect_by = l->confirms ? expect_deadline(s) : 0;
  l->had_link = 1;
  l->linked = 1;
  l->attempts = 0;
  l->last_err = RX_OK;
  epoll_watch(s, l);
  return RX_OK;
}

/* A failed attempt: plan the next one. Returns rc when the subscriber cannot
 * go on by itself (as sub.c: a permanent error, or the attempts limit). */
static int link_failed(rx__csub *s, csub_link *l, int rc) {
  l->attempts++;
  l->next_attempt = rx_monotonic_ms() + backoff_ms(s, l);
  want_refresh(s, 0); /* a refused connection is how a dead master shows */
  if (is_permanent(rc)) return rc;
  if (opts(s)->reconnect_max_attempts > 0 && l->attempts >= opts(s)->reconnect_max_attempts)
    return rc;
  return RX_OK;
}

/* ---------------------------------------------------------------- reconcile */

static csub_link *shard_holder(const rx__csub *s, const char *p, size_t n) {
  for (size_t i = 0; i < s->link_count; i++)
    if (rx__set_find(&s->links[i]->shards, p, n) >= 0) return s->links[i];
  return NULL;
}

/* Sends the plain (non-keyspace) channel and pattern names on l. */
static int send_general(rx__csub *s, csub_link *l, int subscribe) {
  for (int k = KIND_CHANNEL; k <= KIND_PATTERN; k++) {
    const rx__name_set *ns = &s->wanted[k];
    for (size_t i = 0; i < ns->count; i++) {
      if (is_keyspace(k, ns->names[i], ns->lens[i])) continue;
      int rc = link_send(s, l, subscribe ? sub_cmd[k] : unsub_cmd[k], ns->names[i], ns->lens[i]);
      if (rc) return rc;
    }
  }
  return RX_OK;
}

/* Moves a shard channel's assignment from `from` (may be NULL) to `to`
 * (may be NULL: no owner known). */
static int shard_move(rx__csub *s, csub_link *from, csub_link *to, const char *p, size_t n) {
  int rc;
  if (from) {
    int i = rx__set_find(&from->shards, p, n);
    if (i >= 0) rx__set_remove_at(&from->shards, (size_t)i);
    if (link_up(from)) {
      if (rx__set_put(&from->unsub, p, n, 1) < 0) return seterr(s, RX_ENOMEM, "out of memory");
      rc = link_send(s, from, "SUNSUBSCRIBE", p, n);
      if (rc) return rc;
    }
  }
  if (to) {
    if (rx__set_put(&to->shards, p, n, 0) < 0) return seterr(s, RX_ENOMEM, "out of memory");
    if (link_up(to)) {
      rc = link_send(s, to, "SSUBSCRIBE", p, n);
      if (rc) return rc;
    }
  }
  return RX_OK;
}

/* Makes the links match the topology and the wanted sets (see the top of
 * the file). Sends commands on up links; never blocks. */
static int reconcile(rx__csub *s) {
  rx_cluster *cl = s->cl;
  s->need_reconcile = 0;
  if (!cl->have_map) return RX_OK;
  for (size_t i = 0; i < cl->node_count; i++) cl->nodes[i]->mark = 0;
  for (int slot = 0; slot < RX_CLUSTER_SLOTS; slot++)
    if (cl->slots[slot]) cl->slots[slot]->mark = 1; /* serves slots: a master to use */
  for (size_t i = 0; i < s->link_count; i++) s->links[i]->needed = 0;
  int rc;

  if (count_where(s, 1) > 0) {
    for (size_t i = 0; i < cl->node_count; i++) {
      if (!cl->nodes[i]->mark) continue;
      csub_link *l = link_get(s, cl->nodes[i]);
      if (!l) return seterr(s, RX_ENOMEM, "out of memory");
      l->needed = 1;
    }
  }

  const rx__name_set *sh = &s->wanted[KIND_SHARD];
  for (size_t i = 0; i < sh->count; i++) {
    const char *p = sh->names[i];
    size_t n = sh->lens[i];
    rx__cl_node *owner = cl->slots[rx_cluster_keyslot(p, n)];
    csub_link *to = owner ? link_get(s, owner) : NULL;
    if (owner && !to) return seterr(s, RX_ENOMEM, "out of memory");
    csub_link *from = shard_holder(s, p, n);
    if (from != to && (rc = shard_move(s, from, to, p, n)) != RX_OK) return rc;
    if (to) to->needed = 1;
  }

  csub_link *gen = NULL;
  for (size_t i = 0; i < s->link_count; i++)
    if (s->links[i]->general) gen = s->links[i];
  if (count_where(s, 0) > 0) {
    int move = !gen || !gen->node->mark;
    if (!move && !link_up(gen) && gen->had_link) {
      /* Its node is down: any other master sees the same messages. */
      for (size_t i = 0; i < s->link_count && !move; i++)
        move = s->links[i] != gen && link_up(s->links[i]) && s->links[i]->node->mark;
    }
    if (move) {
      csub_link *pick = NULL;
      for (size_t i = 0; i < s->link_count && !pick; i++) /* an up link already needed */
        if (s->links[i] != gen && link_up(s->links[i]) && s->links[i]->node->mark &&
            s->links[i]->needed)
          pick = s->links[i];
      for (size_t i = 0; i < s->link_count && !pick; i++)
        if (s->links[i] != gen && link_up(s->links[i]) && s->links[i]->node->mark)
          pick = s->links[i];
      for (size_t i = 0; i < s->link_count && !pick; i++)
        if (s->links[i] != gen && s->links[i]->node->mark) pick = s->links[i];
      if (!pick) {
        /* A random master, so that many subscribers spread out. */
        size_t masters = 0;
        for (size_t i = 0; i < cl->node_count; i++) masters += cl->nodes[i]->mark != 0;
        if (masters) {
          size_t want = (size_t)(rx__random() % masters);
          for (size_t i = 0; i < cl->node_count && !pick; i++)
            if (cl->nodes[i]->mark && want-- == 0) {
              pick = link_get(s, cl->nodes[i]);
              if (!pick) return seterr(s, RX_ENOMEM, "out of memory");
            }
        }
      }
      if (gen && pick && gen != pick) {
        gen->general = 0;
        if (link_up(gen) && (rc = send_general(s, gen, 0)) != RX_OK) return rc;
      }
      if (pick && !pick->general) {
        pick->general = 1;
        if (link_up(pick) && (rc = send_general(s, pick, 1)) != RX_OK) return rc;
      }
      if (pick) gen = pick;
    }
    if (gen && gen->node->mark) gen->needed = 1;
  } else if (gen) {
    gen->general = 0; /* its names were unsubscribed when they were removed */
  }

  /* Links nothing needs: a node that lost its slots (a failed-over master,
   * a drained shard), or one left without subscriptions. A gap a lost
   * link had opened stays pending: its subscriptions are now elsewhere and
   * the gap ends when those are confirmed. */
  size_t w = 0;
  for (size_t i = 0; i < s->link_count; i++) {
    csub_link *l = s->links[i];
    if (l->needed) {
      s->links[w++] = l;
      continue;
    }
    /* An up link dropped because its node no longer serves slots: what it
     * carried continues elsewhere, maybe not seamlessly (a stale view, a
     * demoted master): say so rather than risk a silent loss. Links
     * dropped because nothing is subscribed any more are no gap. */
    if (link_up(l) && l->linked && !l->node->mark) gap_begin(s, rx_now_ms(), l->node->addr);
    link_free(l);
  }
  s->link_count = w;
  return RX_OK;
}

/* Loads the topology and reconciles. Errors are kept on s; the caller
 * decides whether they matter. */
static int refresh(rx__csub *s) {
  s->last_refresh = rx_monotonic_ms();
  int rc = rx__cluster_refresh(s->cl);
  long long now = rx_monotonic_ms();
  if (rc == RX_OK) {
    s->need_refresh = 0;
    s->refresh_failures = 0;
    s->next_refresh = now + CSUB_REFRESH_MS;
    return reconcile(s);
  }
  if (rc == RX_WOKEN || rc == RX_EINTR) {
    s->next_refresh = now; /* not tried: try on the next call */
    return rc;
  }
  seterr(s, rc, rx_cluster_errstr(s->cl));
  s->need_refresh = 1;
  /* Back off like reconnects do, so that a cluster that is down is not
   * asked several times a second by every subscriber. */
  long long lo = opts(s)->reconnect_min_ms > CSUB_REFRESH_MIN_MS ? opts(s)->reconnect_min_ms
                                                               : CSUB_REFRESH_MIN_MS;
  long long hi = opts(s)->reconnect_max_ms > lo ? opts(s)->reconnect_max_ms : lo, d = lo;
  for (int i = 0; i < s->refresh_failures && d < hi; i++) d *= 2;
  if (d > hi) d = hi;
  s->refresh_failures++;
  s->next_refresh = now + d / 2 + (long long)(rx__random() % (uint64_t)(d / 2 + 1));
  return rc;
}

/* Every link the topology needs is up, confirmed, and every subscription
 * has a home. */
static int settled_all(const rx__csub *s) {
  if (!s->cl->have_map || s->need_reconcile) return 0;
  for (size_t i = 0; i < s->link_count; i++)
    if (!link_up(s->links[i]) || s->links[i]->confirms) return 0;
  size_t assigned = 0;
  int gen = 0;
  for (size_t i = 0; i < s->link_count; i++) {
    assigned += s->links[i]->shards.count;
    gen |= s->links[i]->general;
  }
  if (assigned != s->wanted[KIND_SHARD].count) return 0;
  if (!gen && count_where(s, 0) > 0) return 0;
  if (s->link_count == 0 && rx__csub_count(s) > 0) return 0;
  return 1;
}

/* For waiting on confirmations: every up link confirmed, every new link
 * tried once, nothing to reconcile. */
static int settled_up(const rx__csub *s) {
  if (s->need_reconcile) return 0;
  for (size_t i = 0; i < s->link_count; i++) {
    const csub_link *l = s->links[i];
    if (link_up(l) ? l->confirms > 0 : l->fresh) return 0;
  }
  return 1;
}

/* ---------------------------------------------------------------- replies */

static int is_str(const rx_reply *r, const char *s, size_t n) {
  return r && r->type == RX_REPLY_STRING && r->len == n && memcmp(r->str, s, n) == 0;
}

/* Forgets the shard channels of `slot` on l: the server says they are not
 * subscribed there. */
static void unassign_slot(csub_link *l, int slot) {
  for (size_t i = l->shards.count; i-- > 0;)
    if (rx_cluster_keyslot(l->shards.names[i], l->shards.lens[i]) == slot)
      rx__set_remove_at(&l->shards, i);
}

static int handle_reply(rx__csub *s, csub_link *l, rx_reply *r) {
  l->last_rx_ms = rx_monotonic_ms();
  l->last_good_wall = rx_now_ms();
  if (r->type == RX_REPLY_ERROR) {
    if (l->confirms > 0) l->confirms--;
    int slot = -1, is_ask = 0;
    rx__cl_node *t = rx__cluster_redirect(s->cl, l->node, r, &slot, &is_ask);
    if (t) {
      /* An SSUBSCRIBE reached a node that does not serve the slot. MOVED
       * updated the slot map; subscribe where it now points. During a
       * migration (ASK) the owner has not changed yet: retry shortly. */
      unassign_slot(l, slot);
      s->need_reconcile = 1;
      s->reconcile_at = rx_monotonic_ms() + (is_ask ? CSUB_ASK_RETRY_MS : 0);
      rx_reply_free(r);
      l->expect_by = l->confirms || l->ping_out ? expect_deadline(s) : 0;
      return RX_OK;
    }
    if (rx__cluster_err_is(r, "CLUSTERDOWN") || rx__cluster_err_is(r, "TRYAGAIN")) {
      /* We cannot tell which channel was refused: start this link over. */
      char msg[256];
      rx__fmt(msg, sizeof msg, "%.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
      rx_reply_free(r);
      link_lost(s, l, RX_ECLUSTER, msg);
      return RX_OK;
    }
    int code = rx__reply_error_code(r);
    char msg[400];
    rx__fmt(msg, sizeof msg, "%s refused a subscription: %.*s", l->node->addr,
            (int)(r->len > 180 ? 180 : r->len), r->str);
    rx_reply_free(r);
    l->expect_by = l->confirms || l->ping_out ? expect_deadline(s) : 0;
    return seterr(s, code, msg);
  }
  int keep = 0;
  if (r->type == RX_REPLY_STATUS && rx__reply_is(r, "PONG")) {
    l->ping_out = 0; /* a link left with no subscriptions answers PING plainly */
  } else if (r->type == RX_REPLY_ARRAY && r->elements >= 2 &&
             r->element[0]->type == RX_REPLY_STRING) {
    const rx_reply *k = r->element[0];
    if ((is_str(k, "message", 7) && r->elements == 3) ||
        (is_str(k, "pmessage", 8) && r->elements == 4) ||
        (is_str(k, "smessage", 8) && r->elements == 3)) {
      keep = 1;
    } else if (is_str(k, "pong", 4)) {
      l->ping_out = 0;
    } else if (is_str(k, "sunsubscribe", 12)) {
      const rx_reply *ch = r->element[1];
      int i;
      if (ch->type == RX_REPLY_STRING && (i = rx__set_find(&l->unsub, ch->str, ch->len)) >= 0) {
        rx__set_remove_at(&l->unsub, (size_t)i); /* the confirmation of ours */
        if (l->confirms > 0) l->confirms--;
      } else if (ch->type == RX_REPLY_STRING &&
                 (i = rx__set_find(&l->shards, ch->str, ch->len)) >= 0) {
        /* Sent by the server, not asked for: the slot moved away. Messages
         * may be missed until the new owner confirms. */
        rx__set_remove_at(&l->shards, (size_t)i);
        gap_begin(s, rx_now_ms(), l->node->addr);
        want_refresh(s, 1);
        s->need_reconcile = 1;
        s->reconcile_at = 0;
      } else if (ch->type != RX_REPLY_STRING && l->confirms > 0) {
        l->confirms--;
      }
    } else if (k->len >= 9 && (is_str(k, "subscribe", 9) || is_str(k, "psubscribe", 10) ||
                               is_str(k, "ssubscribe", 10) || is_str(k, "unsubscribe", 11) ||
                               is_str(k, "punsubscribe", 12))) {
      if (l->confirms > 0) l->confirms--;
    }
  }
  if (keep) {
    if (rx__fifo_push(&s->fifo, r) != RX_OK) {
      rx_reply_free(r);
      return seterr(s, RX_ENOMEM, "out of memory buffering a message");
    }
  } else {
    rx_reply_free(r);
  }
  l->expect_by = l->confirms || l->ping_out ? expect_deadline(s) : 0;
  return RX_OK;
}

/* Parsed replies already buffered on the links; no I/O. Sets *got. */
static int take_buffered(rx__csub *s, int *got) {
  *got = 0;
  for (size_t i = 0; i < s->link_count; i++) {
    csub_link *l = s->links[i];
    for (int k = 0; k < CSUB_READ_BURST && link_up(l); k++) {
      rx_reply *r = NULL;
      int rc = rx__conn_buffered(&l->conn, &r);
      if (rc == RX_TIMEOUT) break;
      if (rc != RX_OK) {
        link_lost(s, l, rc, l->conn.errstr);
        break;
      }
      (*got)++;
      rc = handle_reply(s, l, r);
      if (rc != RX_OK) return rc;
    }
  }
  return RX_OK;
}

/* Reads what a ready link has, without waiting. */
static int drain_link(rx__csub *s, csub_link *l) {
  for (int k = 0; k < CSUB_READ_BURST && link_up(l); k++) {
    rx_reply *r = NULL;
    int rc = rx__conn_read(&l->conn, &r, 0);
    if (rc == RX_TIMEOUT) return RX_OK;
    if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
    if (rc != RX_OK) {
      link_lost(s, l, rc, l->conn.errstr);
      return RX_OK;
    }
    rc = handle_reply(s, l, r);
    if (rc != RX_OK) return rc;
  }
  return RX_OK;
}

/* ---------------------------------------------------------------- pump */

static long long min_deadline(long long a, long long b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

/* Topology upkeep and reconnects; may block (a refresh, a connect). */
static int upkeep(rx__csub *s, int mode) {
  long long now = rx_monotonic_ms();
  int rc;
  if (s->cl->not_cluster && !s->cl->have_map)
    return seterr(s, RX_ECLUSTER, rx_cluster_errstr(s->cl)); /* a configuration error */
  if (mode == PUMP_EVENT) {
    if (now >= s->next_refresh) {
      rc = refresh(s);
      if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
      if (rc == RX_ECLUSTER && !s->cl->have_map && s->cl->not_cluster) return rc;
      if (rc < 0 && is_permanent(rc)) return rc;
      now = rx_monotonic_ms();
    }
  }
  if (s->need_reconcile && now >= s->reconcile_at && (rc = reconcile(s)) != RX_OK) return rc;
  for (size_t i = 0; i < s->link_count; i++) {
    csub_link *l = s->links[i];
    if (!link_up(l) && l->linked) link_lost(s, l, RX_EIO, "the connection was lost");
    if (link_up(l)) continue;
    if (!(l->fresh || (mode == PUMP_EVENT && l->next_attempt <= now))) continue;
    rc = link_open(s, l);
    if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
    if (rc != RX_OK && (rc = link_failed(s, l, rc)) != RX_OK) return rc;
    now = rx_monotonic_ms();
  }
  return RX_OK;
}

/* Waits until the deadline for: (PUMP_EVENT) a message or a gap event to
 * deliver, or (PUMP_CONFIRM) every confirmation. */
static int pump(rx__csub *s, long long deadline, int mode) {
  for (;;) {
    if (mode == PUMP_CONFIRM ? settled_up(s)
                             : s->fifo.count > 0 || (s->gap_pending && settled_all(s)))
      return RX_OK;
    int rc = upkeep(s, mode);
    if (rc != RX_OK) return rc;
    if (mode == PUMP_CONFIRM ? settled_up(s)
                             : s->fifo.count > 0 || (s->gap_pending && settled_all(s)))
      return RX_OK;

    /* Health checks: a missed deadline drops the link; idle links PING. */
    long long now = rx_monotonic_ms(), wait_until = deadline;
    int lost = 0;
    for (size_t i = 0; i < s->link_count; i++) {
      csub_link *l = s->links[i];
      if (!link_up(l)) continue;
      if (l->expect_by) {
        if (now >= l->expect_by) {
          link_lost(s, l, RX_ETIMEDOUT, "the server did not answer in time (health check)");
          lost = 1;
          continue;
        }
        wait_until = min_deadline(wait_until, l->expect_by);
      } else if (opts(s)->health_interval_ms > 0) {
        long long ping_at = l->last_rx_ms + opts(s)->health_interval_ms;
        if (now >= ping_at) {
          const char *argv[1] = {"PING"};
          if (rx__format_command(&l->conn.out, 1, argv, NULL) != RX_OK)
            return seterr(s, RX_ENOMEM, "out of memory");
          l->ping_out = 1;
          l->expect_by = expect_deadline(s);
          ping_at = l->expect_by;
        }
        wait_until = min_deadline(wait_until, ping_at);
      }
    }
    if (lost) continue;

    int got;
    rc = take_buffered(s, &got);
    if (rc != RX_OK) return rc;
    if (got) continue;

    for (size_t i = 0; i < s->link_count; i++) {
      csub_link *l = s->links[i];
      if (!link_up(l) || !l->conn.out.len) continue;
      rc = rx__conn_flush(&l->conn, rx__deadline(opts(s)->health_timeout_ms > 0
                                                      ? opts(s)->health_timeout_ms
                                                      : 3000));
      if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
      if (rc != RX_OK) {
        link_lost(s, l, rc < 0 ? rc : RX_ETIMEDOUT, rc < 0 ? l->conn.errstr : "write stalled");
        lost = 1;
      }
    }
    if (lost) continue;

    /* Timers that wake the wait: reconnects, refreshes, a delayed reconcile. */
    if (mode == PUMP_EVENT) {
      for (size_t i = 0; i < s->link_count; i++)
        if (!link_up(s->links[i])) wait_until = min_deadline(wait_until, s->links[i]->next_attempt);
      wait_until = min_deadline(wait_until, s->next_refresh);
    }
    if (s->need_reconcile) wait_until = min_deadline(wait_until, s->reconcile_at);

    if (s->pcap < s->link_count + 1) {
      size_t cap = s->link_count + 8;
      struct pollfd *np_ = rx__realloc(s->pfd, cap * sizeof *np_);
      if (!np_) return seterr(s, RX_ENOMEM, "out of memory");
      s->pfd = np_;
      csub_link **nw = rx__realloc(s->pwho, cap * sizeof *nw);
      if (!nw) return seterr(s, RX_ENOMEM, "out of memory");
      s->pwho = nw;
      s->pcap = cap;
    }
    struct pollfd *p = s->pfd;
    csub_link **who = s->pwho;
    size_t np = 0;
    p[np].fd = s->cl->wake_rd;
    p[np].events = POLLIN;
    p[np].revents = 0;
    who[np++] = NULL;
    for (size_t i = 0; i < s->link_count; i++) {
      if (!link_up(s->links[i])) continue;
      p[np].fd = s->links[i]->conn.fd;
      p[np].events = POLLIN;
      p[np].revents = 0;
      who[np++] = s->links[i];
    }
    int n = poll(p, (nfds_t)np, rx__remaining(wait_until));
    if (n < 0) {
      if (errno == EINTR) return RX_EINTR;
      return seterr(s, RX_ESYS, "poll failed");
    }
    if (p[0].revents & POLLIN) {
      rx__wake_drain(s->cl->wake_rd);
      return RX_WOKEN;
    }
    for (size_t i = 1; i < np && n > 0; i++) {
      if (!p[i].revents) continue;
      rc = drain_link(s, who[i]);
      if (rc != RX_OK) return rc;
    }
    if (n == 0 && deadline >= 0 && rx_monotonic_ms() >= deadline) {
      if (mode == PUMP_CONFIRM ? settled_up(s)
                               : s->fifo.count > 0 || (s->gap_pending && settled_all(s)))
        return RX_OK;
      return RX_TIMEOUT;
    }
  }
}

/* ---------------------------------------------------------------- life */

rx__csub *rx__csub_new(const char *url, char *errstr, size_t errlen) {
  rx__csub *s = rx__calloc(1, sizeof *s);
  if (!s) {
    rx__fmt(errstr, errlen, "out of memory");
    return NULL;
  }
  s->epfd = -1;
  s->cl = rx__cluster_new(url, errstr, errlen);
  if (!s->cl) {
    rx__free(s);
    return NULL;
  }
#ifdef __linux__
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
#endif
  return s;
}

void rx__csub_free(rx__csub *s) {
  if (!s) return;
  release_held(s);
  rx__free(s->held);
  rx_reply *r;
  while ((r = rx__fifo_pop(&s->fifo))) rx_reply_free(r);
  rx__free(s->fifo.items);
  for (size_t i = 0; i < s->link_count; i++) link_free(s->links[i]);
  rx__free(s->links);
  for (int k = 0; k < KIND_COUNT; k++) rx__set_free(&s->wanted[k]);
  if (s->epfd >= 0) close(s->epfd);
  rx__free(s->pfd);
  rx__free(s->pwho);
  rx_cluster_free(s->cl);
  rx__free(s);
}

int rx__csub_set(rx__csub *s, const char *name, const char *value) {
  int rc = rx_cluster_set(s->cl, name, value);
  if (rc) return seterr(s, rc, rx_cluster_errstr(s->cl));
  char err[200];
  for (size_t i = 0; i < s->link_count; i++) {
    rc = rx__opts_set(&s->links[i]->conn.opts, name, value, err, sizeof err);
    if (rc) return seterr(s, rc, err);
  }
  return RX_OK;
}

size_t rx__csub_count(const rx__csub *s) {
  return s->wanted[0].count + s->wanted[1].count + s->wanted[2].count;
}

int rx__csub_fd(const rx__csub *s) { return s->epfd; }
void rx__csub_wakeup(rx__csub *s) { rx_cluster_wakeup(s->cl); }
int rx__csub_is_connected(const rx__csub *s) { return settled_all(s); }
int rx__csub_err(const rx__csub *s) { return s->err; }
const char *rx__csub_errstr(const rx__csub *s) { return s->errstr; }

/* The topology, once: needed before anything can be subscribed. */
static int ensure_topology(rx__csub *s) {
  if (s->cl->have_map) return RX_OK;
  int rc = refresh(s);
  return rc == RX_OK ? RX_OK : rc;
}

int rx__csub_connect(rx__csub *s) {
  int rc = ensure_topology(s);
  if (rc != RX_OK) return rc;
  if ((rc = reconcile(s)) != RX_OK) return rc;
  int first = RX_OK;
  for (size_t i = 0; i < s->link_count; i++) {
    csub_link *l = s->links[i];
    if (link_up(l)) continue;
    rc = link_open(s, l);
    if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
    if (rc != RX_OK) {
      link_failed(s, l, rc);
      if (first == RX_OK) first = rc;
    }
  }
  if (first != RX_OK) return first;
  long long deadline = rx__deadline(opts(s)->timeout_ms > 0 ? opts(s)->timeout_ms : 10000);
  rc = pump(s, deadline, PUMP_CONFIRM);
  if (rc == RX_TIMEOUT) return seterr(s, RX_ETIMEDOUT, "the server did not confirm in time");
  return rc;
}

/* After a subscribe: the error of a link the new name needs that is down. */
static int needed_link_error(rx__csub *s, int kind, const char *p, size_t n) {
  const csub_link *bad = NULL;
  int missing = 0;
  if (kind == KIND_SHARD) {
    const csub_link *l = shard_holder(s, p, n);
    if (!l) missing = 1;
    else if (!link_up(l)) bad = l;
  } else if (is_keyspace(kind, p, n)) {
    for (size_t i = 0; i < s->link_count && !bad; i++)
      if (!link_up(s->links[i])) bad = s->links[i];
  } else {
    const csub_link *gen = NULL;
    for (size_t i = 0; i < s->link_count; i++)
      if (s->links[i]->general) gen = s->links[i];
    if (!gen) missing = 1;
    else if (!link_up(gen)) bad = gen;
  }
  if (missing) return seterr(s, RX_ECLUSTER, "no master is known for this subscription yet");
  if (bad) {
    char msg[400];
    rx__fmt(msg, sizeof msg, "%s: %s", bad->node->addr,
            bad->conn.errstr[0] ? bad->conn.errstr : "not connected");
    return seterr(s, bad->last_err < 0 ? bad->last_err : RX_ECONNECT, msg);
  }
  return RX_OK;
}

/* Sends an unsubscribe for one name wherever it is subscribed. */
static int unsubscribe_one(rx__csub *s, int kind, const char *p, size_t n) {
  if (kind == KIND_SHARD) {
    csub_link *l = shard_holder(s, p, n);
    return l ? shard_move(s, l, NULL, p, n) : RX_OK;
  }
  int ks = is_keyspace(kind, p, n);
  for (size_t i = 0; i < s->link_count; i++) {
    csub_link *l = s->links[i];
    if (!link_up(l) || !(ks || l->general)) continue;
    int rc = link_send(s, l, unsub_cmd[kind], p, n);
    if (rc) return rc;
  }
  return RX_OK;
}

int rx__csub_change(rx__csub *s, int kind, int add, const char *p, size_t n) {
  if (!s || (!p && n) || kind < 0 || kind >= KIND_COUNT) return RX_EINVAL;
  rx__name_set *ns = &s->wanted[kind];
  int rc;
  if (add) {
    if (!p) p = "";
    int added = rx__set_put(ns, p, n, 0);
    if (added < 0) return seterr(s, RX_ENOMEM, "out of memory");
    rc = ensure_topology(s);
    if (rc != RX_OK) return rc; /* still wanted: made once the cluster answers */
    if (added && kind != KIND_SHARD) {
      /* Up links that carry this kind of name get it now; links that
       * reconcile creates or moves replay it when they open. */
      int ks = is_keyspace(kind, p, n);
      for (size_t i = 0; i < s->link_count; i++) {
        csub_link *l = s->links[i];
        if (!link_up(l) || !(ks || l->general)) continue;
        if ((rc = link_send(s, l, sub_cmd[kind], p, n)) != RX_OK) return rc;
      }
    }
  } else if (p) {
    int i = rx__set_find(ns, p, n);
    if (i < 0) return RX_OK;
    rc = unsubscribe_one(s, kind, p, n);
    rx__set_remove_at(ns, (size_t)i);
    if (rc != RX_OK) return rc;
  } else {
    while (ns->count) {
      rc = unsubscribe_one(s, kind, ns->names[ns->count - 1], ns->lens[ns->count - 1]);
      rx__set_remove_at(ns, ns->count - 1);
      if (rc != RX_OK) return rc;
    }
  }
  if (!s->cl->have_map) return RX_OK; /* an unsubscribe before any topology */
  if ((rc = reconcile(s)) != RX_OK) return rc;
  long long deadline = rx__deadline(opts(s)->timeout_ms > 0 ? opts(s)->timeout_ms : 10000);
  rc = pump(s, deadline, PUMP_CONFIRM);
  if (rc == RX_TIMEOUT) return seterr(s, RX_ETIMEDOUT, "the server did not confirm in time");
  if (rc != RX_OK) return rc;
  return add ? needed_link_error(s, kind, p, n) : RX_OK;
}

/* ---------------------------------------------------------------- events */


/* A buffered message or a due gap event, without any I/O. */
static int ready_event(rx__csub *s, rx_event *ev) {
  rx_reply *r = rx__fifo_pop(&s->fifo);
  if (r) {
    if (hold(s, r) != RX_OK) {
      rx_reply_free(r);
      return seterr(s, RX_ENOMEM, "out of memory");
    }
    rx__fill_event(ev, r);
    return RX_OK;
  }
  if (s->gap_pending && settled_all(s)) {
    memset(ev, 0, sizeof *ev);
    ev->kind = RX_EV_GAP;
    rx__fmt(s->gap_text, sizeof s->gap_text, "%s", s->gap_nodes);
    ev->channel = "";
    ev->data = s->gap_text;
    ev->data_len = strlen(s->gap_text);
    ev->gap_start_ms = s->gap_start_wall;
    ev->gap_end_ms = rx_now_ms();
    ev->reconnects = s->gap_attempts;
    s->gap_pending = 0;
    return RX_OK;
  }
  return RX_TIMEOUT;
}

static int next_one(rx__csub *s, long long deadline, rx_event *ev) {
  for (;;) {
    if (ready_event(s, ev) == RX_OK) return RX_OK;
    if (rx__csub_count(s) == 0) {
      int waiting = 0;
      for (size_t i = 0; i < s->link_count; i++) waiting |= s->links[i]->confirms > 0;
      if (!waiting)
        return seterr(s, RX_ESTATE, "no subscriptions: subscribe before waiting for messages");
    }
    int rc = pump(s, deadline, PUMP_EVENT);
    if (rc != RX_OK) return rc;
  }
}

int rx__csub_next(rx__csub *s, int timeout_ms, rx_event *ev) {
  if (!s || !ev) return RX_EINVAL;
  release_held(s);
  return next_one(s, rx__deadline(timeout_ms), ev);
}

int rx__csub_next_batch(rx__csub *s, int timeout_ms, rx_event *evs, size_t max, size_t *n) {
  if (n) *n = 0;
  if (!s || !evs || !n || !max) return RX_EINVAL;
  release_held(s);
  int rc = next_one(s, rx__deadline(timeout_ms), &evs[0]);
  if (rc != RX_OK) return rc;
  *n = 1;
  int polled = 0;
  while (*n < max) {
    if (ready_event(s, &evs[*n]) == RX_OK) {
      (*n)++;
      continue;
    }
    if (polled) break;
    /* Once: what is parsed already, then what the sockets have now. */
    polled = 1;
    int got;
    if (take_buffered(s, &got) != RX_OK) break;
    if (got) {
      polled = 0;
      continue;
    }
    struct pollfd *p = s->pfd;
    csub_link **who = s->pwho;
    size_t np = 0;
    for (size_t i = 0; i < s->link_count && i < s->pcap; i++) {
      if (!link_up(s->links[i])) continue;
      p[np].fd = s->links[i]->conn.fd;
      p[np].events = POLLIN;
      p[np].revents = 0;
      who[np++] = s->links[i];
    }
    if (np == 0 || poll(p, (nfds_t)np, 0) <= 0) break;
    for (size_t i = 0; i < np; i++)
      if (p[i].revents && drain_link(s, who[i]) != RX_OK) break;
  }
  return RX_OK;
}
