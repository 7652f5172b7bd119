/* resp.c — RESP replies and commands, on hiredis's reader and formatter.
 *
 * hiredis parses; we build the objects. Our reply functions allocate each
 * string reply in one block (struct + bytes) and each array with its element
 * table inline, through the library's allocator, so a pub/sub message costs
 * four allocations and the public rx_reply does not depend on the layout of
 * hiredis's redisReply (which changed between 0.14 and 1.x). */
#include "rx_private.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* Array element tables. hiredis announces an array's length before its
 * elements arrive, and a hostile or broken peer can announce two billion.
 * So the table is never allocated at the announced size: it starts with room
 * for at most INLINE_SLOTS (inside the reply's own block) and doubles as
 * elements actually arrive, so memory follows the bytes received. `elements`
 * counts the elements attached so far (all of them once the reply is
 * complete), which also makes freeing a half-received array safe. */
#define INLINE_SLOTS 16

static rx_reply **inline_slots(rx_reply *r) { return (rx_reply **)(r + 1); }

/* Capacity of an array's table holding n elements (n > INLINE_SLOTS). */
static size_t table_cap(size_t n) {
  size_t cap = INLINE_SLOTS;
  while (cap < n) cap *= 2;
  return cap;
}

static int attach(const redisReadTask *task, rx_reply *r) {
  if (!task->parent) return 0;
  rx_reply *parent = task->parent->obj;
  size_t idx = (size_t)task->idx;
  if (idx >= INLINE_SLOTS && idx == table_cap(idx)) {
    /* The table is full: double it (moving out of the inline slots first). */
    size_t cap = idx * 2;
    rx_reply **t;
    if (parent->element == inline_slots(parent)) {
      t = rx__malloc(cap * sizeof *t);
      if (t) memcpy(t, parent->element, idx * sizeof *t);
    } else {
      t = rx__realloc(parent->element, cap * sizeof *t);
    }
    if (!t) return -1;
    parent->element = t;
  }
  parent->element[idx] = r;
  parent->elements = idx + 1;
  return 0;
}

static void *create_string(const redisReadTask *task, char *str, size_t len) {
  rx_reply *r = rx__malloc(sizeof *r + len + 1);
  if (!r) return NULL;
  memset(r, 0, sizeof *r);
  r->type = task->type;
  r->str = (char *)(r + 1);
  r->len = len;
  if (len) memcpy(r->str, str, len);
  r->str[len] = '\0';
  if (attach(task, r) != 0) {
    rx__free(r);
    return NULL;
  }
  return r;
}

#if HIREDIS_MAJOR >= 1
static void *create_array(const redisReadTask *task, size_t n) {
#else
static void *create_array(const redisReadTask *task, int n) {
#endif
  size_t count = n > 0 ? (size_t)n : 0;
  size_t slots = count < INLINE_SLOTS ? count : INLINE_SLOTS;
  rx_reply *r = rx__malloc(sizeof *r + slots * sizeof(rx_reply *));
  if (!r) return NULL;
  memset(r, 0, sizeof *r);
  r->type = RX_REPLY_ARRAY;
  r->elements = 0; /* grows as elements arrive: see attach() */
  r->element = count ? inline_slots(r) : NULL;
  if (attach(task, r) != 0) {
    rx__free(r);
    return NULL;
  }
  return r;
}

static void *create_integer(const redisReadTask *task, long long v) {
  rx_reply *r = rx__calloc(1, sizeof *r);
  if (!r) return NULL;
  r->type = RX_REPLY_INTEGER;
  r->integer = v;
  if (attach(task, r) != 0) {
    rx__free(r);
    return NULL;
  }
  return r;
}

static void *create_nil(const redisReadTask *task) {
  rx_reply *r = rx__calloc(1, sizeof *r);
  if (!r) return NULL;
  r->type = RX_REPLY_NIL;
  if (attach(task, r) != 0) {
    rx__free(r);
    return NULL;
  }
  return r;
}

void rx_reply_free(rx_reply *r) {
  if (!r) return;
  if (r->type == RX_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; i++) rx_reply_free(r->element[i]);
    if (r->element && r->element != inline_slots(r)) rx__free(r->element);
  }
  rx__free(r);
}

static void free_object(void *p) { rx_reply_free(p); }

static redisReplyObjectFunctions rx__reply_fns = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createNil = create_nil,
    .freeObject = free_object,
};

redisReader *rx__reader_new(void) {
  redisReader *r = redisReaderCreateWithFunctions(&rx__reply_fns);
  /* Keep up to 1 MiB of read buffer between replies: a burst of pub/sub
   * messages should not make hiredis shrink and regrow it constantly. */
  if (r) r->maxbuf = 1024 * 1024;
  return r;
}

void rx__reader_free(redisReader *r) {
  if (r) redisReaderFree(r);
}

int rx__format_command(rx_buf *b, int argc, const char *const *argv,
                       const size_t *argvlen) {
  if (argc <= 0 || !argv) return RX_EINVAL;
  size_t *lens = NULL;
  if (!argvlen) {
    lens = rx__malloc(sizeof *lens * (size_t)argc);
    if (!lens) return RX_ENOMEM;
    for (int i = 0; i < argc; i++) lens[i] = argv[i] ? strlen(argv[i]) : 0;
    argvlen = lens;
  }
  for (int i = 0; i < argc; i++) {
    if (!argv[i] && argvlen[i]) {
      rx__free(lens);
      return RX_EINVAL;
    }
  }
  /* Encode directly into our buffer: "*N\r\n" then "$len\r\n<bytes>\r\n"
   * per argument. This is exactly what redisFormatCommandArgv produces,
   * without its temporary allocation per command (hot on pipelines). */
  char hdr[32];
  int rc = RX_OK;
  int n = snprintf(hdr, sizeof hdr, "*%d\r\n", argc);
  rc = rx__buf_append(b, hdr, (size_t)n);
  for (int i = 0; rc == RX_OK && i < argc; i++) {
    n = snprintf(hdr, sizeof hdr, "$%zu\r\n", argvlen[i]);
    rc = rx__buf_append(b, hdr, (size_t)n);
    if (rc == RX_OK && argvlen[i]) rc = rx__buf_append(b, argv[i], argvlen[i]);
    if (rc == RX_OK) rc = rx__buf_append(b, "\r\n", 2);
  }
  rx__free(lens);
  return rc;
}

static int starts(const rx_reply *r, const char *p) {
  size_t n = strlen(p);
  return r->len >= n && memcmp(r->str, p, n) == 0 &&
         (r->len == n || r->str[n] == ' ');
}

int rx__reply_error_code(const rx_reply *r) {
  if (!r || r->type != RX_REPLY_ERROR) return RX_OK;
  /* Before Redis 7.0 an error that a command raised inside a script came
   * wrapped: "ERR Error running script (call to f_<sha>): @user_script:53:
   * @user_script: 53: -OOM command not allowed ...". Its own code (after
   * the last ": -") is what it means: a full server is RX_EOOM there too. */
  static const char wrapped[] = "ERR Error running script";
  if (r->len > sizeof wrapped && memcmp(r->str, wrapped, sizeof wrapped - 1) == 0) {
    const char *inner = NULL;
    for (size_t i = 0; i + 3 < r->len; i++)
      if (r->str[i] == ':' && r->str[i + 1] == ' ' && r->str[i + 2] == '-') inner = r->str + i + 3;
    if (inner) {
      rx_reply view = *r;
      view.str = (char *)inner;
      view.len = r->len - (size_t)(inner - r->str);
      int code = rx__reply_error_code(&view);
      if (code != RX_EREPLY) return code;
    }
    return RX_EREPLY;
  }
  if (starts(r, "WRONGTYPE")) return RX_EWRONGTYPE;
  if (starts(r, "NOPERM")) return RX_ENOPERM;
  if (starts(r, "OOM")) return RX_EOOM;
  if (starts(r, "NOSCRIPT")) return RX_ENOSCRIPT;
  if (starts(r, "READONLY")) return RX_EREADONLY;
  if (starts(r, "LOADING")) return RX_ELOADING;
  if (starts(r, "BUSY")) return RX_EBUSY;
  if (starts(r, "NOAUTH") || starts(r, "WRONGPASS")) return RX_EAUTH;
  if (r->len >= 22 && !memcmp(r->str, "ERR invalid password", 20)) return RX_EAUTH;
  return RX_EREPLY;
}

int rx__reply_is(const rx_reply *r, const char *s) {
  if (!r || (r->type != RX_REPLY_STRING && r->type != RX_REPLY_STATUS)) return 0;
  size_t n = strlen(s);
  return r->len == n && memcmp(r->str, s, n) == 0;
}

int rx__reply_int(const rx_reply *r, long long *out) {
  if (!r) return RX_EPROTO;
  if (r->type == RX_REPLY_INTEGER) {
    *out = r->integer;
    return RX_OK;
  }
  if (r->type == RX_REPLY_STRING || r->type == RX_REPLY_STATUS) {
    char *end;
    if (!r->len || r->len > 21) return RX_EPROTO;
    long long v = strtoll(r->str, &end, 10);
    if (end != r->str + r->len) return RX_EPROTO;
    *out = v;
    return RX_OK;
  }
  return RX_EPROTO;
}
