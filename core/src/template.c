/* template.c — compiled key/channel templates: match, format, glob. */
#include "reactis/template.h"

#include <string.h>

#include "rx_private.h"

/* A template is a list of parts: literal byte runs and placeholders, in
 * order. Literals are stored unescaped ("{{" became "{"). */
typedef struct part {
  int is_var;
  size_t off, len; /* literal: span of lit; placeholder: span of names */
  size_t var;      /* placeholder index */
} part;

struct rx_template {
  char *src;
  size_t src_len;
  char *lit;   /* all literal bytes, unescaped */
  char *names; /* all placeholder names, each NUL-terminated */
  size_t *name_off, *name_len;
  size_t nvars;
  part *parts;
  size_t nparts;
  char *glob;
  size_t glob_len;
};

static int name_start(int ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static int name_char(int ch) { return name_start(ch) || (ch >= '0' && ch <= '9'); }

void rx_template_free(rx_template *t) {
  if (!t) return;
  rx__free(t->src);
  rx__free(t->lit);
  rx__free(t->names);
  rx__free(t->name_off);
  rx__free(t->name_len);
  rx__free(t->parts);
  rx__free(t->glob);
  rx__free(t);
}

rx_template *rx_template_new(const char *tpl, size_t len, char *errstr, size_t errlen) {
  if (errstr && errlen) errstr[0] = '\0';
  if (!tpl || !len) {
    rx__fmt(errstr, errlen, "template is empty");
    return NULL;
  }
  rx_template *t = rx__calloc(1, sizeof *t);
  if (!t) goto nomem;
  /* Upper bounds: no more parts than bytes, no more literal or name bytes. */
  t->src = rx__memdup(tpl, len);
  t->src_len = len;
  t->lit = rx__malloc(len + 1);
  t->names = rx__malloc(len + 1);
  t->parts = rx__calloc(len, sizeof *t->parts);
  t->name_off = rx__calloc(len, sizeof(size_t));
  t->name_len = rx__calloc(len, sizeof(size_t));
  t->glob = rx__malloc(2 * len + 1);
  if (!t->src || !t->lit || !t->names || !t->parts || !t->name_off || !t->name_len || !t->glob)
    goto nomem;
  size_t litn = 0, namen = 0, globn = 0;
  for (size_t i = 0; i < len;) {
    char ch = tpl[i];
    if (ch == '{' && i + 1 < len && tpl[i + 1] == '{') ch = '{', i++;
    else if (ch == '}' && i + 1 < len && tpl[i + 1] == '}') ch = '}', i++;
    else if (ch == '}') {
      rx__fmt(errstr, errlen, "unmatched '}' at offset %zu (write '}}' for a literal brace)", i);
      goto fail;
    } else if (ch == '{') {
      size_t j = i + 1;
      while (j < len && tpl[j] != '}') j++;
      if (j == len) {
        rx__fmt(errstr, errlen, "unclosed '{' at offset %zu", i);
        goto fail;
      }
      size_t nl = j - i - 1;
      if (nl == 0 || !name_start((unsigned char)tpl[i + 1])) {
        rx__fmt(errstr, errlen, "bad placeholder name at offset %zu (letters, digits, '_'; not starting with a digit)", i);
        goto fail;
      }
      for (size_t k = i + 1; k < j; k++) {
        if (!name_char((unsigned char)tpl[k])) {
          rx__fmt(errstr, errlen, "bad character in placeholder name at offset %zu", k);
          goto fail;
        }
      }
      if (t->nparts && t->parts[t->nparts - 1].is_var) {
        rx__fmt(errstr, errlen, "placeholders at offset %zu touch the one before: put a literal between them", i);
        goto fail;
      }
      for (size_t v = 0; v < t->nvars; v++) {
        if (t->name_len[v] == nl && !memcmp(t->names + t->name_off[v], tpl + i + 1, nl)) {
          rx__fmt(errstr, errlen, "placeholder {%.*s} appears twice", (int)(nl > 40 ? 40 : nl), tpl + i + 1);
          goto fail;
        }
      }
      t->name_off[t->nvars] = namen;
      t->name_len[t->nvars] = nl;
      memcpy(t->names + namen, tpl + i + 1, nl);
      namen += nl;
      t->names[namen++] = '\0';
      part *p = &t->parts[t->nparts++];
      p->is_var = 1;
      p->var = t->nvars++;
      t->glob[globn++] = '*';
      i = j + 1;
      continue;
    }
    /* A literal byte: extend the current literal part or open one. */
    if (!t->nparts || t->parts[t->nparts - 1].is_var) {
      part *p = &t->parts[t->nparts++];
      p->is_var = 0;
      p->off = litn;
      p->len = 0;
    }
    t->parts[t->nparts - 1].len++;
    t->lit[litn++] = ch;
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') t->glob[globn++] = '\\';
    t->glob[globn++] = ch;
    i++;
  }
  t->lit[litn] = '\0';
  t->glob[globn] = '\0';
  t->glob_len = globn;
  return t;
nomem:
  rx__fmt(errstr, errlen, "out of memory");
fail:
  rx_template_free(t);
  return NULL;
}

size_t rx_template_count(const rx_template *t) { return t ? t->nvars : 0; }

const char *rx_template_name(const rx_template *t, size_t i, size_t *len) {
  if (!t || i >= t->nvars) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = t->name_len[i];
  return t->names + t->name_off[i];
}

int rx_template_index(const rx_template *t, const char *name, size_t len) {
  if (!t || !name) return -1;
  for (size_t v = 0; v < t->nvars; v++)
    if (t->name_len[v] == len && !memcmp(t->names + t->name_off[v], name, len)) return (int)v;
  return -1;
}

const char *rx_template_glob(const rx_template *t, size_t *len) {
  if (len) *len = t ? t->glob_len : 0;
  return t ? t->glob : NULL;
}

const char *rx_template_source(const rx_template *t, size_t *len) {
  if (len) *len = t ? t->src_len : 0;
  return t ? t->src : NULL;
}

/* The classic wildcard algorithm: each placeholder is "one byte, then any
 * number", and on a mismatch only the most recent placeholder grows by one
 * byte. That finds a match whenever one exists (earlier placeholders keep the
 * shortest span that worked), in O(len(name) * len(template)) steps, so a
 * hostile name cannot make matching explode. */
static int match(const rx_template *t, const char *s, size_t n, rx_capture *caps, size_t max) {
  size_t pi = 0, li = 0, si = 0, star_si = 0;
  size_t star = (size_t)-1;
  for (;;) {
    if (pi == t->nparts) {
      if (si == n) return 1;
      goto backtrack;
    }
    const part *p = &t->parts[pi];
    if (p->is_var) {
      if (si >= n) goto backtrack;
      if (p->var < max) caps[p->var].ptr = s + si;
      if (pi + 1 == t->nparts) { /* the last part takes the rest */
        if (p->var < max) caps[p->var].len = n - si;
        return 1;
      }
      star = pi;
      star_si = si + 1;
      si = star_si;
      if (p->var < max) caps[p->var].len = 1;
      pi++;
      li = 0;
      continue;
    }
    if (li == p->len) {
      pi++;
      li = 0;
      continue;
    }
    if (si < n && s[si] == t->lit[p->off + li]) {
      si++;
      li++;
      continue;
    }
  backtrack:
    if (star == (size_t)-1 || star_si >= n) return 0;
    star_si++;
    si = star_si;
    pi = star + 1;
    li = 0;
    {
      const part *sp = &t->parts[star];
      if (sp->var < max) caps[sp->var].len = (size_t)(s + si - caps[sp->var].ptr);
    }
  }
}

int rx_template_match(const rx_template *t, const char *name, size_t len, rx_capture *caps,
                      size_t max) {
  if (!t || (!name && len) || (!caps && max)) return RX_EINVAL;
  return match(t, name ? name : "", len, caps, max) ? RX_OK : RX_NOMATCH;
}

int rx_template_format(const rx_template *t, const char *const *values, const size_t *lens,
                       size_t n, char **out, size_t *out_len) {
  if (out) *out = NULL;
  if (out_len) *out_len = 0;
  if (!t || !out || n != t->nvars || (n && (!values || !lens))) return RX_EINVAL;
  size_t total = 0;
  for (size_t i = 0; i < t->nparts; i++) {
    const part *p = &t->parts[i];
    size_t add = p->is_var ? lens[p->var] : p->len;
    if (p->is_var && (add == 0 || !values[p->var])) return RX_EINVAL;
    if (total + add < total) return RX_EINVAL;
    total += add;
  }
  char *s = rx__malloc(total + 1);
  if (!s) return RX_ENOMEM;
  size_t w = 0;
  for (size_t i = 0; i < t->nparts; i++) {
    const part *p = &t->parts[i];
    if (p->is_var) {
      memcpy(s + w, values[p->var], lens[p->var]);
      w += lens[p->var];
    } else {
      memcpy(s + w, t->lit + p->off, p->len);
      w += p->len;
    }
  }
  s[w] = '\0';
  *out = s;
  if (out_len) *out_len = w;
  return RX_OK;
}
