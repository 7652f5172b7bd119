/* sub.c — the subscription loop.
 *
 * The subscriber keeps the wanted subscriptions as three sets and owns one
 * connection. Each subscribe or unsubscribe goes out as one command per name,
 * so every command gets exactly one reply (a confirmation or an error) and
 * the count of replies still expected is exact. Replies are read into a FIFO;
 * messages leave it through rx_sub_next, confirmations and PONGs are consumed
 * here.
 *
 * Liveness: whenever a reply is expected (confirmations, a health-check PING)
 * there is a deadline `expect_by`; a link that sends nothing by then is
 * dropped, as is one that fails. Any frame counts as alive. A dropped link is
 * re-established with exponential backoff and full jitter, every wanted
 * subscription is replayed, and once the server has confirmed them all one
 * RX_EV_GAP event tells the application which window it may have missed. */
#include "rx_private.h"
#include "rx_cluster.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

enum { KIND_CHANNEL = 0, KIND_PATTERN = 1, KIND_SHARD = 2, KIND_COUNT = 3 };

static const char *const sub_cmd[KIND_COUNT] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"};
static const char *const unsub_cmd[KIND_COUNT] = {"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};


struct rx_sub {
  rx__csub *cl;           /* cluster mode: everything lives in cluster_sub.c */
  rx_conn conn;
  rx__name_set wanted[KIND_COUNT];
  rx__reply_fifo fifo;        /* received, not yet delivered */
  rx_reply **held;        /* delivered by the last next call; freed at the next */
  size_t held_count, held_cap;
  int confirms;           /* replies still expected for commands we sent */
  int ping_out;           /* a health-check PING is unanswered */
  long long expect_by;    /* monotonic deadline for the next frame, 0 = none */
  long long last_rx_ms;   /* monotonic time of the last frame */
  long long last_good_wall; /* wall time of the last frame (gap start) */
  int had_link;           /* a link was up before: a new one means a gap */
  int gap_pending;        /* a gap event is due once confirms reach 0 */
  long long gap_start_wall;
  int attempts;           /* failed connection attempts since the link was lost */
  int gap_attempts;       /* attempts it took, for the gap event */
  long long next_attempt; /* monotonic time of the next reconnect attempt */
  int refused;            /* an error reply to one of our commands came */
  int err;
  char errstr[256];
};

/* ---------------------------------------------------------------- helpers */

static int seterr(rx_sub *s, int code, const char *msg) {
  s->err = code;
  rx__fmt(s->errstr, sizeof s->errstr, "%s", msg);
  return code;
}


static void release_held(rx_sub *s) {
  for (size_t i = 0; i < s->held_count; i++) rx_reply_free(s->held[i]);
  s->held_count = 0;
  rx__conn_unpin(&s->conn); /* events read in place borrowed the buffer */
}

static int hold(rx_sub *s, rx_reply *r) {
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

/* Deadline for the next expected frame: the health-check timeout, but never
 * shorter than the command timeout the user configured. */
static int expect_ms(const rx_sub *s) {
  int t = s->conn.opts.health_timeout_ms;
  if (s->conn.opts.timeout_ms > t) t = s->conn.opts.timeout_ms;
  if (t <= 0) t = 3000;
  return t;
}

static long long expect_deadline(const rx_sub *s) { return rx_monotonic_ms() + expect_ms(s); }

/* A frame arrived: the link is alive. The time is that of the read that
 * brought it (one clock read per read, not per frame). */
static void alive(rx_sub *s) {
  s->last_rx_ms = s->conn.last_io_ms;
  s->last_good_wall = s->conn.last_io_wall;
}

/* The next message read in place from the connection's buffer, when one is
 * there complete: no reply tree, no allocation. 1 with *ev, else 0. */
static int take_direct(rx_sub *s, rx_event *ev) {
  if (!rx__conn_msg(&s->conn, ev)) return 0;
  alive(s);
  s->expect_by = s->confirms || s->ping_out ? s->last_rx_ms + expect_ms(s) : 0;
  return 1;
}

/* ---------------------------------------------------------------- life */

rx_sub *rx_sub_new(const char *url, char *errstr, size_t errstr_len) {
  rx_opts o;
  if (errstr && errstr_len) errstr[0] = '\0';
  if (rx__cluster_url(url)) {
    rx_sub *cs = rx__calloc(1, sizeof *cs);
    if (!cs) {
      rx__fmt(errstr, errstr_len, "out of memory");
      return NULL;
    }
    cs->conn.fd = cs->conn.wake_rd = cs->conn.wake_wr = -1;
    cs->cl = rx__csub_new(url, errstr, errstr_len);
    if (!cs->cl) {
      rx__free(cs);
      return NULL;
    }
    return cs;
  }
  if (rx__opts_parse(&o, url, errstr, errstr_len) != RX_OK) return NULL;
  rx_sub *s = rx__calloc(1, sizeof *s);
  if (!s || rx__conn_init(&s->conn, &o) != RX_OK) {
    rx__free(s);
    rx__opts_free(&o);
    rx__fmt(errstr, errstr_len, "out of memory or no file descriptors");
    return NULL;
  }
  rx__opts_free(&o);
  s->conn.framed = 1; /* messages are read in place: see conn.c */
  return s;
}

void rx_sub_free(rx_sub *s) {
  if (!s) return;
  if (s->cl) {
    rx__csub_free(s->cl);
    rx__free(s);
    return;
  }
  release_held(s);
  rx__free(s->held);
  rx_reply *r;
  while ((r = rx__fifo_pop(&s->fifo))) rx_reply_free(r);
  rx__free(s->fifo.items);
  for (int k = 0; k < KIND_COUNT; k++) rx__set_free(&s->wanted[k]);
  rx__conn_deinit(&s->conn);
  rx__free(s);
}

int rx_sub_set(rx_sub *s, const char *name, const char *value) {
  if (!s) return RX_EINVAL;
  if (s->cl) return rx__csub_set(s->cl, name, value);
  char err[200];
  int rc = rx__opts_set(&s->conn.opts, name, value, err, sizeof err);
  return rc ? seterr(s, rc, err) : RX_OK;
}

size_t rx_sub_count(const rx_sub *s) {
  if (!s) return 0;
  if (s->cl) return rx__csub_count(s->cl);
  return s->wanted[0].count + s->wanted[1].count + s->wanted[2].count;
}

int rx_sub_fd(const rx_sub *s) {
  if (s && s->cl) return rx__csub_fd(s->cl);
  return s ? s->conn.fd : -1;
}
void rx_sub_wakeup(rx_sub *s) {
  if (s && s->cl) rx__csub_wakeup(s->cl);
  else if (s) rx_conn_wakeup(&s->conn);
}
int rx_sub_is_connected(const rx_sub *s) {
  if (s && s->cl) return rx__csub_is_connected(s->cl);
  return s && s->conn.fd >= 0 && s->confirms == 0;
}
int rx_sub_err(const rx_sub *s) {
  if (s && s->cl) return rx__csub_err(s->cl);
  return s ? s->err : RX_EINVAL;
}
const char *rx_sub_errstr(const rx_sub *s) {
  if (s && s->cl) return rx__csub_errstr(s->cl);
  return s ? s->errstr : "no subscriber";
}

/* ---------------------------------------------------------------- link */

/* The link failed or went silent: close it and plan the reconnect. */
static void link_lost(rx_sub *s, int code, const char *why) {
  if (s->had_link && !s->gap_pending) {
    s->gap_pending = 1;
    s->gap_start_wall = s->last_good_wall;
    s->gap_attempts = 0;
  }
  seterr(s, code, why);
  rx_conn_close(&s->conn);
  s->confirms = 0;
  s->ping_out = 0;
  s->expect_by = 0;
  s->attempts = 0;
  s->next_attempt = 0; /* the first attempt goes at once */
}

/* Queues one (un)subscribe command per name. */
static int append_names(rx_sub *s, const char *cmd, const rx__name_set *ns) {
  for (size_t i = 0; i < ns->count; i++) {
    const char *argv[2] = {cmd, ns->names[i]};
    size_t lens[2] = {strlen(cmd), ns->lens[i]};
    int rc = rx__format_command(&s->conn.out, 2, argv, lens);
    if (rc) return rc;
    s->confirms++;
  }
  return RX_OK;
}

static int send_one(rx_sub *s, const char *cmd, const char *p, size_t n) {
  const char *argv[2] = {cmd, p ? p : ""};
  size_t lens[2] = {strlen(cmd), n};
  int rc = rx__format_command(&s->conn.out, 2, argv, lens);
  if (rc) return seterr(s, rc, "out of memory");
  s->confirms++;
  s->expect_by = expect_deadline(s);
  rc = rx__conn_flush(&s->conn, rx__deadline(s->conn.opts.timeout_ms > 0 ? s->conn.opts.timeout_ms : -1));
  if (rc < 0) {
    link_lost(s, rc, s->conn.errstr);
    return rc;
  }
  return RX_OK;
}

static int backoff_ms(const rx_sub *s) {
  long long lo = s->conn.opts.reconnect_min_ms, hi = s->conn.opts.reconnect_max_ms;
  if (lo < 1) lo = 1;
  if (hi < lo) hi = lo;
  long long d = lo;
  for (int i = 1; i < s->attempts && d < hi; i++) d *= 2;
  if (d > hi) d = hi;
  /* Equal jitter: half fixed, half random, so a crowd of workers that lost
   * the same server does not come back in lockstep. */
  long long half = d / 2;
  return (int)(d - half + (long long)(rx__random() % (uint64_t)(half + 1)));
}

static int is_permanent(int code) {
  return code == RX_EAUTH || code == RX_EURL || code == RX_ETLSVERIFY || code == RX_ENOPERM ||
         code == RX_ERESOLVE;
}

/* Opens the link and replays every wanted subscription (not waiting). */
static int open_link(rx_sub *s) {
  int rc = rx__conn_open(&s->conn);
  if (rc != RX_OK) return seterr(s, rc, s->conn.errstr);
  s->confirms = 0;
  s->ping_out = 0;
  for (int k = 0; k < KIND_COUNT && rc == RX_OK; k++)
    rc = append_names(s, sub_cmd[k], &s->wanted[k]);
  if (rc != RX_OK) {
    rx_conn_close(&s->conn);
    return seterr(s, rc, "out of memory");
  }
  if (s->conn.out.len) {
    rc = rx__conn_flush(&s->conn, rx__deadline(s->conn.opts.timeout_ms > 0 ? s->conn.opts.timeout_ms : -1));
    if (rc != RX_OK) {
      int code = rc < 0 ? rc : RX_EIO;
      rx_conn_close(&s->conn);
      s->confirms = 0;
      return seterr(s, code, rc < 0 ? s->conn.errstr : "interrupted while resubscribing");
    }
  }
  s->last_rx_ms = rx_monotonic_ms();
  s->last_good_wall = rx_now_ms();
  s->expect_by = s->confirms ? expect_deadline(s) : 0;
  s->had_link = 1;
  return RX_OK;
}

int rx_sub_connect(rx_sub *s) {
  if (!s) return RX_EINVAL;
  if (s->cl) return rx__csub_connect(s->cl);
  if (s->conn.fd >= 0) return RX_OK;
  return open_link(s);
}

/* ---------------------------------------------------------------- replies */

static int is_str(const rx_reply *r, const char *s, size_t n) {
  return r && r->type == RX_REPLY_STRING && r->len == n && memcmp(r->str, s, n) == 0;
}

/* Classifies one frame. Messages go to the FIFO (the reply is kept);
 * everything else is consumed here. Returns 0 or an error to report. */
static int handle_reply(rx_sub *s, rx_reply *r) {
  alive(s);
  if (r->type == RX_REPLY_ERROR) {
    /* The reply to one of our commands (one per name), e.g. NOPERM for a
     * channel the ACL forbids, or NOAUTH. */
    int code = rx__reply_error_code(r);
    char msg[256];
    rx__fmt(msg, sizeof msg, "the server refused a subscription: %.*s",
            (int)(r->len > 180 ? 180 : r->len), r->str);
    if (s->confirms > 0) s->confirms--;
    rx_reply_free(r);
    s->expect_by = s->confirms || s->ping_out ? expect_deadline(s) : 0;
    s->refused = 1;
    return seterr(s, code, msg);
  }
  int keep = 0;
  if (r->type == RX_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == RX_REPLY_STRING) {
    const rx_reply *k = r->element[0];
    if ((is_str(k, "message", 7) && r->elements == 3) ||
        (is_str(k, "pmessage", 8) && r->elements == 4) ||
        (is_str(k, "smessage", 8) && r->elements == 3)) {
      keep = 1;
    } else if (is_str(k, "pong", 4)) {
      s->ping_out = 0;
    } else if (is_str(k, "sunsubscribe", 12) && s->confirms == 0 && r->elements == 3 &&
               r->element[1]->type == RX_REPLY_STRING &&
               rx__set_find(&s->wanted[KIND_SHARD], r->element[1]->str, r->element[1]->len) >= 0) {
      /* Sent by the server, not asked for: the slot moved. Subscribe again;
       * in a cluster the routing layer sends it to the new owner. */
      rx_reply *ch = r->element[1];
      const char *argv[2] = {"SSUBSCRIBE", ch->str};
      size_t lens[2] = {10, ch->len};
      if (rx__format_command(&s->conn.out, 2, argv, lens) == RX_OK) s->confirms++;
    } else if (k->len >= 9 && (is_str(k, "subscribe", 9) || is_str(k, "psubscribe", 10) ||
                               is_str(k, "ssubscribe", 10) || is_str(k, "unsubscribe", 11) ||
                               is_str(k, "punsubscribe", 12) || is_str(k, "sunsubscribe", 12))) {
      if (s->confirms > 0) s->confirms--;
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
  s->expect_by = s->confirms || s->ping_out ? expect_deadline(s) : 0;
  return RX_OK;
}

/* Reads frames until the deadline or until `until_confirmed` and no
 * confirmation is outstanding, or (otherwise) a message is queued or a gap
 * event is ready. */
static int pump(rx_sub *s, long long deadline, int until_confirmed) {
  for (;;) {
    if (until_confirmed ? s->confirms == 0
                        : s->fifo.count > 0 || (s->gap_pending && s->confirms == 0))
      return RX_OK;
    if (s->conn.fd < 0) return RX_EIO;
    long long now = rx_monotonic_ms();
    long long wait_until = deadline;
    long long ping_at = 0;
    if (s->expect_by) {
      if (now >= s->expect_by) {
        link_lost(s, RX_ETIMEDOUT, "the server did not answer in time (health check)");
        return RX_ETIMEDOUT;
      }
      if (wait_until < 0 || s->expect_by < wait_until) wait_until = s->expect_by;
    } else if (s->conn.opts.health_interval_ms > 0) {
      ping_at = s->last_rx_ms + s->conn.opts.health_interval_ms;
      if (now >= ping_at) {
        const char *argv[1] = {"PING"};
        int rc = rx__format_command(&s->conn.out, 1, argv, NULL);
        if (rc == RX_OK)
          rc = rx__conn_flush(&s->conn, rx__deadline(s->conn.opts.health_timeout_ms));
        if (rc != RX_OK) {
          link_lost(s, rc < 0 ? rc : RX_ETIMEDOUT, rc < 0 ? s->conn.errstr : "health check write stalled");
          return RX_EIO;
        }
        s->ping_out = 1;
        s->expect_by = expect_deadline(s);
        continue;
      }
      if (wait_until < 0 || ping_at < wait_until) wait_until = ping_at;
    }
    if (s->conn.out.len) {
      int rc = rx__conn_flush(&s->conn, wait_until);
      if (rc < 0) {
        link_lost(s, rc, s->conn.errstr);
        return rc;
      }
    }
    rx_reply *r = NULL;
    int rc = RX_OK;
    if (!until_confirmed) {
      /* A message that next_one can read in place is left for it. */
      rc = rx__conn_wait_frame(&s->conn, wait_until);
      if (rc == RX_OK && rx__conn_msg(&s->conn, NULL)) return RX_OK;
    }
    if (rc == RX_OK) rc = rx__conn_read(&s->conn, &r, wait_until);
    if (rc == RX_OK) {
      rc = handle_reply(s, r);
      if (rc != RX_OK) return rc;
      continue;
    }
    if (rc == RX_TIMEOUT) {
      if (deadline >= 0 && rx_monotonic_ms() >= deadline) return RX_TIMEOUT;
      continue; /* a health-check moment: handled at the top */
    }
    if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
    link_lost(s, rc, s->conn.errstr);
    return rc;
  }
}

/* Waits on the wakeup pipe alone until the deadline (reconnect backoff). */
static int sleep_until(rx_sub *s, long long until) {
  struct pollfd p = {s->conn.wake_rd, POLLIN, 0};
  int n = poll(&p, 1, rx__remaining(until));
  if (n < 0) return errno == EINTR ? RX_EINTR : RX_ESYS;
  if (n > 0) {
    rx__wake_drain(s->conn.wake_rd);
    return RX_WOKEN;
  }
  return RX_TIMEOUT;
}


/* One event into *ev, keeping its reply in `held`. `wait` 0: only what can be
 * had without blocking. */
static int next_one(rx_sub *s, long long deadline, rx_event *ev) {
  for (;;) {
    rx_reply *r = rx__fifo_pop(&s->fifo);
    if (r) {
      if (hold(s, r) != RX_OK) {
        rx_reply_free(r);
        return seterr(s, RX_ENOMEM, "out of memory");
      }
      rx__fill_event(ev, r);
      return RX_OK;
    }
    if (s->gap_pending && s->conn.fd >= 0 && s->confirms == 0) {
      memset(ev, 0, sizeof *ev);
      ev->kind = RX_EV_GAP;
      ev->channel = ev->data = "";
      ev->gap_start_ms = s->gap_start_wall;
      ev->gap_end_ms = rx_now_ms();
      ev->reconnects = s->gap_attempts;
      s->gap_pending = 0;
      return RX_OK;
    }
    if (s->conn.fd >= 0 && take_direct(s, ev)) return RX_OK;
    if (rx_sub_count(s) == 0 && s->confirms == 0)
      return seterr(s, RX_ESTATE, "no subscriptions: subscribe before waiting for messages");
    if (s->conn.fd < 0) {
      long long now = rx_monotonic_ms();
      if (s->next_attempt > now) {
        long long until = s->next_attempt;
        if (deadline >= 0 && deadline < until) until = deadline;
        int rc = sleep_until(s, until);
        if (rc == RX_TIMEOUT && deadline >= 0 && rx_monotonic_ms() >= deadline) return RX_TIMEOUT;
        if (rc != RX_TIMEOUT) return rc;
        continue;
      }
      s->gap_attempts++;
      int rc = open_link(s);
      if (rc != RX_OK) {
        if (rc == RX_WOKEN || rc == RX_EINTR) return rc;
        s->attempts++;
        s->next_attempt = rx_monotonic_ms() + backoff_ms(s);
        if (is_permanent(rc)) return rc;
        if (s->conn.opts.reconnect_max_attempts > 0 &&
            s->attempts >= s->conn.opts.reconnect_max_attempts)
          return rc;
        continue;
      }
      s->attempts = 0;
    }
    int rc = pump(s, deadline, 0);
    if (rc == RX_OK) continue;
    if (rc == RX_TIMEOUT || rc == RX_WOKEN || rc == RX_EINTR) return rc;
    if (s->conn.fd < 0) continue; /* the link failed: reconnect at the top */
    return rc; /* an error reply (NOPERM...) on a live link */
  }
}

int rx_sub_next(rx_sub *s, int timeout_ms, rx_event *ev) {
  if (!s || !ev) return RX_EINVAL;
  if (s->cl) return rx__csub_next(s->cl, timeout_ms, ev);
  release_held(s);
  return next_one(s, rx__deadline(timeout_ms), ev);
}

int rx_sub_next_batch(rx_sub *s, int timeout_ms, rx_event *evs, size_t max, size_t *n) {
  if (n) *n = 0;
  if (!s || !evs || !n || !max) return RX_EINVAL;
  if (s->cl) return rx__csub_next_batch(s->cl, timeout_ms, evs, max, n);
  release_held(s);
  int rc = next_one(s, rx__deadline(timeout_ms), &evs[0]);
  if (rc != RX_OK) return rc;
  *n = 1;
  while (*n < max) {
    if (!s->fifo.count && s->conn.fd >= 0) {
      /* Only what is already here: messages read in place, other frames,
       * then one non-blocking read of the socket. */
      if (!(s->gap_pending && s->confirms == 0) && take_direct(s, &evs[*n])) {
        (*n)++;
        continue;
      }
      rx_reply *r = NULL;
      int brc = rx__conn_buffered(&s->conn, &r);
      if (brc == RX_TIMEOUT && !s->conn.raw) {
        brc = rx__conn_wait_frame(&s->conn, 0);
        if (brc == RX_OK) continue; /* a whole frame now: read it above */
      } else if (brc == RX_TIMEOUT) {
        brc = rx__conn_read(&s->conn, &r, 0);
      }
      if (brc == RX_OK) {
        if (handle_reply(s, r) != RX_OK) break;
        continue;
      }
      if (brc < 0) link_lost(s, brc, s->conn.errstr);
      break;
    }
    if (!s->fifo.count) break;
    if (next_one(s, 0, &evs[*n]) != RX_OK) break;
    (*n)++;
  }
  return RX_OK;
}

/* ---------------------------------------------------------------- (un)subscribe */

static size_t wanted_total(const rx_sub *s) {
  size_t t = 0;
  for (int k = 0; k < KIND_COUNT; k++) t += s->wanted[k].count;
  return t;
}

static int change(rx_sub *s, int kind, int add, const char *p, size_t n) {
  if (!s || (!p && n)) return RX_EINVAL;
  if (s->cl) return rx__csub_change(s->cl, kind, add, p, n);
  rx__name_set *ns = &s->wanted[kind];
  int added = 0; /* a new name, the only one a refusal can be about */
  s->refused = 0;
  if (add) {
    int rc = rx__set_put(ns, p ? p : "", n, 0);
    if (rc < 0) return seterr(s, rc, "out of memory");
    added = rc == 1 && (s->conn.fd >= 0 || wanted_total(s) == 1);
    if (s->conn.fd < 0) {
      /* open_link replays the whole set, this name included. */
      rc = open_link(s);
      if (rc != RX_OK) return rc;
    } else if (rc == 1) {
      rc = send_one(s, sub_cmd[kind], p, n);
      if (rc != RX_OK) return rc;
    }
  } else if (p) {
    int i = rx__set_find(ns, p, n);
    if (i < 0) return RX_OK;
    rx__set_remove_at(ns, (size_t)i);
    if (s->conn.fd < 0) return RX_OK;
    int rc = send_one(s, unsub_cmd[kind], p, n);
    if (rc != RX_OK) return rc;
  } else {
    if (s->conn.fd >= 0 && ns->count) {
      int rc = append_names(s, unsub_cmd[kind], ns);
      if (rc != RX_OK) return seterr(s, rc, "out of memory");
      s->expect_by = expect_deadline(s);
    }
    while (ns->count) rx__set_remove_at(ns, ns->count - 1);
    if (s->conn.fd < 0) return RX_OK;
  }
  /* Wait for the confirmations, keeping any message that arrives first. */
  long long deadline = rx__deadline(s->conn.opts.timeout_ms > 0 ? s->conn.opts.timeout_ms : 10000);
  int rc = pump(s, deadline, 1);
  if (rc == RX_TIMEOUT) return seterr(s, RX_ETIMEDOUT, "the server did not confirm in time");
  if (rc != RX_OK && added && s->refused) {
    /* The server refused it (NOPERM for a channel the ACL forbids,
     * SSUBSCRIBE before Redis 7.0): not wanted, so not replayed after a
     * reconnect and not counted. */
    int i = rx__set_find(ns, p ? p : "", n);
    if (i >= 0) rx__set_remove_at(ns, (size_t)i);
  }
  return rc;
}

int rx_sub_subscribe(rx_sub *s, const char *c, size_t n) { return change(s, KIND_CHANNEL, 1, c, n); }
int rx_sub_psubscribe(rx_sub *s, const char *c, size_t n) { return change(s, KIND_PATTERN, 1, c, n); }
int rx_sub_ssubscribe(rx_sub *s, const char *c, size_t n) { return change(s, KIND_SHARD, 1, c, n); }
int rx_sub_unsubscribe(rx_sub *s, const char *c, size_t n) { return change(s, KIND_CHANNEL, 0, c, n); }
int rx_sub_punsubscribe(rx_sub *s, const char *c, size_t n) { return change(s, KIND_PATTERN, 0, c, n); }
int rx_sub_sunsubscribe(rx_sub *s, const char *c, size_t n) { return change(s, KIND_SHARD, 0, c, n); }
