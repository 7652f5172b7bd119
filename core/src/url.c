/* url.c — Redis URLs and named options.
 *
 * One parser for both: the query part of a URL goes through rx__opts_set,
 * the same function rx_conn_set and rx_sub_set use, so an option means the
 * same thing wherever it is given. Messages never include the password. */
#include "rx_private.h"
#include "rx_cluster.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void opts_defaults(rx_opts *o) {
  memset(o, 0, sizeof *o);
  o->port = 6379;
  o->timeout_ms = 5000;
  o->connect_timeout_ms = 5000;
  o->keepalive_s = 60;
  o->tls_verify = 1;
  o->tls_check_hostname = 1;
  o->health_interval_ms = 5000;
  o->health_timeout_ms = 3000;
  o->reconnect_min_ms = 50;
  o->reconnect_max_ms = 5000;
}

void rx__opts_free(rx_opts *o) {
  if (!o) return;
  rx__free(o->host);
  rx__free(o->path);
  rx__free(o->username);
  if (o->password) {
    /* Do not leave the secret in freed memory. */
    volatile char *p = o->password;
    while (*p) *p++ = 0;
  }
  rx__free(o->password);
  rx__free(o->client_name);
  rx__free(o->tls_ca_file);
  rx__free(o->tls_cert_file);
  rx__free(o->tls_key_file);
  rx__free(o->tls_server_name);
  memset(o, 0, sizeof *o);
}

static int dup_into(char **dst, const char *src) {
  char *d = NULL;
  if (src) {
    d = rx__strdup(src);
    if (!d) return RX_ENOMEM;
  }
  rx__free(*dst);
  *dst = d;
  return RX_OK;
}

int rx__opts_copy(rx_opts *dst, const rx_opts *src) {
  *dst = *src;
  dst->host = dst->path = dst->username = dst->password = NULL;
  dst->client_name = dst->tls_ca_file = dst->tls_cert_file = NULL;
  dst->tls_key_file = dst->tls_server_name = NULL;
  if (dup_into(&dst->host, src->host) || dup_into(&dst->path, src->path) ||
      dup_into(&dst->username, src->username) ||
      dup_into(&dst->password, src->password) ||
      dup_into(&dst->client_name, src->client_name) ||
      dup_into(&dst->tls_ca_file, src->tls_ca_file) ||
      dup_into(&dst->tls_cert_file, src->tls_cert_file) ||
      dup_into(&dst->tls_key_file, src->tls_key_file) ||
      dup_into(&dst->tls_server_name, src->tls_server_name)) {
    rx__opts_free(dst);
    return RX_ENOMEM;
  }
  return RX_OK;
}

/* Seconds (a decimal, possibly fractional) into milliseconds. */
static int parse_seconds(const char *v, int *ms) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (!*v || *end || errno || !isfinite(d) || d < 0 || d > 2000000.0) return -1;
  *ms = (int)(d * 1000.0 + 0.5);
  return 0;
}

static int parse_int(const char *v, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  if (!*v || isspace((unsigned char)*v)) return -1;
  long n = strtol(v, &end, 10);
  if (*end || errno || n < lo || n > hi) return -1;
  *out = (int)n;
  return 0;
}

static int parse_bool(const char *v, int *out) {
  if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
      !strcasecmp(v, "on")) {
    *out = 1;
    return 0;
  }
  if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
      !strcasecmp(v, "off")) {
    *out = 0;
    return 0;
  }
  return -1;
}

int rx__opts_set(rx_opts *o, const char *name, const char *value, char *errstr,
                 size_t errlen) {
  if (!name || !value) {
    rx__fmt(errstr, errlen, "option name and value must not be NULL");
    return RX_EINVAL;
  }
  int bad = 0, ms;
#define SECONDS(field)                       \
  do {                                       \
    if (parse_seconds(value, &ms)) bad = 1;  \
    else o->field = ms;                      \
  } while (0)
  if (!strcmp(name, "db")) {
    bad = parse_int(value, 0, INT_MAX, &o->db);
  } else if (!strcmp(name, "password")) {
    return dup_into(&o->password, value);
  } else if (!strcmp(name, "username")) {
    return dup_into(&o->username, *value ? value : NULL);
  } else if (!strcmp(name, "timeout") || !strcmp(name, "socket_timeout")) {
    SECONDS(timeout_ms);
  } else if (!strcmp(name, "connect_timeout") ||
             !strcmp(name, "socket_connect_timeout")) {
    SECONDS(connect_timeout_ms);
  } else if (!strcmp(name, "keepalive")) {
    bad = parse_int(value, 0, 86400, &o->keepalive_s);
  } else if (!strcmp(name, "client_name") || !strcmp(name, "name")) {
    for (const char *p = value; *p; p++)
      if (*p <= ' ' || *p == 0x7f) bad = 1; /* Redis refuses spaces in names */
    if (!bad) return dup_into(&o->client_name, *value ? value : NULL);
  } else if (!strcmp(name, "ssl_cert_reqs")) {
    if (!strcasecmp(value, "none")) o->tls_verify = 0;
    else if (!strcasecmp(value, "required") || !strcasecmp(value, "optional"))
      o->tls_verify = 1;
    else bad = 1;
  } else if (!strcmp(name, "ssl_check_hostname")) {
    bad = parse_bool(value, &o->tls_check_hostname);
  } else if (!strcmp(name, "ssl_ca_certs") || !strcmp(name, "ssl_ca_file")) {
    return dup_into(&o->tls_ca_file, value);
  } else if (!strcmp(name, "ssl_certfile")) {
    return dup_into(&o->tls_cert_file, value);
  } else if (!strcmp(name, "ssl_keyfile")) {
    return dup_into(&o->tls_key_file, value);
  } else if (!strcmp(name, "ssl_server_name")) {
    return dup_into(&o->tls_server_name, value);
  } else if (!strcmp(name, "health_check_interval")) {
    SECONDS(health_interval_ms);
  } else if (!strcmp(name, "health_check_timeout")) {
    SECONDS(health_timeout_ms);
    if (!bad && o->health_timeout_ms == 0) bad = 1;
  } else if (!strcmp(name, "reconnect_min")) {
    SECONDS(reconnect_min_ms);
  } else if (!strcmp(name, "reconnect_max")) {
    SECONDS(reconnect_max_ms);
  } else if (!strcmp(name, "reconnect_max_attempts")) {
    bad = parse_int(value, 0, INT_MAX, &o->reconnect_max_attempts);
  } else if (!strcmp(name, "cluster")) {
    bad = parse_bool(value, &o->cluster);
  } else {
    rx__fmt(errstr, errlen, "unknown option \"%.64s\"", name);
    return RX_EURL;
  }
#undef SECONDS
  if (bad) {
    /* Never echo a value that might be secret; options here are not. */
    rx__fmt(errstr, errlen, "invalid value \"%.64s\" for option %.64s", value, name);
    return RX_EURL;
  }
  return RX_OK;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes [s, s+n) into a new string. A decoded NUL is refused: no
 * host, path, user or password can hold one. NULL on bad escapes (with
 * *err = RX_EURL) or no memory (*err = RX_ENOMEM). */
static char *pct_decode(const char *s, size_t n, int plus_is_space, int *err) {
  char *d = rx__malloc(n + 1), *w = d;
  if (!d) {
    *err = RX_ENOMEM;
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (n - i < 3) goto bad;
      int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
      if (a < 0 || b < 0 || (a == 0 && b == 0)) goto bad;
      *w++ = (char)(a * 16 + b);
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      *w++ = ' ';
    } else {
      *w++ = s[i];
    }
  }
  *w = '\0';
  return d;
bad:
  rx__free(d);
  *err = RX_EURL;
  return NULL;
}

/* Parses the query string "a=b&c=d" into o. */
static int parse_query(rx_opts *o, const char *q, char *errstr, size_t errlen) {
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    if (n) {
      const char *eq = memchr(q, '=', n);
      if (!eq) {
        rx__fmt(errstr, errlen, "malformed URL: query option without '=' (\"%.*s\")",
                (int)(n > 40 ? 40 : n), q);
        return RX_EURL;
      }
      int err = RX_OK;
      char *name = pct_decode(q, (size_t)(eq - q), 1, &err);
      char *val = name ? pct_decode(eq + 1, n - (size_t)(eq - q) - 1, 1, &err) : NULL;
      if (!name || !val) {
        rx__free(name);
        rx__free(val);
        rx__fmt(errstr, errlen, err == RX_ENOMEM ? "out of memory"
                                                 : "malformed URL: bad %%-escape in query");
        return err;
      }
      int rc = rx__opts_set(o, name, val, errstr, errlen);
      if (rc == RX_EURL && !strcmp(name, "password")) {
        rx__fmt(errstr, errlen, "malformed URL: bad password option");
      }
      if (val) memset(val, 0, strlen(val));
      rx__free(name);
      rx__free(val);
      if (rc) return rc;
    }
    q += n;
    if (*q == '&') q++;
  }
  return RX_OK;
}

int rx__opts_parse(rx_opts *o, const char *url, char *errstr, size_t errlen) {
  opts_defaults(o);
  if (!url || !*url) {
    rx__fmt(errstr, errlen, "malformed URL: empty (expected redis://host:port)");
    return RX_EURL;
  }
  for (const char *p = url; *p; p++) {
    if ((unsigned char)*p <= ' ' || *p == 0x7f) {
      rx__fmt(errstr, errlen, "malformed URL: contains a space or control character");
      return RX_EURL;
    }
  }
  const char *rest;
  if (!strncasecmp(url, "redis://", 8)) {
    o->scheme = RX_SCHEME_TCP;
    rest = url + 8;
  } else if (!strncasecmp(url, "rediss://", 9)) {
    o->scheme = RX_SCHEME_TLS;
    rest = url + 9;
  } else if (!strncasecmp(url, "unix://", 7)) {
    o->scheme = RX_SCHEME_UNIX;
    rest = url + 7;
  } else {
    rx__fmt(errstr, errlen,
            "malformed URL: the scheme must be redis://, rediss:// or unix://");
    return RX_EURL;
  }
  int rc = RX_EURL, err = RX_OK;
  const char *query = strchr(rest, '?');
  const char *frag = strchr(rest, '#');
  if (frag && (!query || frag < query)) {
    rx__fmt(errstr, errlen, "malformed URL: fragments (#) are not allowed");
    goto fail;
  }
  size_t mainlen = query ? (size_t)(query - rest) : strlen(rest);
  /* Authority: everything up to the first '/' (the path follows). */
  const char *slash = memchr(rest, '/', mainlen);
  size_t authlen = slash ? (size_t)(slash - rest) : mainlen;
  /* The userinfo ends at the LAST '@' of the authority, so a password may
   * contain '@' unescaped, as redis-py allows. */
  const char *at = NULL;
  for (size_t i = 0; i < authlen; i++)
    if (rest[i] == '@') at = rest + i;
  const char *host = rest;
  size_t hostlen = authlen;
  if (at) {
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    if (colon) {
      if (colon > rest) {
        o->username = pct_decode(rest, (size_t)(colon - rest), 0, &err);
        if (!o->username) goto decode_fail;
      }
      o->password = pct_decode(colon + 1, (size_t)(at - colon - 1), 0, &err);
      if (!o->password) goto decode_fail;
    } else if (at > rest) {
      /* "redis://secret@host": redis-py reads a lone userinfo as the
       * password for the default user; redis-rb too. */
      o->password = pct_decode(rest, (size_t)(at - rest), 0, &err);
      if (!o->password) goto decode_fail;
    }
    host = at + 1;
    hostlen = authlen - (size_t)(host - rest);
  }
  if (o->scheme == RX_SCHEME_UNIX) {
    if (hostlen) {
      rx__fmt(errstr, errlen, "malformed URL: unix:// takes a path (unix:///path/to.sock)");
      goto fail;
    }
    if (!slash || mainlen - (size_t)(slash - rest) < 2) {
      rx__fmt(errstr, errlen, "malformed URL: unix:// needs a socket path");
      goto fail;
    }
    o->path = pct_decode(slash, mainlen - (size_t)(slash - rest), 0, &err);
    if (!o->path) goto decode_fail;
  } else {
    const char *portp = NULL;
    if (hostlen && host[0] == '[') {
      const char *close = memchr(host, ']', hostlen);
      if (!close || close == host + 1) {
        rx__fmt(errstr, errlen, "malformed URL: unterminated IPv6 address");
        goto fail;
      }
      o->host = rx__memdup(host + 1, (size_t)(close - host - 1));
      if (!o->host) goto nomem;
      for (const char *p = o->host; *p; p++) {
        if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') {
          rx__fmt(errstr, errlen, "malformed URL: bad IPv6 address");
          goto fail;
        }
      }
      if (close + 1 < host + hostlen) {
        if (close[1] != ':') {
          rx__fmt(errstr, errlen, "malformed URL: junk after the IPv6 address");
          goto fail;
        }
        portp = close + 2;
      }
    } else {
      const char *colon = memchr(host, ':', hostlen);
      size_t hl = colon ? (size_t)(colon - host) : hostlen;
      if (hl) {
        o->host = pct_decode(host, hl, 0, &err);
        if (!o->host) goto decode_fail;
        for (const char *p = o->host; *p; p++) {
          if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_') {
            rx__fmt(errstr, errlen, "malformed URL: bad character in the host name");
            goto fail;
          }
        }
      }
      if (colon) portp = colon + 1;
    }
    if (!o->host) {
      o->host = rx__strdup("localhost");
      if (!o->host) goto nomem;
    }
    if (portp) {
      size_t pl = (size_t)(host + hostlen - portp);
      char pbuf[8];
      if (pl == 0 || pl > 5) {
        rx__fmt(errstr, errlen, "malformed URL: bad port");
        goto fail;
      }
      memcpy(pbuf, portp, pl);
      pbuf[pl] = 0;
      for (size_t i = 0; i < pl; i++)
        if (!isdigit((unsigned char)pbuf[i])) pl = 0;
      int port;
      if (!pl || parse_int(pbuf, 1, 65535, &port)) {
        rx__fmt(errstr, errlen, "malformed URL: bad port \"%s\" (1-65535)", pbuf);
        goto fail;
      }
      o->port = port;
    }
    if (slash) {
      size_t pl = mainlen - (size_t)(slash - rest) - 1;
      if (pl) {
        char dbuf[16];
        if (pl >= sizeof dbuf) {
          rx__fmt(errstr, errlen, "malformed URL: bad database number in the path");
          goto fail;
        }
        memcpy(dbuf, slash + 1, pl);
        dbuf[pl] = 0;
        for (size_t i = 0; i < pl; i++)
          if (!isdigit((unsigned char)dbuf[i])) pl = 0;
        if (!pl || parse_int(dbuf, 0, INT_MAX, &o->db)) {
          rx__fmt(errstr, errlen, "malformed URL: bad database number \"%s\"", dbuf);
          goto fail;
        }
      }
    }
  }
  if (query && (rc = parse_query(o, query + 1, errstr, errlen)) != RX_OK) goto fail;
  return RX_OK;

decode_fail:
  if (err == RX_ENOMEM) goto nomem;
  rx__fmt(errstr, errlen, "malformed URL: bad %%-escape");
  rc = RX_EURL;
  goto fail;
nomem:
  rx__fmt(errstr, errlen, "out of memory");
  rc = RX_ENOMEM;
fail:
  if (rc == RX_OK) rc = RX_EURL;
  rx__opts_free(o);
  return rc;
}

void rx__opts_describe(const rx_opts *o, char *buf, size_t len) {
  const char *user = o->username ? o->username : "";
  const char *sep = (o->username || o->password) ? "@" : "";
  const char *pw = o->password ? ":***" : "";
  if (o->scheme == RX_SCHEME_UNIX) {
    rx__fmt(buf, len, "unix://%s%s%s%s?db=%d", user, pw, sep, o->path ? o->path : "", o->db);
  } else {
    int v6 = o->host && strchr(o->host, ':');
    rx__fmt(buf, len, "%s://%s%s%s%s%s%s:%d/%d", o->scheme == RX_SCHEME_TLS ? "rediss" : "redis",
            user, pw, sep, v6 ? "[" : "", o->host ? o->host : "", v6 ? "]" : "", o->port,
            o->db);
  }
}

const char *rx_url_redact(const char *url, char *buf, size_t buf_len) {
  rx_opts o;
  char err[160];
  if (!buf || !buf_len) return buf;
  if (rx__opts_parse(&o, url, err, sizeof err) != RX_OK) {
    /* A host list is a cluster URL, which only the cluster parser reads. */
    rx_cluster *c = rx__cluster_url(url) ? rx_cluster_new(url, NULL, 0) : NULL;
    if (c) {
      rx_cluster_describe(c, buf, buf_len);
      rx_cluster_free(c);
    } else {
      rx__fmt(buf, buf_len, "(invalid URL)");
    }
    return buf;
  }
  rx__opts_describe(&o, buf, buf_len);
  rx__opts_free(&o);
  return buf;
}
