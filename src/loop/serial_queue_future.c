/* SerialQueueFuture (ndb): hands out its dependents in insertion order, so a
 * getq() future may still be pending. complete() makes it done at once; getq()
 * after that, with nothing left, fails with ER_EEOF or the queue's own error. */
#include "loop/combinator.h"

typedef struct serial {
  er_future_t base;
  er__flist_t queue;   /* added, not yet taken */
  er__flist_t waiting; /* getq() futures handed out before their dependent came */
  bool full;
} serial_t;

static void destroy(er_future_t *f) {
  serial_t *s = (serial_t *)f;
  er__flist_clear(&s->queue);
  er__flist_clear(&s->waiting);
}
static const er__future_ops_t serial_ops = {destroy, NULL, NULL};

er_future_t *er_serial_queue_future_new(er_loop_t *loop) {
  return loop ? er__future_alloc(loop, sizeof(serial_t), &serial_ops) : NULL;
}

static void fail_waiting(serial_t *s) {
  er_future_t *w;
  while ((w = er__flist_shift(&s->waiting))) {
    if (s->base.err)
      er_future_set_error_obj(w, s->base.err);
    else
      er_future_set_error(w, ER_EEOF, "queue is empty");
    er_future_unref(w);
  }
}

int er_serial_queue_future_add_dependent(er_future_t *sf, er_future_t *f) {
  serial_t *s = ER__AS(serial_t, serial_ops, sf);
  if (!s || !er_is_future(f)) return ER_ENOTFUTURE;
  if (s->full) return ER_ESTATE;
  er_future_t *w = er__flist_shift(&s->waiting);
  if (!w) return er__flist_push(&s->queue, f);
  int rc = er_future_set_from(w, f);
  er_future_unref(w);
  return rc;
}

int er_serial_queue_future_putq_int(er_future_t *sf, int64_t value) {
  er_future_t *f = er_future_new_int(er_future_loop(sf), value);
  if (!f) return ER_ENOMEM;
  int rc = er_serial_queue_future_add_dependent(sf, f);
  er_future_unref(f);
  return rc;
}

int er_serial_queue_future_complete(er_future_t *sf) {
  serial_t *s = ER__AS(serial_t, serial_ops, sf);
  if (!s) return ER_ENOTFUTURE;
  if (s->full) return ER_EALREADY; /* ndb raises */
  s->full = true;
  fail_waiting(s);
  if (!er_future_done(sf)) er_future_set_none(sf);
  return 0;
}

int er_serial_queue_future_set_error(er_future_t *sf, int code, const char *fmt, ...) {
  serial_t *s = ER__AS(serial_t, serial_ops, sf);
  if (!s) return ER_ENOTFUTURE;
  s->full = true;
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(sf, code, fmt, ap);
  va_end(ap);
  fail_waiting(s);
  return rc;
}

er_future_t *er_serial_queue_future_getq(er_future_t *sf) {
  serial_t *s = ER__AS(serial_t, serial_ops, sf);
  if (!s) return NULL;
  er_future_t *f = er__flist_shift(&s->queue);
  if (f) return f; /* the queue's reference becomes the caller's */
  f = er_future_new(sf->loop);
  if (!f) return NULL;
  if (s->full) {
    if (sf->err)
      er_future_set_error_obj(f, sf->err);
    else
      er_future_set_error(f, ER_EEOF, "queue is empty");
  } else if (er__flist_push(&s->waiting, f) < 0) {
    er_future_unref(f);
    return NULL;
  }
  return f;
}
