/* ReducingFuture (ndb): reduces its dependents' values in batches as they
 * finish, feeding each reduction back in, and reduces what is left at the
 * end. The reducer completes an output future, now or later. */
#include "loop/combinator.h"

typedef struct reducing {
  er__comb_t c;
  er_reducer_fn reducer;
  void *ud;
  size_t batch;
  er__flist_t queue; /* done futures whose values await reduction */
} reducing_t;

static void destroy(er_future_t *f) {
  reducing_t *r = (reducing_t *)f;
  er__comb_release(&r->c, NULL);
  er__flist_clear(&r->queue);
}
static void dep_done(er_future_t *rf, er_future_t *f);
static const er__future_ops_t reducing_ops = {destroy, dep_done, NULL};

er_future_t *er_reducing_future_new(er_loop_t *loop, er_reducer_fn reducer, void *ud,
                                    size_t batch_size) {
  if (!loop || !reducer) return NULL;
  reducing_t *r = (reducing_t *)er__future_alloc(loop, sizeof(reducing_t), &reducing_ops);
  if (!r) return NULL;
  r->reducer = reducer;
  r->ud = ud;
  r->batch = batch_size ? batch_size : 20;
  return &r->c.base;
}

static void fail(reducing_t *r, int code, const char *msg) {
  er__flist_clear(&r->queue);
  er_future_set_error(&r->c.base, code, "%s", msg);
}

/* Reduces everything queued into one new dependent. */
static void reduce_queue(reducing_t *r) {
  er_future_t *out = er_future_new(r->c.base.loop);
  if (!out) return fail(r, ER_ENOMEM, "ReducingFuture: out of memory");
  er__flist_t todo = r->queue;
  r->queue = (er__flist_t){0};
  int rc = r->reducer(r->ud, todo.items + todo.head, todo.len, out);
  er__flist_clear(&todo);
  if (rc < 0) {
    er_future_unref(out);
    er_error_t *e = er_last_error();
    if (e && e->code == rc)
      er_future_set_error_obj(&r->c.base, e);
    else
      fail(r, rc, er_strerror(rc));
    return;
  }
  /* A reducer that answered at once made a fresh done future: no set. */
  er__dep_mode_t mode = er_future_done(out) ? ER__DEP_FRESH : ER__DEP_SET;
  if (er__comb_add(&r->c, out, mode) < 0) fail(r, ER_ENOMEM, "ReducingFuture: out of memory");
  er_future_unref(out);
}

static void mark_finished(reducing_t *r) {
  if (er_future_done(&r->c.base)) return;
  if (r->queue.len == 0) {
    er_future_set_none(&r->c.base);
  } else if (r->queue.len == 1) {
    er_future_t *only = er__flist_shift(&r->queue);
    er__future_copy_outcome(&r->c.base, only);
    er_future_unref(only);
  } else {
    reduce_queue(r); /* its output comes back through dep_done */
  }
}

static void dep_done(er_future_t *rf, er_future_t *f) {
  reducing_t *r = (reducing_t *)rf;
  if (er_future_done(rf)) return;
  if (f->err) {
    er__flist_clear(&r->queue);
    er_future_set_error_obj(rf, f->err);
  } else if (er__flist_push(&r->queue, f) < 0) {
    fail(r, ER_ENOMEM, "ReducingFuture: out of memory");
  } else {
    if (r->queue.len >= r->batch) reduce_queue(r);
    if (r->c.full && r->c.pending == 0) mark_finished(r);
  }
}

int er_reducing_future_add_dependent(er_future_t *rf, er_future_t *f) {
  reducing_t *r = ER__AS(reducing_t, reducing_ops, rf);
  if (!r || !er_is_future(f)) return ER_ENOTFUTURE;
  if (r->c.full) return ER_ESTATE;
  return er__comb_add(&r->c, f, ER__DEP_SET);
}

int er_reducing_future_putq_int(er_future_t *rf, int64_t value) {
  reducing_t *r = ER__AS(reducing_t, reducing_ops, rf);
  if (!r) return ER_ENOTFUTURE;
  if (r->c.full) return ER_ESTATE;
  return er__comb_put_int(&r->c, value);
}

int er_reducing_future_complete(er_future_t *rf) {
  reducing_t *r = ER__AS(reducing_t, reducing_ops, rf);
  if (!r) return ER_ENOTFUTURE;
  int rc = er__comb_fill(&r->c);
  if (rc == 0 && r->c.pending == 0) mark_finished(r);
  return rc;
}

int er_reducing_future_set_error(er_future_t *rf, int code, const char *fmt, ...) {
  reducing_t *r = ER__AS(reducing_t, reducing_ops, rf);
  if (!r) return ER_ENOTFUTURE;
  r->c.full = true;
  er__flist_clear(&r->queue);
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(rf, code, fmt, ap);
  va_end(ap);
  return rc;
}
