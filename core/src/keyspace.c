/* keyspace.c — keyspace notifications: parsing channels, and enabling them.
 *
 * Parsing is strict and binary-safe: a channel either has exactly the shape
 * Redis gives it (`__keyspace@<db>__:<key>` or `__keyevent@<db>__:<event>`)
 * or it is "not a keyspace event" (RX_NOMATCH). A misparse would hand an
 * application the wrong key, which is worse than handing it nothing.
 *
 * rx_notify_ensure merges flag *sets*, because the string CONFIG GET prints
 * is not the string that was set: Redis folds g$lshzxetd into "A", and it
 * hides "n" (new-key events) whenever it prints "A" (measured on 7.0.15:
 * "KEn" reads back as "nKE", but "AKEn" as "AKE"; the Redis docs say it is
 * never shown). Writing back what we read plus our flags would silently
 * switch "n" off for someone else, so when a write is needed and "n" was not
 * seen we find out whether it is on with a probe (see probe_new). */
#include "rx_private.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- events */

static const struct {
  const char *name;
  size_t len;
} kev_table[RX__KEV_COUNT] = {
#define RX__KEV_ROW(name, str) {str, sizeof(str) - 1},
    RX_KEY_EVENT_MAP(RX__KEV_ROW)
#undef RX__KEV_ROW
};

const char *rx_key_event_name(int type) {
  if (type <= RX_KEV_OTHER || type >= RX__KEV_COUNT) return "";
  return kev_table[type].name;
}

int rx_key_event_type_of(const char *name, size_t len) {
  if (name == NULL || len == 0) return RX_KEV_OTHER;
  for (int t = RX_KEV_OTHER + 1; t < RX__KEV_COUNT; t++)
    if (kev_table[t].len == len && memcmp(kev_table[t].name, name, len) == 0) return t;
  return RX_KEV_OTHER;
}

/* ---------------------------------------------------------------- parsing */

#define KS_PREFIX "__keyspace@"
#define KE_PREFIX "__keyevent@"
#define PREFIX_LEN (sizeof(KS_PREFIX) - 1)

/* Parses the decimal db number at p (up to end) followed by "__:". Accepts
 * what Redis prints and nothing else: digits only, no sign, no leading zero
 * (except "0" itself), no overflow past INT_MAX. Returns the number of bytes
 * consumed including "__:", or 0 when the shape is wrong. */
static size_t parse_db(const char *p, const char *end, int *db) {
  const char *q = p;
  long long v = 0;
  while (q < end && *q >= '0' && *q <= '9') {
    v = v * 10 + (*q - '0');
    if (v > INT_MAX) return 0;
    q++;
  }
  if (q == p) return 0;                     /* no digits */
  if (q - p > 1 && *p == '0') return 0;     /* leading zero: not from Redis */
  if (end - q < 3 || memcmp(q, "__:", 3) != 0) return 0;
  *db = (int)v;
  return (size_t)(q - p) + 3;
}

/* An event name Redis could have sent: not empty, no NUL. */
static int event_ok(const char *e, size_t len) {
  return len > 0 && e != NULL && memchr(e, '\0', len) == NULL;
}

int rx_keyspace_parse(const char *channel, size_t channel_len, const char *message,
                      size_t message_len, rx_key_event *out) {
  const char *end, *rest;
  size_t used;
  int space, db = 0;
  if (channel == NULL || out == NULL || (message == NULL && message_len != 0))
    return RX_EINVAL;
  memset(out, 0, sizeof *out);
  if (message == NULL) message = "";
  if (channel_len < PREFIX_LEN) return RX_NOMATCH;
  if (memcmp(channel, KS_PREFIX, PREFIX_LEN) == 0)
    space = RX_SPACE_KEYSPACE;
  else if (memcmp(channel, KE_PREFIX, PREFIX_LEN) == 0)
    space = RX_SPACE_KEYEVENT;
  else
    return RX_NOMATCH;
  end = channel + channel_len;
  used = parse_db(channel + PREFIX_LEN, end, &db);
  if (used == 0) return RX_NOMATCH;
  rest = channel + PREFIX_LEN + used;

  if (space == RX_SPACE_KEYSPACE) {
    /* The rest of the channel is the key, which may be empty and may hold
     * any byte, ':' and '@' included; the message is the event. */
    if (!event_ok(message, message_len)) return RX_NOMATCH;
    out->key = rest;
    out->key_len = (size_t)(end - rest);
    out->event = message;
    out->event_len = message_len;
  } else {
    if (!event_ok(rest, (size_t)(end - rest))) return RX_NOMATCH;
    out->event = rest;
    out->event_len = (size_t)(end - rest);
    out->key = message;
    out->key_len = message_len;
  }
  out->space = space;
  out->db = db;
  out->type = rx_key_event_type_of(out->event, out->event_len);
  return RX_OK;
}

/* ---------------------------------------------------------------- flag sets */

/* One bit per flag letter. A is a shorthand, not a flag of its own. */
enum {
  NF_K = 1 << 0,  NF_E = 1 << 1,  NF_g = 1 << 2,  NF_dollar = 1 << 3,
  NF_l = 1 << 4,  NF_s = 1 << 5,  NF_h = 1 << 6,  NF_z = 1 << 7,
  NF_x = 1 << 8,  NF_e = 1 << 9,  NF_t = 1 << 10, NF_m = 1 << 11,
  NF_d = 1 << 12, NF_n = 1 << 13,
  /* "A": every class Redis folds into it (Redis 7: g$lshzxetd; not m, n). */
  NF_ALL = NF_g | NF_dollar | NF_l | NF_s | NF_h | NF_z | NF_x | NF_e | NF_t | NF_d
};

static const struct {
  char c;
  int bit;
} nf_letters[] = {
    /* Redis's own print order: classes, then K E m (and n, which it omits). */
    {'g', NF_g}, {'$', NF_dollar}, {'l', NF_l}, {'s', NF_s}, {'h', NF_h},
    {'z', NF_z}, {'x', NF_x},      {'e', NF_e}, {'t', NF_t}, {'d', NF_d},
    {'K', NF_K}, {'E', NF_E},      {'m', NF_m}, {'n', NF_n},
};
#define NF_LETTERS (sizeof nf_letters / sizeof nf_letters[0])

static int nf_bit(char ch) {
  if (ch == 'A') return NF_ALL;
  for (size_t i = 0; i < NF_LETTERS; i++)
    if (nf_letters[i].c == ch) return nf_letters[i].bit;
  return 0;
}

/* Parses what CONFIG GET printed. Letters this version does not know (a
 * newer server's) are kept in `extra`, so a write never drops them. */
static int nf_parse_current(const char *s, size_t len, char *extra, size_t extra_len) {
  int set = 0;
  size_t ne = 0;
  for (size_t i = 0; i < len; i++) {
    int b = nf_bit(s[i]);
    if (b) {
      set |= b;
    } else if (s[i] > ' ' && s[i] < 0x7f && ne + 1 < extra_len &&
               memchr(extra, s[i], ne) == NULL) {
      extra[ne++] = s[i];
    }
  }
  if (extra_len) extra[ne] = '\0';
  return set;
}

/* Formats a set the way Redis prints it (plus n, which Redis hides), with
 * the unknown letters at the end. */
static void nf_format(int set, const char *extra, char *buf, size_t len) {
  char tmp[64];
  size_t n = 0;
  if ((set & NF_ALL) == NF_ALL) tmp[n++] = 'A';
  for (size_t i = 0; i < NF_LETTERS; i++) {
    if ((nf_letters[i].bit & NF_ALL) && (set & NF_ALL) == NF_ALL) continue;
    if (set & nf_letters[i].bit) tmp[n++] = nf_letters[i].c;
  }
  for (const char *p = extra; p && *p && n + 1 < sizeof tmp; p++) tmp[n++] = *p;
  tmp[n] = '\0';
  rx__fmt(buf, len, "%s", tmp);
}

/* ---------------------------------------------------------------- guidance */

/* 1 if host (case-insensitive, a trailing dot ignored) ends with suffix. */
static int host_ends_with(const char *host, const char *suffix) {
  size_t h, s = strlen(suffix);
  if (host == NULL) return 0;
  h = strlen(host);
  if (h && host[h - 1] == '.') h--;
  return h > s && strncasecmp(host + h - s, suffix, s) == 0;
}

enum { PROV_GENERIC, PROV_ELASTICACHE, PROV_AZURE, PROV_HEROKU };

static int provider_of(const rx_conn *c) {
  const char *names[2] = {c->opts.host, c->opts.tls_server_name};
  if (c->opts.scheme == RX_SCHEME_UNIX) return PROV_GENERIC;
  for (int i = 0; i < 2; i++) {
    if (host_ends_with(names[i], ".cache.amazonaws.com")) return PROV_ELASTICACHE;
    if (host_ends_with(names[i], ".cache.windows.net")) return PROV_AZURE;
    if (host_ends_with(names[i], ".compute-1.amazonaws.com") ||
        host_ends_with(names[i], ".compute.amazonaws.com"))
      return PROV_HEROKU;
  }
  return PROV_GENERIC;
}

/* Sets RX_ECONFIG with advice for the kind of service c talks to. `want` is
 * the notify-keyspace-events value the application needs; `why` the
 * server's error text. The message must fit rx_conn's errstr (256 bytes). */
static int config_refused(rx_conn *c, const char *want, const char *why, size_t why_len) {
  int wl = (int)(why_len > 60 ? 60 : why_len);
  switch (provider_of(c)) {
  case PROV_ELASTICACHE:
    return rx__conn_seterr(c, RX_ECONFIG,
                           "CONFIG refused (%.*s). On ElastiCache set notify-keyspace-events "
                           "to \"%s\" in the cluster's (custom) parameter group",
                           wl, why, want);
  case PROV_AZURE:
    return rx__conn_seterr(c, RX_ECONFIG,
                           "CONFIG refused (%.*s). On Azure Cache for Redis set "
                           "notify-keyspace-events to \"%s\" in the Azure portal: "
                           "Settings > Advanced settings",
                           wl, why, want);
  case PROV_HEROKU:
    return rx__conn_seterr(c, RX_ECONFIG,
                           "CONFIG refused (%.*s). On Heroku Redis run: "
                           "heroku redis:keyspace-notifications -c %s -a <app>",
                           wl, why, want);
  default:
    return rx__conn_seterr(c, RX_ECONFIG,
                           "CONFIG refused (%.*s); set notify-keyspace-events=%s yourself: "
                           "ElastiCache: parameter group; Azure: portal Advanced settings; "
                           "Heroku: heroku redis:keyspace-notifications -c %s",
                           wl, why, want, want);
  }
}

/* 1 if an error reply means "you may not use CONFIG here": the command is
 * renamed away or disabled (managed services), or the ACL user lacks it. */
static int is_config_forbidden(const rx_reply *r) {
  char low[256];
  size_t n = r->len < sizeof low - 1 ? r->len : sizeof low - 1;
  if (r->len >= 6 && memcmp(r->str, "NOPERM", 6) == 0) return 1;
  for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)r->str[i]);
  low[n] = '\0';
  if (strstr(low, "config") == NULL) return 0;
  return strstr(low, "unknown command") != NULL || strstr(low, "disabled") != NULL ||
         strstr(low, "not allowed") != NULL || strstr(low, "forbidden") != NULL ||
         strstr(low, "unsupported") != NULL || strstr(low, "restricted") != NULL ||
         strstr(low, "not permitted") != NULL;
}

/* Turns an error reply to CONFIG into a status with a message. */
static int config_error(rx_conn *c, const rx_reply *r, const char *want) {
  int code;
  if (is_config_forbidden(r)) return config_refused(c, want, r->str, r->len);
  code = rx__reply_error_code(r);
  return rx__conn_seterr(c, code, "CONFIG on the server failed: %.*s",
                         (int)(r->len > 200 ? 200 : r->len), r->str);
}

/* ---------------------------------------------------------------- the probe */

/* 1 if r is ["pmessage", pattern, channel, payload] and fills payload. */
static int is_pmessage(const rx_reply *r, const rx_reply **payload) {
  if (r->type != RX_REPLY_ARRAY || r->elements != 4 ||
      !rx__reply_is(r->element[0], "pmessage") || r->element[3]->type != RX_REPLY_STRING)
    return 0;
  *payload = r->element[3];
  return 1;
}

/* Finds out whether "n" (new-key events) is on when CONFIG GET does not
 * show it. A second connection subscribes to channels that carry "new"
 * events: __keyevent@*__:new when E is on, else the keyspace channels of the
 * probe key (a pattern over every db, in case c has SELECTed another db than
 * its URL says). Then c creates a unique, short-lived probe key and
 * publishes a sentinel on a matching channel. Redis runs c's commands in
 * order and delivers each subscriber's messages in order, so a "new" event,
 * if it is emitted at all, arrives before the sentinel. *on is 1 or 0;
 * returns 0, or 1 (RX_TIMEOUT) when the probe could not decide (the server
 * refused a step, or the sentinel did not come in time), or a negative
 * connection error of c. tag, when not NULL, goes into the probe key as a
 * hash tag: a cluster node only accepts writes to keys in its own slots. */
static int probe_new(rx_conn *c, int keyevent, int *on, const char *tag) {
  rx_conn sub;
  rx_reply *r = NULL;
  char key[96], sentinel[64], pattern[160], channel[160];
  uint64_t id = rx__random();
  int rc, verdict = RX_TIMEOUT;
  long long deadline;

  *on = 0;
  if (tag)
    rx__fmt(key, sizeof key, "reactis:probe:{%.16s}:%016llx", tag, (unsigned long long)id);
  else
    rx__fmt(key, sizeof key, "reactis:probe:%016llx", (unsigned long long)id);
  rx__fmt(sentinel, sizeof sentinel, "reactis:probe-end:%016llx",
          (unsigned long long)rx__random());
  if (keyevent) {
    rx__fmt(pattern, sizeof pattern, "__keyevent@*__:new");
    rx__fmt(channel, sizeof channel, "__keyevent@%d__:new", c->opts.db);
  } else {
    rx__fmt(pattern, sizeof pattern, "__keyspace@*__:%s", key);
    rx__fmt(channel, sizeof channel, "__keyspace@%d__:%s", c->opts.db, key);
  }

  rc = rx__conn_init(&sub, &c->opts);
  if (rc != RX_OK) return rx__conn_seterr(c, rc, "out of memory or file descriptors");
  {
    const char *argv[2] = {"PSUBSCRIBE", pattern};
    rc = rx_conn_command(&sub, &r, 2, argv, NULL);
    if (rc != RX_OK) {
      /* c works, so a failure here is about the second link: undecided. */
      verdict = rc < 0 ? RX_TIMEOUT : rc;
      goto out;
    }
    if (r->type != RX_REPLY_ARRAY || r->elements < 1 || !rx__reply_is(r->element[0], "psubscribe"))
      goto out; /* e.g. NOPERM on the channel */
    rx_reply_free(r);
    r = NULL;
  }
  {
    const char *argv[6] = {"SET", key, "1", "NX", "PX", "5000"};
    rc = rx_conn_command(c, &r, 6, argv, NULL);
    if (rc != RX_OK) {
      verdict = rc;
      goto out;
    }
    if (!rx__reply_is(r, "OK")) goto out; /* READONLY, OOM, NOPERM: cannot tell */
    rx_reply_free(r);
    r = NULL;
  }
  {
    const char *argv[3] = {"PUBLISH", channel, sentinel};
    rc = rx_conn_command(c, &r, 3, argv, NULL);
    if (rc != RX_OK) {
      verdict = rc;
      goto out;
    }
    rx_reply_free(r);
    r = NULL;
  }
  {
    const char *argv[2] = {"DEL", key};
    rc = rx_conn_command(c, &r, 2, argv, NULL);
    if (rc != RX_OK) {
      verdict = rc;
      goto out;
    }
    rx_reply_free(r);
    r = NULL;
  }
  deadline = rx__deadline(c->opts.timeout_ms > 0 ? c->opts.timeout_ms : 5000);
  for (;;) {
    const rx_reply *payload;
    rc = rx__conn_read(&sub, &r, deadline);
    if (rc != RX_OK) break; /* timeout, wakeup or a lost link: undecided */
    if (is_pmessage(r, &payload)) {
      if (payload->len == strlen(sentinel) && memcmp(payload->str, sentinel, payload->len) == 0) {
        verdict = RX_OK;
        break;
      }
      /* On the keyevent channels every message is a "new" event (of our
       * key or anyone's); on the keyspace channel the message is the event. */
      if (keyevent || rx__reply_is(payload, "new")) *on = 1;
    }
    rx_reply_free(r);
    r = NULL;
  }
out:
  rx_reply_free(r);
  rx__conn_deinit(&sub);
  return verdict;
}

/* ---------------------------------------------------------------- ensure */

/* Reads notify-keyspace-events into *value (owned reply in *holder). */
static int config_get(rx_conn *c, rx_reply **holder, const rx_reply **value, const char *want) {
  const char *argv[3] = {"CONFIG", "GET", "notify-keyspace-events"};
  rx_reply *r = NULL;
  int rc = rx_conn_command(c, &r, 3, argv, NULL);
  *holder = NULL;
  if (rc != RX_OK) return rc;
  if (r->type == RX_REPLY_ERROR) {
    rc = config_error(c, r, want);
    rx_reply_free(r);
    return rc;
  }
  if (r->type != RX_REPLY_ARRAY || r->elements != 2 ||
      (r->element[1]->type != RX_REPLY_STRING && r->element[1]->type != RX_REPLY_STATUS)) {
    int empty = r->type == RX_REPLY_ARRAY && r->elements == 0;
    rx_reply_free(r);
    if (empty) /* the parameter is hidden: a managed service's CONFIG */
      return config_refused(c, want, "notify-keyspace-events not readable", 35);
    return rx__conn_seterr(c, RX_EPROTO, "unexpected reply to CONFIG GET notify-keyspace-events");
  }
  *holder = r;
  *value = r->element[1];
  return RX_OK;
}

int rx_notify_ensure(rx_conn *c, const char *flags, char *effective, size_t effective_len) {
  return rx__notify_ensure_tagged(c, flags, effective, effective_len, NULL);
}

int rx__notify_ensure_tagged(rx_conn *c, const char *flags, char *effective,
                             size_t effective_len, const char *probe_tag) {
  char extra[32], want[64], shown[64];
  rx_reply *cur_reply = NULL;
  const rx_reply *cur;
  int requested = 0, current, merged, n_known, rc;

  if (effective && effective_len) effective[0] = '\0';
  if (c == NULL) return RX_EINVAL;
  if (flags == NULL) return rx__conn_seterr(c, RX_EINVAL, "flags is NULL");
  for (const char *p = flags; *p; p++) {
    int b = nf_bit(*p);
    if (b == 0) {
      unsigned char u = (unsigned char)*p;
      if (u > ' ' && u < 0x7f)
        return rx__conn_seterr(c, RX_EINVAL,
                               "unknown notify-keyspace-events flag '%c' in \"%.40s\" "
                               "(known: K E g $ l s h z x e t m d n A)",
                               *p, flags);
      return rx__conn_seterr(c, RX_EINVAL,
                             "unknown notify-keyspace-events flag 0x%02x "
                             "(known: K E g $ l s h z x e t m d n A)",
                             u);
    }
    requested |= b;
  }
  nf_format(requested, NULL, want, sizeof want);

  rc = config_get(c, &cur_reply, &cur, want);
  if (rc != RX_OK) return rc;
  current = nf_parse_current(cur->str, cur->len, extra, sizeof extra);
  rx__fmt(shown, sizeof shown, "%.*s", (int)(cur->len < 60 ? cur->len : 60), cur->str);
  rx_reply_free(cur_reply);
  cur_reply = NULL;

  /* What we know of n: shown (a newer server may print it) or not. */
  n_known = (current & NF_n) != 0;
  merged = current | requested;

  if ((requested & NF_n) && !n_known && (current & (NF_K | NF_E))) {
    /* n was asked for and cannot be read: a probe tells whether it is
     * already on, which spares a write (and a refused CONFIG SET). */
    int on = 0;
    rc = probe_new(c, (current & NF_E) != 0, &on, probe_tag);
    if (rc < 0) return rc;
    if (rc == RX_OK && on) {
      current |= NF_n;
      n_known = 1;
    }
  }

  if ((merged & ~current) == 0) {
    /* Nothing is missing: leave the server alone. */
    if (effective) {
      if (n_known && strchr(shown, 'n') == NULL)
        rx__fmt(effective, effective_len, "%sn", shown);
      else
        rx__fmt(effective, effective_len, "%s", shown);
    }
    return RX_OK;
  }

  if (!(requested & NF_n) && !n_known && (current & (NF_K | NF_E))) {
    /* The write replaces the whole value, so learn whether n is on first
     * and keep it. When the probe cannot decide, keep n on: the contract is
     * "never remove a flag", and a spare "new" event is the lesser harm.
     * (With K and E both off, n has no effect and no probe can see it.) */
    int on = 0;
    rc = probe_new(c, (current & NF_E) != 0, &on, probe_tag);
    if (rc < 0) return rc;
    if (rc != RX_OK || on) merged |= NF_n;
  }

  {
    char value[64];
    const char *argv[4] = {"CONFIG", "SET", "notify-keyspace-events", value};
    rx_reply *r = NULL;
    nf_format(merged, extra, value, sizeof value);
    rc = rx_conn_command(c, &r, 4, argv, NULL);
    if (rc != RX_OK) return rc;
    if (r->type == RX_REPLY_ERROR && (merged & NF_n) && !(requested & NF_n) &&
        !(current & NF_n) && strstr(r->str, "Invalid argument") != NULL) {
      /* n was kept only because the probe could not tell, and the server
       * does not know the letter (before Redis 7.0): it cannot be on. */
      rx_reply_free(r);
      r = NULL;
      merged &= ~NF_n;
      nf_format(merged, extra, value, sizeof value);
      rc = rx_conn_command(c, &r, 4, argv, NULL);
      if (rc != RX_OK) return rc;
    }
    if (r->type == RX_REPLY_ERROR) {
      rc = config_error(c, r, value);
      rx_reply_free(r);
      return rc;
    }
    rx_reply_free(r);

    if (effective) {
      /* Report what the server now says, plus the n we know we set. */
      rc = config_get(c, &cur_reply, &cur, value);
      if (rc == RX_OK) {
        int has_n = memchr(cur->str, 'n', cur->len) != NULL;
        rx__fmt(effective, effective_len, "%.*s%s", (int)(cur->len < 60 ? cur->len : 60),
                cur->str, (merged & NF_n) && !has_n ? "n" : "");
        rx_reply_free(cur_reply);
      } else if (rc < 0 && rc != RX_ECONFIG) {
        return rc;
      } else {
        /* The write worked; only the read-back did not: not an error. */
        c->err = RX_OK;
        c->errstr[0] = '\0';
        rx__fmt(effective, effective_len, "%s", value);
      }
    }
  }
  return RX_OK;
}
