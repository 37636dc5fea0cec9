/* QueueFuture (ndb): hands out its dependents' outcomes in the order they
 * finish. getq() futures wait for the next one; once complete() was called
 * and every dependent was handed out, getq() fails with ER_EEOF, or with the
 * queue's own error if it was given one. */
#include <string.h>

#include "loop/combinator.h"

typedef struct queue {
  er__comb_t c;
  er__flist_t completed; /* finished, not yet taken */
  /* getq() futures not yet given a value, without a reference: each holds
   * the queue instead (its source), so a waiter keeps the queue alive and the
   * queue never keeps a waiter. */
  er__flist_t waiting;
} queue_t;

static void destroy(er_future_t *f) {
  queue_t *q = (queue_t *)f;
  er__comb_release(&q->c, NULL);
  er__flist_clear(&q->completed);
  er_free(q->waiting.items); /* empty: a waiter would have held q */
}
static void dep_done(er_future_t *qf, er_future_t *f);

static bool forget(er_future_t *qf, er_future_t *w) {
  er__flist_t *l = &((queue_t *)qf)->waiting;
  for (size_t i = 0; i < l->len; i++) {
    if (er__flist_at(l, i) != w) continue;
    memmove(l->items + l->head + i, l->items + l->head + i + 1, (l->len - i - 1) * sizeof *l->items);
    l->len--;
    return true;
  }
  return false;
}
static const er__future_ops_t queue_ops = {destroy, dep_done, forget};

er_future_t *er_queue_future_new(er_loop_t *loop) {
  return loop ? er__future_alloc(loop, sizeof(queue_t), &queue_ops) : NULL;
}

static void fail_empty(queue_t *q, er_future_t *w) {
  if (q->c.base.err)
    er_future_set_error_obj(w, q->c.base.err);
  else
    er_future_set_error(w, ER_EEOF, "queue is empty");
}

static void mark_finished(queue_t *q) {
  if (!er_future_done(&q->c.base)) er_future_set_none(&q->c.base);
  er_future_t *w;
  while ((w = er__flist_shift(&q->waiting))) {
    er_future_t *held = w->source; /* q itself; its caller holds it too */
    w->source = NULL;
    fail_empty(q, w);
    er_future_unref(held);
  }
}

static void dep_done(er_future_t *qf, er_future_t *f) {
  queue_t *q = (queue_t *)qf;
  er_future_t *w = er__flist_shift(&q->waiting);
  if (w) {
    er__future_take_from(w, f);
  } else if (er__flist_push(&q->completed, f) < 0) {
    er_log(ER_LOG_ERROR, "QueueFuture: out of memory; a result is lost");
  }
  if (q->c.full && q->c.pending == 0) mark_finished(q);
}

/* As ndb: a future already waited for is not added again, so it is handed
 * out once. */
int er_queue_future_add_dependent(er_future_t *qf, er_future_t *f) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q || !er_is_future(f)) return ER_ENOTFUTURE;
  if (q->c.full) return ER_ESTATE;
  return er__comb_add(&q->c, f, ER__DEP_SET);
}

int er_queue_future_putq_int(er_future_t *qf, int64_t value) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q) return ER_ENOTFUTURE;
  if (q->c.full) return ER_ESTATE;
  return er__comb_put_int(&q->c, value);
}

int er_queue_future_complete(er_future_t *qf) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q) return ER_ENOTFUTURE;
  int rc = er__comb_fill(&q->c);
  if (rc == 0 && q->c.pending == 0) mark_finished(q);
  return rc;
}

int er_queue_future_set_error(er_future_t *qf, int code, const char *fmt, ...) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q) return ER_ENOTFUTURE;
  q->c.full = true;
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(qf, code, fmt, ap);
  va_end(ap);
  if (q->c.pending == 0) mark_finished(q);
  return rc;
}

er_future_t *er_queue_future_getq(er_future_t *qf) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q) return NULL;
  er_future_t *fut = er_future_new(qf->loop);
  if (!fut) return NULL;
  er_future_t *pf = er__flist_shift(&q->completed);
  if (pf) {
    er__future_copy_outcome(fut, pf);
    er_future_unref(pf);
  } else if (q->c.full && q->c.pending == 0) {
    fail_empty(q, fut);
  } else if (er__flist_push(&q->waiting, fut) < 0) {
    er_future_unref(fut);
    return NULL;
  } else {
    er_future_unref(fut); /* the list's entry is weak: see queue_t */
    fut->source = er_future_ref(qf);
  }
  return fut;
}
