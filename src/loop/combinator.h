/* What the four combinators share: a growable list of future references, the
 * set of dependents a combinator still waits for, and the check that a
 * combinator is the kind the caller says it is. */
#ifndef ER_LOOP_COMBINATOR_H
#define ER_LOOP_COMBINATOR_H

#include "loop/loop_internal.h"

typedef struct er__flist {
  er_future_t **items;
  size_t head, len, cap; /* items[head .. head+len) */
} er__flist_t;

int er__flist_push(er__flist_t *l, er_future_t *f); /* takes a reference */
er_future_t *er__flist_shift(er__flist_t *l);        /* gives the reference */
static inline er_future_t *er__flist_pop(er__flist_t *l) { /* the last; gives the reference */
  return l->len ? l->items[l->head + --l->len] : NULL;
}
static inline er_future_t *er__flist_at(const er__flist_t *l, size_t i) {
  return l->items[l->head + i];
}
void er__flist_clear(er__flist_t *l);

/* A set of futures by address (open addressing), one reference each. */
typedef struct er__fset {
  er_future_t **slots;
  size_t cap, len;
} er__fset_t;

/* The start of every combinator but SerialQueueFuture (ndb's _dependents and
 * _full). A dependent's callback refers to the combinator without a
 * reference; the combinator (or the loop, for a call queued to it) holds the
 * dependent until its outcome has arrived. So the combinator owns its
 * dependents and never the reverse: dropping the last reference to a
 * combinator frees it and lets go of dependents that never finished (a
 * reference each way was a cycle that leaked both). */
typedef struct er__comb {
  er_future_t base;
  er__fset_t deps; /* added with ER__DEP_SET, outcome not yet arrived */
  size_t pending;  /* dependents whose outcome has not arrived, all modes */
  bool full;       /* complete() or set_error() was called */
} er__comb_t;

/* How er__comb_add keeps a dependent until its outcome arrives. */
typedef enum er__dep_mode {
  /* In c->deps, one reference (ndb's set): waited for once however often it
   * is added before then. */
  ER__DEP_SET,
  /* Done, and just made by the combinator (putq): it cannot be there already,
   * and the call queued for it holds it. No set, no hashing. */
  ER__DEP_FRESH,
  /* Held by the caller's own list (MultiFuture's results): waited for once
   * while pending; a done one added twice is counted twice, which changes no
   * outcome of a MultiFuture. */
  ER__DEP_LISTED
} er__dep_mode_t;

/* Makes f a dependent of c, as ndb's add_callback does: f's outcome reaches
 * c->base.ops->dep_done from the loop, never inline, even when f is already
 * done. Returns 0 or ER_ENOMEM. */
int er__comb_add(er__comb_t *c, er_future_t *f, er__dep_mode_t mode);
/* putq(value): a new done future as an ER__DEP_FRESH dependent. */
int er__comb_put_int(er__comb_t *c, int64_t value);
/* Lets go of the dependents not heard from (the combinator's destroy); those
 * in listed (ER__DEP_LISTED ones) stay the list's. */
void er__comb_release(er__comb_t *c, const er__flist_t *listed);
/* complete()'s common part: ER_EALREADY when c is already full (ndb raises),
 * else marks it full and returns 0. */
int er__comb_fill(er__comb_t *c);

/* The combinator of that kind behind f, or NULL. */
#define ER__AS(type, kind_ops, f) \
  ((er_is_future(f) && (f)->ops == &(kind_ops)) ? (type *)(void *)(f) : NULL)

#endif
