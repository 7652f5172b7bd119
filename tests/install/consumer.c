#include <reactis/reactis.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  rx_key_event ke;
  int rc = rx_keyspace_parse("__keyevent@0__:expired", 22, "k", 1, &ke);
  printf("reactis %s: %s\n", rx_version(), rc == RX_OK ? "ok" : rx_errname(rc));
  return rc == RX_OK && strcmp(rx_version(), RX_VERSION_STRING) == 0 ? 0 : 1;
}
