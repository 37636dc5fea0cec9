/* MultiFuture (ndb): collects dependents in insertion order and is done when
 * complete() was called and every dependent is done: with the list of them,
 * or with the first error in insertion order. */
#include "loop/combinator.h"

typedef struct multi {
  er__comb_t c;
  er__flist_t results; /* every dependent added, in order (ndb's _results) */
} multi_t;

static void destroy(er_future_t *f) {
  multi_t *m = (multi_t *)f;
  er__comb_release(&m->c, &m->results);
  er__flist_clear(&m->results);
}
static void dep_done(er_future_t *f, er_future_t *dep);
static const er__future_ops_t multi_ops = {destroy, dep_done, NULL};

er_future_t *er_multi_future_new(er_loop_t *loop) {
  return loop ? er__future_alloc(loop, sizeof(multi_t), &multi_ops) : NULL;
}

static void finish(multi_t *m) {
  if (er_future_done(&m->c.base)) return;
  for (size_t i = 0; i < m->results.len; i++) {
    er_future_t *d = er__flist_at(&m->results, i);
    if (d->err) {
      er_future_set_error_obj(&m->c.base, d->err);
      return;
    }
  }
  er_future_set_none(&m->c.base);
}

static void dep_done(er_future_t *f, er_future_t *dep) {
  (void)dep;
  multi_t *m = (multi_t *)f;
  if (m->c.pending == 0 && m->c.full) finish(m);
}

int er_multi_future_add_dependent(er_future_t *mf, er_future_t *f) {
  multi_t *m = ER__AS(multi_t, multi_ops, mf);
  if (!m || !er_is_future(f)) return ER_ENOTFUTURE;
  if (m->c.full || er_future_done(mf)) return ER_ESTATE;
  int rc = er__flist_push(&m->results, f);
  if (rc < 0) return rc;
  rc = er__comb_add(&m->c, f, ER__DEP_LISTED);
  if (rc < 0) er_future_unref(er__flist_pop(&m->results));
  return rc;
}

int er_multi_future_putq_int(er_future_t *mf, int64_t value) {
  er_future_t *f = er_future_new_int(er_future_loop(mf), value);
  if (!f) return ER_ENOMEM;
  int rc = er_multi_future_add_dependent(mf, f);
  er_future_unref(f);
  return rc;
}

int er_multi_future_complete(er_future_t *mf) {
  multi_t *m = ER__AS(multi_t, multi_ops, mf);
  if (!m) return ER_ENOTFUTURE;
  int rc = er__comb_fill(&m->c);
  if (rc == 0 && m->c.pending == 0) finish(m);
  return rc;
}

int er_multi_future_set_error(er_future_t *mf, int code, const char *fmt, ...) {
  multi_t *m = ER__AS(multi_t, multi_ops, mf);
  if (!m) return ER_ENOTFUTURE;
  m->c.full = true;
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(mf, code, fmt, ap);
  va_end(ap);
  return rc;
}

static const multi_t *list_of(const er_future_t *f) {
  if (!er_is_future(f) || !er_future_done(f) || f->err) return NULL;
  const er_future_t *r = er__future_resolve(f);
  return r->ops == &multi_ops ? (const multi_t *)r : NULL;
}

size_t er_future_list_len(const er_future_t *f) {
  const multi_t *m = list_of(f);
  return m ? m->results.len : 0;
}

er_future_t *er_future_list_at(const er_future_t *f, size_t i) {
  const multi_t *m = list_of(f);
  return m && i < m->results.len ? er__flist_at(&m->results, i) : NULL;
}
