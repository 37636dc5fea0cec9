/* A registry of definitions by name (named.h). */
#include <stdlib.h>
#include <string.h>

#include "core/named.h"
#include "errand/common.h"

int er__named_add(er__named_t *r, const void *item) {
  int rc = 0;
  const char *name = r->name(item);
  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; i < r->len; i++) {
    if (strcmp(r->name(r->items[i]), name) == 0) {
      rc = r->same(r->items[i], item) ? 0 : ER_EEXIST;
      goto out;
    }
  }
  if (r->len == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 32;
    const void **v = er_realloc(r->items, cap * sizeof *v);
    if (!v) {
      rc = ER_ENOMEM;
      goto out;
    }
    r->items = v;
    r->cap = cap;
  }
  r->items[r->len++] = item;
out:
  pthread_mutex_unlock(&r->lock);
  return rc;
}

const void *er__named_find(er__named_t *r, const char *name) {
  if (!name) return NULL;
  const void *d = NULL;
  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; i < r->len && !d; i++)
    if (strcmp(r->name(r->items[i]), name) == 0) d = r->items[i];
  pthread_mutex_unlock(&r->lock);
  return d;
}

/* qsort has no user data: the names are compared through a pair. */
typedef struct pair {
  const char *name;
  const void *item;
} pair_t;

static int by_name(const void *a, const void *b) {
  return strcmp(((const pair_t *)a)->name, ((const pair_t *)b)->name);
}

void er__named_foreach(er__named_t *r, void (*fn)(const void *item, void *ud), void *ud) {
  pthread_mutex_lock(&r->lock);
  size_t n = r->len;
  pair_t *copy = er_malloc((n ? n : 1) * sizeof *copy);
  for (size_t i = 0; copy && i < n; i++) copy[i] = (pair_t){r->name(r->items[i]), r->items[i]};
  pthread_mutex_unlock(&r->lock);
  if (!copy) return;
  qsort(copy, n, sizeof *copy, by_name);
  for (size_t i = 0; i < n; i++) fn(copy[i].item, ud);
  er_free(copy);
}
