/* Fuzz target: decoding server replies. Bytes go through the reader the
 * connection uses (our reply objects on hiredis's parser) in two chunks,
 * and every reply is walked and freed; the error mapping and integer
 * helpers run on each. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rx_private.h"

static size_t walk(const rx_reply *r, int depth) {
  if (!r || depth > 64) return 0;
  size_t n = 1;
  long long v;
  (void)rx__reply_int(r, &v);
  (void)rx__reply_error_code(r);
  (void)rx__reply_is(r, "OK");
  if (r->type == RX_REPLY_STRING || r->type == RX_REPLY_STATUS || r->type == RX_REPLY_ERROR) {
    if (!r->str || r->str[r->len] != '\0') abort();
  }
  if (r->type == RX_REPLY_ARRAY)
    for (size_t i = 0; i < r->elements; i++) n += walk(r->element[i], depth + 1);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  redisReader *rd = rx__reader_new();
  if (!rd) return 0;
  size_t half = size / 2;
  const char *p = (const char *)data;
  for (int pass = 0; pass < 2; pass++) {
    size_t off = pass ? half : 0, len = pass ? size - half : half;
    if (len && redisReaderFeed(rd, p + off, len) != REDIS_OK) break;
    for (;;) {
      void *obj = NULL;
      if (redisReaderGetReply(rd, &obj) != REDIS_OK) goto done;
      if (!obj) break;
      walk(obj, 0);
      rx_reply_free(obj);
    }
  }
done:
  rx__reader_free(rd);
  return 0;
}
