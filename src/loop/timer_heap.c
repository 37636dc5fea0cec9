/* The loop's timers: a binary min-heap ordered by (when, seq). seq is a
 * per-loop counter, so timers due at the same time run in the order they were
 * made, as ndb's event queue does. Each timer knows its index, so cancelling
 * is O(log n). */
#include <stdint.h>

#include "loop/loop_internal.h"

/* The keys live in the heap's own array beside the pointer, so comparisons
 * stay in one cache-friendly array instead of chasing timers that may sit on
 * a million different pages (a sleeping tasklet's timer is in its stack). */
static bool before(const er__heap_item_t *a, const er__heap_item_t *b) {
  return a->when_ns < b->when_ns || (a->when_ns == b->when_ns && a->seq < b->seq);
}

static void place(er__heap_t *h, size_t i, er__heap_item_t it) {
  h->items[i] = it;
  it.t->index = i;
}

static void sift_up(er__heap_t *h, size_t i) {
  er__heap_item_t it = h->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(&it, &h->items[parent])) break;
    place(h, i, h->items[parent]);
    i = parent;
  }
  place(h, i, it);
}

static void sift_down(er__heap_t *h, size_t i) {
  er__heap_item_t it = h->items[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->len) break;
    if (child + 1 < h->len && before(&h->items[child + 1], &h->items[child])) child++;
    if (!before(&h->items[child], &it)) break;
    place(h, i, h->items[child]);
    i = child;
  }
  place(h, i, it);
}

int er__heap_push(er__heap_t *h, er_timer_t *t) {
  if (h->len == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    er__heap_item_t *items = er_realloc(h->items, cap * sizeof *items);
    if (!items) return ER_ENOMEM;
    h->items = items;
    h->cap = cap;
  }
  h->items[h->len] = (er__heap_item_t){t->when_ns, t->seq, t};
  sift_up(h, h->len++);
  return 0;
}

er_timer_t *er__heap_pop(er__heap_t *h) {
  if (!h->len) return NULL;
  er_timer_t *top = h->items[0].t;
  er__heap_remove(h, top);
  return top;
}

void er__heap_remove(er__heap_t *h, er_timer_t *t) {
  size_t i = t->index;
  if (i >= h->len || h->items[i].t != t) return;
  t->index = SIZE_MAX;
  er__heap_item_t last = h->items[--h->len];
  if (i == h->len) return;
  place(h, i, last);
  if (i > 0 && before(&last, &h->items[(i - 1) / 2]))
    sift_up(h, i);
  else
    sift_down(h, i);
}

void er__heap_free(er__heap_t *h) {
  for (size_t i = 0; i < h->len; i++) {
    er_timer_t *t = h->items[i].t;
    if (t->drop) t->drop(t->arg);
    if (!t->embedded) er_free(t);
  }
  er_free(h->items);
  h->items = NULL;
  h->len = h->cap = 0;
}
