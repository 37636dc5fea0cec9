/* Futures: pending, then done once with a value or an error. Completion is a
 * two-step state change (PENDING -> SETTING -> DONE) so that a second set is
 * refused at once on any thread, while the callbacks always run on the loop's
 * own thread. */
#include <string.h>

#include "loop/loop_internal.h"

/* ---- life ---- */

void er__future_init(er_future_t *f, er_loop_t *loop, const er__future_ops_t *ops) {
  memset(f, 0, sizeof *f);
  f->magic = ER__FUTURE_MAGIC;
  atomic_init(&f->refs, 1);
  atomic_init(&f->state, ER__PENDING);
  f->loop = loop;
  f->ops = ops;
}

er_future_t *er__future_alloc(er_loop_t *loop, size_t size, const er__future_ops_t *ops) {
  er_future_t *f = er_malloc(size);
  if (!f) return NULL;
  /* The combinator's own fields after the future; the future is zeroed by
   * er__future_init. */
  memset((char *)f + sizeof *f, 0, size - sizeof *f);
  er__future_init(f, loop, ops);
  return f;
}

er_future_t *er_future_new(er_loop_t *loop) {
  return loop ? er__future_alloc(loop, sizeof(er_future_t), NULL) : NULL;
}

er_future_t *er_future_new_external(er_loop_t *loop) {
  er_future_t *f = er_future_new(loop);
  if (f) {
    f->external = true;
    er_loop_ref(loop);
  }
  return f;
}

er_future_t *er_future_new_int(er_loop_t *loop, int64_t value) {
  er_future_t *f = er_future_new(loop);
  if (f) er_future_set_int(f, value);
  return f;
}

er_future_t *er_future_new_error(er_loop_t *loop, int code, const char *fmt, ...) {
  er_future_t *f = er_future_new(loop);
  if (!f) return NULL;
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(f, code, fmt, ap);
  va_end(ap);
  if (rc < 0) {
    er_future_unref(f);
    return NULL;
  }
  return f;
}

int er_is_future(const void *p) {
  const er_future_t *f = p;
  return f && f->magic == ER__FUTURE_MAGIC;
}

er_loop_t *er_future_loop(const er_future_t *f) { return f->loop; }

er_future_t *er_future_ref(er_future_t *f) {
  if (f) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

static void release_value(er_future_t *f) {
  if (f->kind == ER_VALUE_JSON) json_decref(f->v.json);
  if (f->kind == ER_VALUE_PTR && f->dtor) f->dtor(f->v.ptr);
  f->kind = ER_VALUE_NONE;
}

/* ndb logs a tasklet's failure that nobody looked at; the last reference
 * going is when we know nobody will (see er_tasklet_spawn in future.h). */
static void warn_unobserved(const er_future_t *f) {
  char buf[512];
  er_log(ER_LOG_WARN, "tasklet failed and nobody read its outcome: %s",
         er_error_format(f->err, buf, sizeof buf));
}

static void forward_cb(er_future_t *src, void *arg);

/* f goes while still waiting on its source: the source must not call back
 * into it, and may go too if nobody else wants it. */
static void drop_source(er_future_t *f) {
  er_future_t *s = f->source;
  f->source = NULL;
  if (!(s->ops && s->ops->forget && s->ops->forget(s, f)))
    er__future_remove_callback(s, forward_cb, f);
  er_future_unref(s);
}

void er_future_unref(er_future_t *f) {
  if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
  if (f->err && f->tasklet && !f->observed) warn_unobserved(f);
  if (f->source) drop_source(f);
  if (f->ops && f->ops->destroy) f->ops->destroy(f);
  release_value(f);
  er_error_unref(f->err);
  er_future_unref(f->forward);
  if (f->external && atomic_load(&f->state) != ER__DONE) er_loop_unref(f->loop);
  er_free(f->cbs);
  f->magic = 0;
  er_free(f);
}

/* ---- completing ---- */

static int begin_set(er_future_t *f) {
  if (!er_is_future(f)) return ER_ENOTFUTURE;
  int expected = ER__PENDING;
  if (!atomic_compare_exchange_strong(&f->state, &expected, ER__SETTING)) return ER_EALREADY;
  return 0;
}

static void finish_set(er_future_t *f) {
  if (er__on_loop_thread(f->loop)) {
    er__future_complete_on_loop(f);
  } else {
    er_future_ref(f);
    er__loop_post(f->loop, f);
  }
}

static void run_cb(er_future_t *f, const er__cb_t *cb) {
  if (cb->immediate)
    cb->fn(f, cb->arg);
  else
    er__loop_call_future_cb(f->loop, cb->fn, f, cb->arg);
}

void er__future_complete_on_loop(er_future_t *f) {
  er_future_ref(f); /* an immediate callback may drop the last other reference */
  atomic_store_explicit(&f->state, ER__DONE, memory_order_release);
  if (f->external) er_loop_unref(f->loop);
  uint32_t n = f->ncb;
  f->ncb = 0;
  /* Immediate callbacks first (inline), then the rest are scheduled, each
   * group in the order added. Out-of-memory while scheduling drops that
   * callback; the loop cannot report it to anyone. */
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < n; i++) {
      er__cb_t *cb = i == 0 ? &f->cb1 : &f->cbs[i - 1];
      if (cb->immediate == (pass == 0)) run_cb(f, cb);
    }
  }
  er_free(f->cbs);
  f->cbs = NULL;
  f->cbcap = 0;
  er_future_unref(f);
}

int er_future_set_none(er_future_t *f) {
  int rc = begin_set(f);
  if (rc < 0) return rc;
  finish_set(f);
  return 0;
}

int er_future_set_int(er_future_t *f, int64_t value) {
  int rc = begin_set(f);
  if (rc < 0) return rc;
  f->kind = ER_VALUE_INT;
  f->v.i = value;
  finish_set(f);
  return 0;
}

int er_future_set_ptr(er_future_t *f, void *ptr, void (*dtor)(void *)) {
  int rc = begin_set(f);
  if (rc < 0) {
    if (dtor) dtor(ptr);
    return rc;
  }
  f->kind = ER_VALUE_PTR;
  f->v.ptr = ptr;
  f->dtor = dtor;
  finish_set(f);
  return 0;
}

int er_future_set_json(er_future_t *f, json_t *value) {
  int rc = begin_set(f);
  if (rc < 0) return rc;
  f->kind = ER_VALUE_JSON;
  f->v.json = json_incref(value);
  finish_set(f);
  return 0;
}

int er_future_set_error_obj(er_future_t *f, er_error_t *err) {
  if (!err) return ER_EINVAL;
  int rc = begin_set(f);
  if (rc < 0) return rc;
  f->err = er_error_ref(err);
  finish_set(f);
  return 0;
}

int er__future_vset_error(er_future_t *f, int code, const char *fmt, va_list ap) {
  if (!er_is_future(f)) return ER_ENOTFUTURE;
  if (code >= 0) code = ER_EINVAL;
  er_error_t *e = er__error_vnew(code, fmt, ap);
  if (!e) return ER_ENOMEM;
  int rc = er_future_set_error_obj(f, e);
  er_error_unref(e);
  return rc;
}

int er_future_set_error(er_future_t *f, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = er__future_vset_error(f, code, fmt, ap);
  va_end(ap);
  return rc;
}

int er__future_copy_outcome(er_future_t *dst, er_future_t *src) {
  int rc = begin_set(dst);
  if (rc < 0) return rc;
  const er_future_t *r = er__future_resolve(src);
  er__future_observe(src); /* dst carries the outcome on */
  if (r->err)
    dst->err = er_error_ref(r->err);
  else
    dst->forward = er_future_ref((er_future_t *)r);
  finish_set(dst);
  return 0;
}

void er__future_take_from(er_future_t *waiter, er_future_t *src) {
  er_future_t *s = waiter->source; /* waiter may go with its callbacks */
  waiter->source = NULL;
  er__future_copy_outcome(waiter, src);
  er_future_unref(s);
}

static void forward_cb(er_future_t *src, void *arg) { er__future_take_from(arg, src); }

int er_future_set_from(er_future_t *dst, er_future_t *src) {
  if (!er_is_future(dst) || !er_is_future(src)) return ER_ENOTFUTURE;
  if (atomic_load(&dst->state) != ER__PENDING || dst->source) return ER_EALREADY;
  if (er_future_done(src)) return er__future_copy_outcome(dst, src);
  int rc = er_future_add_immediate_callback(src, forward_cb, dst);
  if (rc == 0) dst->source = er_future_ref(src);
  return rc;
}

/* ---- inspecting ---- */

const er_future_t *er__future_resolve(const er_future_t *f) {
  while (f->forward) f = f->forward;
  return f;
}

bool er_future_done(const er_future_t *f) {
  return atomic_load_explicit(&((er_future_t *)f)->state, memory_order_acquire) == ER__DONE;
}

int er_future_status(const er_future_t *f) {
  if (!er_is_future(f)) return ER_ENOTFUTURE;
  if (!er_future_done(f)) return ER_ESTATE;
  er__future_observe(f);
  return f->err ? f->err->code : 0;
}

er_error_t *er_future_error(const er_future_t *f) {
  if (!er_future_done(f)) return NULL;
  er__future_observe(f);
  return f->err;
}

er_value_kind_t er_future_kind(const er_future_t *f) {
  if (!er_future_done(f) || f->err) return ER_VALUE_NONE;
  return (er_value_kind_t)er__future_resolve(f)->kind;
}

int64_t er_future_int(const er_future_t *f) {
  return er_future_kind(f) == ER_VALUE_INT ? er__future_resolve(f)->v.i : 0;
}

void *er_future_ptr(const er_future_t *f) {
  return er_future_kind(f) == ER_VALUE_PTR ? er__future_resolve(f)->v.ptr : NULL;
}

json_t *er_future_json(const er_future_t *f) {
  return er_future_kind(f) == ER_VALUE_JSON ? er__future_resolve(f)->v.json : NULL;
}

/* ---- callbacks ---- */

static int add_cb(er_future_t *f, er_future_cb fn, void *arg, bool immediate) {
  if (!er_is_future(f)) return ER_ENOTFUTURE;
  er__cb_t cb = {fn, arg, immediate};
  if (er_future_done(f)) {
    if (immediate) {
      fn(f, arg);
      return 0;
    }
    if (!f->loop) return ER_ESTATE; /* detached: no loop to run it */
    return er__loop_call_future_cb(f->loop, fn, f, arg);
  }
  if (f->ncb == 0) {
    f->cb1 = cb;
  } else {
    if (f->ncb - 1 == f->cbcap) {
      uint32_t cap = f->cbcap ? f->cbcap * 2 : 4;
      er__cb_t *cbs = er_realloc(f->cbs, cap * sizeof *cbs);
      if (!cbs) return ER_ENOMEM;
      f->cbs = cbs;
      f->cbcap = cap;
    }
    f->cbs[f->ncb - 1] = cb;
  }
  f->ncb++;
  return 0;
}

int er_future_add_callback(er_future_t *f, er_future_cb fn, void *arg) {
  return add_cb(f, fn, arg, false);
}

int er_future_add_immediate_callback(er_future_t *f, er_future_cb fn, void *arg) {
  return add_cb(f, fn, arg, true);
}

bool er__future_has_callback(const er_future_t *f, er_future_cb fn, void *arg) {
  for (uint32_t i = 0; i < f->ncb; i++) {
    const er__cb_t *cb = i == 0 ? &f->cb1 : &f->cbs[i - 1];
    if (cb->fn == fn && cb->arg == arg) return true;
  }
  return false;
}

bool er__future_remove_callback(er_future_t *f, er_future_cb fn, void *arg) {
  /* Completion sets ncb to 0 before running or scheduling the callbacks, so
   * whatever is still listed here has not run. */
  for (uint32_t i = 0; i < f->ncb; i++) {
    er__cb_t *cb = i == 0 ? &f->cb1 : &f->cbs[i - 1];
    if (cb->fn != fn || cb->arg != arg) continue;
    for (uint32_t j = i; j + 1 < f->ncb; j++) {
      er__cb_t *dst = j == 0 ? &f->cb1 : &f->cbs[j - 1];
      *dst = f->cbs[j]; /* entry j + 1 */
    }
    f->ncb--;
    return true;
  }
  return false;
}
