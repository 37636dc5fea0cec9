/* A list of future references, used as a queue by the combinators. */
#include <string.h>

#include "loop/combinator.h"

int er__flist_push(er__flist_t *l, er_future_t *f) {
  if (l->head + l->len == l->cap) {
    if (l->head > l->cap / 2) {
      memmove(l->items, l->items + l->head, l->len * sizeof *l->items);
      l->head = 0;
    } else {
      size_t cap = l->cap ? l->cap * 2 : 8;
      er_future_t **items = er_realloc(l->items, cap * sizeof *items);
      if (!items) return ER_ENOMEM;
      l->items = items;
      l->cap = cap;
    }
  }
  l->items[l->head + l->len++] = er_future_ref(f);
  return 0;
}

er_future_t *er__flist_shift(er__flist_t *l) {
  if (!l->len) return NULL;
  er_future_t *f = l->items[l->head++];
  if (--l->len == 0) l->head = 0;
  return f;
}

void er__flist_clear(er__flist_t *l) {
  for (size_t i = 0; i < l->len; i++) er_future_unref(l->items[l->head + i]);
  er_free(l->items);
  memset(l, 0, sizeof *l);
}
