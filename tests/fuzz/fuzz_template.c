/* Fuzz target: key templates. The input is split at its first 0x00 0x00
 * pair into template and name. A compiled template must format its own
 * captures back into exactly the matched name, and its glob must not be
 * shorter than its literal text. */
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
  size_t nlen = split + 2 <= size ? size - split - 2 : 0;
  char *name = malloc(nlen ? nlen : 1);
  if (!name) return 0;
  if (nlen) memcpy(name, data + split + 2, nlen);
  char err[256];
  rx_template *t = rx_template_new((const char *)data, split, err, sizeof err);
  if (t) {
    size_t n = rx_template_count(t);
    rx_capture *caps = calloc(n ? n : 1, sizeof *caps);
    if (caps && rx_template_match(t, name, nlen, caps, n) == RX_OK) {
      const char **vals = calloc(n ? n : 1, sizeof *vals);
      size_t *lens = calloc(n ? n : 1, sizeof *lens);
      for (size_t i = 0; vals && lens && i < n; i++) {
        if (caps[i].len == 0 || caps[i].ptr < name || caps[i].ptr + caps[i].len > name + nlen)
          abort();
        vals[i] = caps[i].ptr;
        lens[i] = caps[i].len;
      }
      char *out = NULL;
      size_t olen = 0;
      if (vals && lens) {
        if (rx_template_format(t, vals, lens, n, &out, &olen) != RX_OK) abort();
        if (olen != nlen || memcmp(out, name, nlen) != 0) abort();
      }
      rx_free(out);
      free(vals);
      free(lens);
    }
    free(caps);
    rx_template_free(t);
  } else if (!err[0]) {
    abort();
  }
  free(name);
  return 0;
}
