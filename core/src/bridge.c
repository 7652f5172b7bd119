/* bridge.c — from `expired` notifications of templated keys to the values
 * of their shadow keys.
 *
 * An expired key has no value left to read, so applications that want data
 * with the event keep it in a second key without a TTL (the shadow). This
 * file turns one notification into (captures, shadow value) with one GETDEL,
 * which also makes the hand-over exclusive when several subscribers get the
 * same event. It cannot make the notification itself reliable: see the
 * timer.h header comment, and use timers where that matters. */
#include "reactis/timer.h"

#include <stdio.h>
#include <string.h>

#include "reactis/conn.h"
#include "reactis/keyspace.h"
#include "reactis/sub.h"
#include "rx_private.h"

struct rx_bridge {
  rx_template *tpl;
  rx_template *shadow;
  size_t *map;         /* shadow placeholder i is key placeholder map[i] */
  rx_capture *caps;    /* captures of the last take (tpl count; >= 1 entry) */
  const char **vals;   /* scratch for rx_template_format */
  size_t *lens;
  char *shadow_key;    /* the last shadow key, rx__malloc'd */
  rx_reply *value;     /* the last reply, holding the value */
  int flags;
  int no_getdel;       /* the server lacks GETDEL (before 6.2): use a script */
};

void rx_bridge_free(rx_bridge *b) {
  if (!b) return;
  rx_template_free(b->tpl);
  rx_template_free(b->shadow);
  rx__free(b->map);
  rx__free(b->caps);
  rx__free(b->vals);
  rx__free(b->lens);
  rx__free(b->shadow_key);
  rx_reply_free(b->value);
  rx__free(b);
}

rx_bridge *rx_bridge_new(const char *tpl, size_t tpl_len, const char *shadow, size_t shadow_len,
                         int flags, char *errstr, size_t errstr_len) {
  if (errstr && errstr_len) errstr[0] = '\0';
  if (flags & ~RX_BRIDGE_KEEP) {
    rx__fmt(errstr, errstr_len, "unknown bridge flags %d", flags);
    return NULL;
  }
  rx_bridge *b = rx__calloc(1, sizeof *b);
  if (!b) goto nomem;
  b->flags = flags;
  char err[200];
  b->tpl = rx_template_new(tpl, tpl_len, err, sizeof err);
  if (!b->tpl) {
    rx__fmt(errstr, errstr_len, "key template: %s", err);
    goto fail;
  }
  if (!shadow || !shadow_len) {
    /* "shadow:" + the key template: still a template with the same names. */
    char *s = rx__malloc(tpl_len + 8);
    if (!s) goto nomem;
    memcpy(s, "shadow:", 7);
    memcpy(s + 7, tpl, tpl_len);
    b->shadow = rx_template_new(s, tpl_len + 7, err, sizeof err);
    rx__free(s);
  } else {
    b->shadow = rx_template_new(shadow, shadow_len, err, sizeof err);
  }
  if (!b->shadow) {
    rx__fmt(errstr, errstr_len, "shadow template: %s", err);
    goto fail;
  }
  size_t nk = rx_template_count(b->tpl), ns = rx_template_count(b->shadow);
  b->caps = rx__calloc(nk ? nk : 1, sizeof *b->caps);
  b->map = rx__calloc(ns ? ns : 1, sizeof *b->map);
  b->vals = rx__calloc(ns ? ns : 1, sizeof *b->vals);
  b->lens = rx__calloc(ns ? ns : 1, sizeof *b->lens);
  if (!b->caps || !b->map || !b->vals || !b->lens) goto nomem;
  for (size_t i = 0; i < ns; i++) {
    size_t len = 0;
    const char *name = rx_template_name(b->shadow, i, &len);
    int k = rx_template_index(b->tpl, name, len);
    if (k < 0) {
      rx__fmt(errstr, errstr_len,
              "shadow template: placeholder {%.*s} is not in the key template", (int)len, name);
      goto fail;
    }
    b->map[i] = (size_t)k;
  }
  return b;
nomem:
  rx__fmt(errstr, errstr_len, "out of memory");
fail:
  rx_bridge_free(b);
  return NULL;
}

const rx_template *rx_bridge_template(const rx_bridge *b) { return b ? b->tpl : NULL; }
const rx_template *rx_bridge_shadow(const rx_bridge *b) { return b ? b->shadow : NULL; }

int rx_bridge_subscribe(rx_bridge *b, rx_sub *s, int db) {
  if (!b || !s) return RX_EINVAL;
  char ch[64];
  if (db < 0)
    rx__fmt(ch, sizeof ch, "__keyevent@*__:expired");
  else
    rx__fmt(ch, sizeof ch, "__keyevent@%d__:expired", db);
  return rx_sub_psubscribe(s, ch, strlen(ch));
}

/* GET + DEL in one step for servers before 6.2. */
static const char getdel_lua[] =
    "local v = redis.call('GET', KEYS[1]) redis.call('DEL', KEYS[1]) return v";

static int is_unknown_command(const rx_reply *r) {
  return r->type == RX_REPLY_ERROR && r->len >= 15 && !strncmp(r->str, "ERR unknown command", 19);
}

int rx_bridge_take(rx_bridge *b, rx_conn *c, const char *channel, size_t channel_len,
                   const char *message, size_t message_len, rx_expiry *out) {
  if (!b || !c || !out || !channel) return RX_EINVAL;
  memset(out, 0, sizeof *out);
  rx_key_event ev;
  if (rx_keyspace_parse(channel, channel_len, message ? message : "", message ? message_len : 0,
                        &ev) != RX_OK)
    return RX_NOMATCH;
  if (ev.type != RX_KEV_EXPIRED) return RX_NOMATCH;
  /* The shadow key is read on c, in c's database: an event of another
   * database is about a key this connection cannot see. */
  if (ev.db != c->opts.db) return RX_NOMATCH;
  size_t nk = rx_template_count(b->tpl);
  if (rx_template_match(b->tpl, ev.key, ev.key_len, b->caps, nk) != RX_OK) return RX_NOMATCH;
  size_t ns = rx_template_count(b->shadow);
  for (size_t i = 0; i < ns; i++) {
    b->vals[i] = b->caps[b->map[i]].ptr;
    b->lens[i] = b->caps[b->map[i]].len;
  }
  rx__free(b->shadow_key);
  b->shadow_key = NULL;
  rx_reply_free(b->value);
  b->value = NULL;
  size_t sklen = 0;
  int rc = rx_template_format(b->shadow, b->vals, b->lens, ns, &b->shadow_key, &sklen);
  if (rc != RX_OK) return rx__conn_seterr(c, rc, "bridge: cannot format the shadow key");
  rx_reply *r = NULL;
  for (int attempt = 0; attempt < 2; attempt++) {
    if ((b->flags & RX_BRIDGE_KEEP) || !b->no_getdel) {
      const char *cmd = (b->flags & RX_BRIDGE_KEEP) ? "GET" : "GETDEL";
      const char *argv[2] = {cmd, b->shadow_key};
      size_t lens[2] = {strlen(cmd), sklen};
      rc = rx_conn_command(c, &r, 2, argv, lens);
    } else {
      const char *argv[4] = {"EVAL", getdel_lua, "1", b->shadow_key};
      size_t lens[4] = {4, sizeof getdel_lua - 1, 1, sklen};
      rc = rx_conn_command(c, &r, 4, argv, lens);
    }
    if (rc != RX_OK) return rc;
    if (!(b->flags & RX_BRIDGE_KEEP) && !b->no_getdel && is_unknown_command(r)) {
      b->no_getdel = 1;
      rx_reply_free(r);
      r = NULL;
      continue;
    }
    break;
  }
  if (r->type == RX_REPLY_ERROR) {
    rc = rx__reply_error_code(r);
    rx__conn_seterr(c, rc, "bridge: %.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
    rx_reply_free(r);
    return rc;
  }
  if (r->type != RX_REPLY_STRING && r->type != RX_REPLY_NIL) {
    rx_reply_free(r);
    return rx__conn_seterr(c, RX_EPROTO, "bridge: unexpected reply to GETDEL");
  }
  b->value = r;
  out->db = ev.db;
  out->key = ev.key;
  out->key_len = ev.key_len;
  out->caps = b->caps;
  out->ncaps = nk;
  out->shadow_key = b->shadow_key;
  out->shadow_key_len = sklen;
  if (r->type == RX_REPLY_STRING) {
    out->value = r->str;
    out->value_len = r->len;
  }
  return RX_OK;
}
