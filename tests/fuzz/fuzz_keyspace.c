/* Fuzz target: keyspace channel parsing. The input is split at its first
 * 0x00 0x00 pair into channel and message. A parse either fails, or yields
 * pointers inside the inputs whose event and key are consistent with the
 * channel's shape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reactis/reactis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t split = size;
  for (size_t i = 0; i + 1 < size; i++)
    if (data[i] == 0 && data[i + 1] == 0) {
      split = i;
      break;
    }
  /* Copies, so reads past the lengths are caught by ASan. */
  char *ch = malloc(split ? split : 1), *msg = NULL;
  size_t mlen = split + 2 <= size ? size - split - 2 : 0;
  msg = malloc(mlen ? mlen : 1);
  if (!ch || !msg) goto out;
  memcpy(ch, data, split);
  if (mlen) memcpy(msg, data + split + 2, mlen);
  rx_key_event ke;
  if (rx_keyspace_parse(ch, split, msg, mlen, &ke) == RX_OK) {
    if (ke.db < 0 || ke.event_len == 0) abort();
    if (ke.space == RX_SPACE_KEYSPACE) {
      if (ke.event != msg || ke.event_len != mlen) abort();
      if (ke.key < ch || ke.key + ke.key_len != ch + split) abort();
    } else if (ke.space == RX_SPACE_KEYEVENT) {
      if (ke.key != msg || ke.key_len != mlen) abort();
      if (ke.event < ch || ke.event + ke.event_len != ch + split) abort();
    } else {
      abort();
    }
    int t = rx_key_event_type_of(ke.event, ke.event_len);
    if (t != ke.type) abort();
    if (t != RX_KEV_OTHER && strlen(rx_key_event_name(t)) != ke.event_len) abort();
  }
out:
  free(ch);
  free(msg);
  return 0;
}
