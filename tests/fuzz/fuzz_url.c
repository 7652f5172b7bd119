/* Fuzz target: URL and option parsing. Any input either parses into options
 * whose description never contains the password, or is refused with a
 * message; nothing crashes or leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rx_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *url = malloc(size + 1);
  if (!url) return 0;
  memcpy(url, data, size);
  url[size] = '\0';
  rx_opts o;
  char err[256], desc[1024];
  if (rx__opts_parse(&o, url, err, sizeof err) == RX_OK) {
    rx__opts_describe(&o, desc, sizeof desc);
    /* The description must not depend on the password at all. */
    char desc2[1024];
    char *pw = o.password;
    o.password = pw ? (char *)"another-password" : NULL;
    rx__opts_describe(&o, desc2, sizeof desc2);
    o.password = pw;
    if (strcmp(desc, desc2) != 0) abort();
    rx__opts_free(&o);
  } else if (!err[0]) {
    abort(); /* every refusal says why */
  }
  rx_url_redact(url, desc, sizeof desc);
  free(url);
  return 0;
}
