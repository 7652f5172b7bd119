/* nameset.c — what the subscribers share: a set of binary-safe names (the
 * wanted subscriptions), a FIFO of replies (received, not yet delivered),
 * and the reading of a message reply into an rx_event. Used by sub.c and
 * cluster_sub.c. */
#include <string.h>

#include "rx_private.h"

int rx__set_find(const rx__name_set *ns, const char *p, size_t n) {
  for (size_t i = 0; i < ns->count; i++)
    if (ns->lens[i] == n && (n == 0 || memcmp(ns->names[i], p, n) == 0)) return (int)i;
  return -1;
}

int rx__set_put(rx__name_set *ns, const char *p, size_t n, int allow_dup) {
  if (!allow_dup && rx__set_find(ns, p, n) >= 0) return 0;
  if (ns->count == ns->cap) {
    size_t cap = ns->cap ? ns->cap * 2 : 8;
    char **names = rx__realloc(ns->names, cap * sizeof *names);
    if (!names) return RX_ENOMEM;
    ns->names = names;
    size_t *lens = rx__realloc(ns->lens, cap * sizeof *lens);
    if (!lens) return RX_ENOMEM;
    ns->lens = lens;
    ns->cap = cap;
  }
  char *d = rx__memdup(p ? p : "", n);
  if (!d) return RX_ENOMEM;
  ns->names[ns->count] = d;
  ns->lens[ns->count] = n;
  ns->count++;
  return 1;
}

void rx__set_remove_at(rx__name_set *ns, size_t i) {
  rx__free(ns->names[i]);
  ns->names[i] = ns->names[ns->count - 1];
  ns->lens[i] = ns->lens[ns->count - 1];
  ns->count--;
}

void rx__set_clear(rx__name_set *ns) {
  while (ns->count) rx__set_remove_at(ns, ns->count - 1);
}

void rx__set_free(rx__name_set *ns) {
  rx__set_clear(ns);
  rx__free(ns->names);
  rx__free(ns->lens);
  memset(ns, 0, sizeof *ns);
}

int rx__fifo_push(rx__reply_fifo *f, rx_reply *r) {
  if (f->count == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 64;
    rx_reply **items = rx__malloc(cap * sizeof *items);
    if (!items) return RX_ENOMEM;
    for (size_t i = 0; i < f->count; i++) items[i] = f->items[(f->head + i) % f->cap];
    rx__free(f->items);
    f->items = items;
    f->head = 0;
    f->cap = cap;
  }
  f->items[(f->head + f->count) % f->cap] = r;
  f->count++;
  return RX_OK;
}

rx_reply *rx__fifo_pop(rx__reply_fifo *f) {
  if (!f->count) return NULL;
  rx_reply *r = f->items[f->head];
  f->head = (f->head + 1) % f->cap;
  f->count--;
  return r;
}

/* A message, pmessage or smessage reply (already checked by the caller) into
 * an event borrowing the reply's strings. */
void rx__fill_event(rx_event *ev, const rx_reply *r) {
  memset(ev, 0, sizeof *ev);
  const rx_reply *k = r->element[0];
  size_t i = 1;
  if (k->len == 8 && k->str[0] == 'p') {
    ev->kind = RX_EV_PMESSAGE;
    ev->pattern = r->element[1]->str;
    ev->pattern_len = r->element[1]->len;
    i = 2;
  } else {
    ev->kind = k->str[0] == 's' ? RX_EV_SMESSAGE : RX_EV_MESSAGE;
  }
  ev->channel = r->element[i]->str;
  ev->channel_len = r->element[i]->len;
  ev->data = r->element[i + 1]->str;
  ev->data_len = r->element[i + 1]->len;
  if (!ev->channel) ev->channel = "";
  if (!ev->data) ev->data = "";
}
