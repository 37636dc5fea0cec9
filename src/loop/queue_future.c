/* QueueFuture (ndb): hands out its dependents' outcomes in the order they
 * finish. getq() futures wait for the next one; once complete() was called
 * and every dependent was handed out, getq() fails with ER_EEOF, or with the
 * queue's own error if it was given one. */
#include "loop/combinator.h"

typedef struct queue {
  er_future_t base;
  er__flist_t completed; /* finished, not yet taken */
  er__flist_t waiting;   /* getq() futures not yet given a value */
  size_t pending;
  bool full;
} queue_t;

static void destroy(er_future_t *f) {
  queue_t *q = (queue_t *)f;
  er__flist_clear(&q->completed);
  er__flist_clear(&q->waiting);
}
static const er__future_ops_t queue_ops = {destroy};

er_future_t *er_queue_future_new(er_loop_t *loop) {
  return loop ? er__future_alloc(loop, sizeof(queue_t), &queue_ops) : NULL;
}

static void fail_empty(queue_t *q, er_future_t *w) {
  if (q->base.err)
    er_future_set_error_obj(w, q->base.err);
  else
    er_future_set_error(w, ER_EEOF, "queue is empty");
}

static void mark_finished(queue_t *q) {
  if (!er_future_done(&q->base)) er_future_set_none(&q->base);
  er_future_t *w;
  while ((w = er__flist_shift(&q->waiting))) {
    fail_empty(q, w);
    er_future_unref(w);
  }
}

static void dep_done(er_future_t *f, void *arg) {
  queue_t *q = arg;
  q->pending--;
  er_future_t *w = er__flist_shift(&q->waiting);
  if (w) {
    er__future_copy_outcome(w, f);
    er_future_unref(w);
  } else if (er__flist_push(&q->completed, f) < 0) {
    er_log(ER_LOG_ERROR, "QueueFuture: out of memory; a result is lost");
  }
  if (q->full && q->pending == 0) mark_finished(q);
  er_future_unref(&q->base);
}

int er_queue_future_add_dependent(er_future_t *qf, er_future_t *f) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q || !er_is_future(f)) return ER_ENOTFUTURE;
  if (q->full) return ER_ESTATE;
  q->pending++;
  int rc = er_future_add_immediate_callback(f, dep_done, er_future_ref(qf));
  if (rc < 0) {
    q->pending--;
    er_future_unref(qf);
  }
  return rc;
}

int er_queue_future_putq_int(er_future_t *qf, int64_t value) {
  er_future_t *f = er_future_new_int(er_future_loop(qf), value);
  if (!f) return ER_ENOMEM;
  int rc = er_queue_future_add_dependent(qf, f);
  er_future_unref(f);
  return rc;
}

int er_queue_future_complete(er_future_t *qf) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q) return ER_ENOTFUTURE;
  q->full = true;
  if (q->pending == 0) mark_finished(q);
  return 0;
}

int er_queue_future_set_error(er_future_t *qf, int code, const char *fmt, ...) {
  queue_t *q = ER__AS(queue_t, queue_ops, qf);
  if (!q) return ER_ENOTFUTURE;
  q->full = true;
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(qf, code, fmt, ap);
  va_end(ap);
  if (q->pending == 0) mark_finished(q);
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
  } else if (q->full && q->pending == 0) {
    fail_empty(q, fut);
  } else if (er__flist_push(&q->waiting, fut) < 0) {
    er_future_unref(fut);
    return NULL;
  }
  return fut;
}
