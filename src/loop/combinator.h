/* What the four combinators share: a growable list of future references,
 * and the check that a combinator is the kind the caller says it is. */
#ifndef ER_LOOP_COMBINATOR_H
#define ER_LOOP_COMBINATOR_H

#include "loop/loop_internal.h"

typedef struct er__flist {
  er_future_t **items;
  size_t head, len, cap; /* items[head .. head+len) */
} er__flist_t;

int er__flist_push(er__flist_t *l, er_future_t *f); /* takes a reference */
er_future_t *er__flist_shift(er__flist_t *l);        /* gives the reference */
static inline er_future_t *er__flist_at(const er__flist_t *l, size_t i) {
  return l->items[l->head + i];
}
void er__flist_clear(er__flist_t *l);

/* The combinator of that kind behind f, or NULL. */
#define ER__AS(type, kind_ops, f) \
  ((er_is_future(f) && (f)->ops == &(kind_ops)) ? (type *)(void *)(f) : NULL)

#endif
