/* What the combinators share: a list of future references, used as a queue,
 * and the set of dependents a combinator waits for (ndb's _dependents): a set
 * by address, so a future added twice is waited for once, and the only owner
 * of the references that keep them alive (see er__comb_t). */
#include <stdint.h>
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

/* ---- dependents ---- */

static size_t home(const er__fset_t *s, const er_future_t *f) {
  uint64_t h = (uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15ull; /* Fibonacci hashing */
  return (size_t)(h >> 32) & (s->cap - 1);
}

static size_t slot_of(const er__fset_t *s, const er_future_t *f) {
  size_t i = home(s, f);
  while (s->slots[i] && s->slots[i] != f) i = (i + 1) & (s->cap - 1);
  return i;
}

static int fset_grow(er__fset_t *s) {
  er__fset_t n = {er_calloc(s->cap ? s->cap * 2 : 8, sizeof *n.slots), s->cap ? s->cap * 2 : 8, 0};
  if (!n.slots) return ER_ENOMEM;
  for (size_t i = 0; i < s->cap; i++)
    if (s->slots[i]) n.slots[slot_of(&n, s->slots[i])] = s->slots[i];
  n.len = s->len;
  er_free(s->slots);
  *s = n;
  return 0;
}

static bool fset_has(const er__fset_t *s, const er_future_t *f) {
  return s->len && s->slots[slot_of(s, f)] == f;
}

/* Takes f out, keeping its reference for the caller; false if absent. */
static bool fset_take(er__fset_t *s, er_future_t *f) {
  if (!s->len) return false;
  size_t i = slot_of(s, f), mask = s->cap - 1;
  if (s->slots[i] != f) return false;
  /* Backward-shift deletion: later members of the run move up into the hole
   * unless their home slot lies after it, so lookups never need tombstones. */
  for (size_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
    size_t k = home(s, s->slots[j]);
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      s->slots[i] = s->slots[j];
      i = j;
    }
  }
  s->slots[i] = NULL;
  s->len--;
  return true;
}

static void dep_signal(er_future_t *comb, void *arg) {
  er__comb_t *c = (er__comb_t *)comb;
  er_future_t *dep = arg;
  bool held = fset_take(&c->deps, dep); /* else the loop or a list holds it */
  c->pending--;
  er__future_observe(dep); /* the combinator takes its outcome on */
  comb->ops->dep_done(comb, dep);
  if (held) er_future_unref(dep);
}

/* Immediate, so it runs as dep completes; the work itself waits for the loop
 * (ndb queues the callback), which holds the combinator meanwhile. */
static void dep_fired(er_future_t *dep, void *arg) {
  er__comb_t *c = arg;
  if (er__loop_call_future_cb(c->base.loop, dep_signal, &c->base, dep) < 0)
    er_log(ER_LOG_ERROR, "combinator: out of memory; a dependent's outcome is lost");
}

int er__comb_add(er__comb_t *c, er_future_t *f, er__dep_mode_t mode) {
  if (mode == ER__DEP_FRESH) {
    int rc = er__loop_call_future_pair(c->base.loop, dep_signal, &c->base, f);
    if (rc == 0) c->pending++;
    return rc;
  }
  if (mode == ER__DEP_LISTED) {
    if (er__future_has_callback(f, dep_fired, c)) return 0; /* pending, waited for */
  } else {
    if (fset_has(&c->deps, f)) return 0; /* waited for once, as ndb's set */
    if ((c->deps.len + 1) * 2 > c->deps.cap && fset_grow(&c->deps) < 0) return ER_ENOMEM;
    c->deps.slots[slot_of(&c->deps, f)] = er_future_ref(f);
    c->deps.len++;
  }
  c->pending++;
  int rc = er_future_add_immediate_callback(f, dep_fired, c);
  if (rc < 0) {
    c->pending--;
    if (fset_take(&c->deps, f)) er_future_unref(f);
  }
  return rc;
}

int er__comb_put_int(er__comb_t *c, int64_t value) {
  er_future_t *f = er_future_new_int(c->base.loop, value);
  if (!f) return ER_ENOMEM;
  int rc = er__comb_add(c, f, ER__DEP_FRESH);
  er_future_unref(f);
  return rc;
}

void er__comb_release(er__comb_t *c, const er__flist_t *listed) {
  for (size_t i = 0; listed && i < listed->len; i++)
    er__future_remove_callback(er__flist_at(listed, i), dep_fired, c);
  for (size_t i = 0; i < c->deps.cap; i++) {
    er_future_t *f = c->deps.slots[i];
    if (!f) continue;
    c->deps.slots[i] = NULL;
    /* Still pending (a dependent whose signal is queued holds c alive, so
     * none is here): its callback must not reach the freed combinator. */
    er__future_remove_callback(f, dep_fired, c);
    er_future_unref(f);
  }
  er_free(c->deps.slots);
  c->deps = (er__fset_t){0};
}

int er__comb_fill(er__comb_t *c) {
  if (c->full) return ER_EALREADY;
  c->full = true;
  return 0;
}
