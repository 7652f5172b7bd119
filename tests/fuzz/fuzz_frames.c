/* Fuzz target: the subscriber's framed input (conn.c "framing") against
 * hiredis alone. The first input byte picks a chunk size; the rest is the
 * byte stream a server sends, written to a socket pair in chunks of that
 * size and read by a framed connection the way the subscriber reads it:
 * messages in place, other frames as reply trees. Every event and reply it
 * yields must equal, in order, what a plain reader makes of the same bytes,
 * and it may yield nothing the plain reader does not. When the plain reader
 * reports a protocol error, the framed one reports it too or is still
 * waiting for the rest of a frame (it learns of hiredis's nesting limit
 * only once a frame is complete). Events must stay valid until unpinned,
 * though more is read meanwhile: they are checked again then. */
#include <hiredis/hiredis.h>
#include <reactis/sub.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rx_private.h"

#define MAX_ITEMS 4096

static int same_str(const rx_reply *r, const char *s, size_t n) {
  return r && r->type == RX_REPLY_STRING && r->len == n && !memcmp(r->str, s, n);
}

static int same_tree(const rx_reply *a, const rx_reply *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
  case RX_REPLY_ARRAY:
    if (a->elements != b->elements) return 0;
    for (size_t i = 0; i < a->elements; i++)
      if (!same_tree(a->element[i], b->element[i])) return 0;
    return 1;
  case RX_REPLY_INTEGER:
    return a->integer == b->integer;
  case RX_REPLY_NIL:
    return 1;
  default:
    return a->len == b->len && !memcmp(a->str, b->str, a->len);
  }
}

/* The plain reader's reply that an event read in place stands for. */
static int same_event(const rx_event *ev, const rx_reply *r) {
  if (ev->channel[ev->channel_len] || ev->data[ev->data_len]) return 0; /* NUL-terminated */
  if (r->type != RX_REPLY_ARRAY) return 0;
  if (ev->kind == RX_EV_PMESSAGE)
    return r->elements == 4 && same_str(r->element[0], "pmessage", 8) &&
           same_str(r->element[1], ev->pattern, ev->pattern_len) &&
           same_str(r->element[2], ev->channel, ev->channel_len) &&
           same_str(r->element[3], ev->data, ev->data_len);
  const char *k = ev->kind == RX_EV_SMESSAGE ? "smessage" : "message";
  return r->elements == 3 && same_str(r->element[0], k, strlen(k)) &&
         same_str(r->element[1], ev->channel, ev->channel_len) &&
         same_str(r->element[2], ev->data, ev->data_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 200000) return 0;
  size_t chunk = (size_t)data[0] * 7 + 1;
  const char *p = (const char *)data + 1;
  size_t len = size - 1;

  /* What hiredis alone makes of the stream. */
  static rx_reply *want[MAX_ITEMS];
  size_t nwant = 0;
  int want_err = 0;
  redisReader *rd = rx__reader_new();
  if (!rd) return 0;
  if (len && redisReaderFeed(rd, p, len) != REDIS_OK) abort();
  while (nwant < MAX_ITEMS) {
    void *obj = NULL;
    if (redisReaderGetReply(rd, &obj) != REDIS_OK) {
      want_err = 1;
      break;
    }
    if (!obj) break;
    want[nwant++] = obj;
  }
  rx__reader_free(rd);

  rx_opts o;
  rx_conn c;
  int sv[2];
  if (rx__opts_parse(&o, "redis://127.0.0.1", NULL, 0) != RX_OK) abort();
  if (rx__conn_init(&c, &o) != RX_OK) abort();
  rx__opts_free(&o);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) abort();
  c.fd = sv[0];
  c.framed = 1;
  c.raw = 0;
  c.reader = rx__reader_new();
  if (!c.reader) abort();

  static rx_event evs[MAX_ITEMS];
  static size_t ev_item[MAX_ITEMS];
  size_t nev = 0, got = 0, off = 0;
  int rc = RX_OK;
  for (;;) {
    /* Read everything complete, then give the socket the next chunk. */
    for (;;) {
      if (got >= MAX_ITEMS) goto out;
      rx_reply *r = NULL;
      if (rx__conn_msg(&c, &evs[nev])) {
        if (got >= nwant || !same_event(&evs[nev], want[got])) abort();
        ev_item[nev++] = got++;
        continue;
      }
      rc = rx__conn_buffered(&c, &r);
      if (rc == RX_TIMEOUT && !c.raw) {
        rc = rx__conn_wait_frame(&c, 0);
        if (rc == RX_OK) continue;
      } else if (rc == RX_TIMEOUT) {
        rc = rx__conn_read(&c, &r, 0);
      }
      if (rc != RX_OK) break;
      if (got >= nwant || !same_tree(r, want[got])) abort();
      rx_reply_free(r);
      got++;
    }
    if (rc < 0) break; /* a protocol error closed the link */
    if (off >= len) break;
    size_t n = len - off < chunk ? len - off : chunk;
    ssize_t w = write(sv[1], p + off, n);
    if (w <= 0) break; /* the socket is full: what was read is checked */
    off += (size_t)w;
  }
  if (rc == RX_EPROTO && !want_err) abort();
  if (rc != RX_EPROTO && !want_err && off >= len && got != nwant && nwant < MAX_ITEMS) abort();
out:
  /* The events still point at bytes that are theirs. */
  for (size_t i = 0; i < nev; i++)
    if (!same_event(&evs[i], want[ev_item[i]])) abort();
  rx__conn_unpin(&c);
  rx__conn_deinit(&c);
  close(sv[1]);
  for (size_t i = 0; i < nwant; i++) rx_reply_free(want[i]);
  return 0;
}
