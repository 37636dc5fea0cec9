/* Tasklets: stackful coroutines on a loop. A tasklet runs on its own stack
 * until it awaits a pending future or sleeps; it is resumed from the loop by
 * that future's callback or its timer. Resumption is asymmetric: whoever
 * resumes a tasklet (the loop, or a tasklet spawning another) gets control back
 * when it suspends or ends.
 *
 * The tasklet's own record lives at the top of its stack, in the page its
 * first frames touch anyway, so a suspended tasklet costs one page plus its
 * result future. */
#include <stdio.h>
#include <string.h>

#include "loop/ctx.h"
#include "loop/loop_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define ER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define ER_TSAN 1
#endif

enum { T_RUNNING, T_SUSPENDED, T_DONE };

struct er__tasklet {
  er__ctx_t ctx;    /* the tasklet's own saved context */
  er__ctx_t caller; /* where it goes when it suspends or ends */
  er_loop_t *loop;
  er_future_t *result;
  er_tasklet_fn fn;
  void *arg;
  er__stack_t stack;
  er__tasklet_t *resumer; /* the tasklet that resumed this one, if any */
  er__tasklet_t *next, *prev;
  int state;
  /* The value er_return_* staged for a successful return. */
  er_value_kind_t ret_kind;
  int64_t ret_int;
  void *ret_ptr;
  void (*ret_dtor)(void *);
  json_t *ret_json;
  er_future_t *ret_future;
  er_error_t *last_err;
  er_timer_t sleep_timer;
#ifdef ER_ASAN
  void *fake_stack;
  const void *caller_bottom;
  size_t caller_size;
#endif
#ifdef ER_TSAN
  void *fiber, *caller_fiber;
#endif
  char name[48];
};

static _Thread_local er__tasklet_t *tl_tasklet;
static _Thread_local er_error_t *tl_err; /* er_fail outside any tasklet */

er__tasklet_t *er__tasklet_current(void) { return tl_tasklet; }
bool er_in_tasklet(void) { return tl_tasklet != NULL; }

/* ---- switching ---- */

static void release(er__tasklet_t *t);

void er__tasklet_resume(er__tasklet_t *t) {
  er__tasklet_t *prev = tl_tasklet;
  t->resumer = prev;
  t->state = T_RUNNING;
  tl_tasklet = t;
  er__stack_running(&t->stack, t->name);
#ifdef ER_TSAN
  t->caller_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(t->fiber, 0);
#endif
#ifdef ER_ASAN
  void *fake = NULL;
  __sanitizer_start_switch_fiber(&fake, t->stack.lo, t->stack.size);
#endif
  er__ctx_switch(&t->caller, &t->ctx);
#ifdef ER_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  tl_tasklet = prev;
  er__stack_running(prev ? &prev->stack : NULL, prev ? prev->name : NULL);
  if (t->state == T_DONE) release(t);
}

static void switch_out(er__tasklet_t *t, bool final) {
  er__stack_check(&t->stack, t->name);
#ifdef ER_TSAN
  __tsan_switch_to_fiber(t->caller_fiber, 0);
#endif
#ifdef ER_ASAN
  __sanitizer_start_switch_fiber(final ? NULL : &t->fake_stack, t->caller_bottom, t->caller_size);
#endif
  er__ctx_switch(&t->ctx, &t->caller);
#ifdef ER_ASAN
  __sanitizer_finish_switch_fiber(t->fake_stack, &t->caller_bottom, &t->caller_size);
#endif
}

void er__tasklet_suspend(er__tasklet_t *t) {
  t->state = T_SUSPENDED;
  switch_out(t, false);
}

/* ---- outcome ---- */

static void clear_staged(er__tasklet_t *t) {
  if (t->ret_kind == ER_VALUE_PTR && t->ret_dtor) t->ret_dtor(t->ret_ptr);
  if (t->ret_kind == ER_VALUE_JSON) json_decref(t->ret_json);
  t->ret_kind = ER_VALUE_NONE;
  er_future_unref(t->ret_future);
  t->ret_future = NULL;
}

static void finish(er__tasklet_t *t, int rc) {
  er_future_t *r = t->result;
  if (rc == 0) {
    if (t->ret_future) {
      er_future_set_from(r, t->ret_future);
    } else if (t->ret_kind == ER_VALUE_INT) {
      er_future_set_int(r, t->ret_int);
    } else if (t->ret_kind == ER_VALUE_PTR) {
      er_future_set_ptr(r, t->ret_ptr, t->ret_dtor);
      t->ret_kind = ER_VALUE_NONE; /* the future owns it now */
    } else if (t->ret_kind == ER_VALUE_JSON) {
      er_future_set_json(r, t->ret_json);
    } else {
      er_future_set_none(r);
    }
    clear_staged(t);
    return;
  }
  clear_staged(t);
  er_error_t *base = NULL;
  if (rc > 0) {
    base = er_error_new(ER_EINVAL, "tasklet '%s' returned %d; return 0 or a negative code",
                        t->name, rc);
  } else if (t->last_err && t->last_err->code == rc) {
    base = er_error_ref(t->last_err); /* passing an awaited error up, or er_fail's */
  } else {
    base = er_error_new(rc, NULL);
  }
  er_error_t *err = base ? er__error_with_frame(base, t->name) : NULL;
  if (err)
    er_future_set_error_obj(r, err);
  else if (base)
    er_future_set_error_obj(r, base);
  else
    er_future_set_error(r, ER_ENOMEM, NULL); /* still fails it, if the message can be made */
  er_error_unref(err);
  er_error_unref(base);
}

static void entry(void *p) {
  er__tasklet_t *t = p;
#ifdef ER_ASAN
  __sanitizer_finish_switch_fiber(NULL, &t->caller_bottom, &t->caller_size);
#endif
  int rc = t->fn(t->arg);
  finish(t, rc);
  t->state = T_DONE;
  switch_out(t, true); /* never comes back: the resumer releases the stack */
}

/* ---- life ---- */

static void unlink_tasklet(er__tasklet_t *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    t->loop->tasklets = t->next;
  if (t->next) t->next->prev = t->prev;
}

static void release(er__tasklet_t *t) {
  unlink_tasklet(t);
  er_future_unref(t->result);
  er_error_unref(t->last_err);
  clear_staged(t);
#ifdef ER_TSAN
  __tsan_destroy_fiber(t->fiber);
#endif
  er__stack_t stack = t->stack; /* t lives on the stack being returned */
  er__stack_put(t->loop, &stack);
}

void er__tasklet_free_all(er_loop_t *loop) {
  while (loop->tasklets) {
    er__tasklet_t *t = loop->tasklets;
    er__heap_remove(&loop->timers, &t->sleep_timer);
    release(t);
  }
}

er_future_t *er_tasklet_spawn(er_loop_t *loop, er_tasklet_fn fn, void *arg,
                              const er_tasklet_opts_t *opts) {
  if (!loop || !fn) return NULL;
  er_future_t *result = er_future_new(loop);
  if (!result) return NULL;
  result->tasklet = true;
  er__stack_t stack;
  size_t size = opts && opts->stack_size ? opts->stack_size : loop->stack_size;
  if (er__stack_get(loop, size, &stack) < 0) {
    er_future_unref(result);
    return NULL;
  }
  uintptr_t top = (uintptr_t)(stack.lo + stack.size - sizeof(er__tasklet_t)) & ~(uintptr_t)63;
  er__tasklet_t *t = (er__tasklet_t *)top;
  memset(t, 0, sizeof *t);
  t->loop = loop;
  t->result = result;
  t->fn = fn;
  t->arg = arg;
  t->stack = stack;
  t->sleep_timer.index = SIZE_MAX;
  t->sleep_timer.embedded = true;
  /* Not snprintf: formatting was a third of a spawn's instructions. */
  const char *name = opts && opts->name ? opts->name : "tasklet";
  size_t nlen = strnlen(name, sizeof t->name - 1);
  memcpy(t->name, name, nlen);
  t->name[nlen] = '\0';
#ifdef ER_TSAN
  t->fiber = __tsan_create_fiber(0);
#endif
  er__ctx_make(&t->ctx, stack.lo, (size_t)((char *)t - stack.lo), entry, t);
  t->next = loop->tasklets;
  if (t->next) t->next->prev = t;
  loop->tasklets = t;
  er_future_ref(result); /* one for the caller, one the tasklet drops at the end */
  er__tasklet_resume(t);
  return result;
}

/* ---- inside a tasklet ---- */

static void wake(er_future_t *f, void *arg) { er__tasklet_resume(arg); }

static void set_last_err(er_error_t *err) {
  er_error_t **slot = tl_tasklet ? &tl_tasklet->last_err : &tl_err;
  er_error_ref(err);
  er_error_unref(*slot);
  *slot = err;
}

er_error_t *er_last_error(void) { return tl_tasklet ? tl_tasklet->last_err : tl_err; }

int er_fail(int code, const char *fmt, ...) {
  if (code >= 0) code = ER_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  er_error_t *e = er__error_vnew(code, fmt, ap);
  va_end(ap);
  if (e) {
    set_last_err(e);
    er_error_unref(e);
  }
  return code;
}

int er_await(er_future_t *f) {
  if (!er_is_future(f)) return er_fail(ER_ENOTFUTURE, "er_await: the argument is not a future");
  er__tasklet_t *t = tl_tasklet;
  if (!t) {
    int rc = er_future_get_result(f);
    if (rc < 0 && er_future_error(f)) set_last_err(er_future_error(f));
    return rc;
  }
  if (f->loop != t->loop)
    return er_fail(ER_EINVAL, "er_await: the future belongs to another loop");
  if (!er_future_done(f)) {
    int rc = er_future_add_callback(f, wake, t);
    if (rc < 0) return er_fail(rc, "er_await: cannot add a callback");
    er__tasklet_suspend(t);
  }
  int st = er_future_status(f);
  if (st < 0) set_last_err(f->err);
  return st;
}

int er_await_all(er_future_t *const *fs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!er_is_future(fs[i]))
      return er_fail(ER_ENOTFUTURE, "er_await_all: argument %zu is not a future", i);
  }
  for (size_t i = 0; i < n; i++) {
    int rc = er_await(fs[i]);
    if (rc == ER_EINVAL && !er_future_done(fs[i])) return rc;
  }
  for (size_t i = 0; i < n; i++) {
    int st = er_future_status(fs[i]);
    if (st < 0) {
      set_last_err(fs[i]->err);
      return st;
    }
  }
  return 0;
}

static void sleep_wake(void *arg) { er__tasklet_resume(arg); }

static void sleep_fire(void *arg) {
  er_future_set_none(arg);
  er_future_unref(arg);
}

static void sleep_drop(void *arg) { er_future_unref(arg); }

er_future_t *er_sleep_future(er_loop_t *loop, uint64_t ms) {
  er_future_t *f = er_future_new(loop);
  if (!f) return NULL;
  er_timer_t *t = er_loop_call_later(loop, ms, sleep_fire, er_future_ref(f));
  if (!t) {
    er_future_unref(f);
    er_future_unref(f);
    return NULL;
  }
  /* The timer holds a reference to f: give it back if the loop is freed
   * before the timer fires (a timeout that lost a wait_any leaked here). */
  t->drop = sleep_drop;
  return f;
}

int er_sleep(uint64_t ms) {
  er__tasklet_t *t = tl_tasklet;
  if (t) {
    /* The timer lives in the tasklet's record: sleeping allocates nothing. */
    t->sleep_timer.fn = sleep_wake;
    t->sleep_timer.arg = t;
    int rc = er__loop_add_timer(t->loop, &t->sleep_timer, ms * 1000000u);
    if (rc < 0) return rc;
    er__tasklet_suspend(t);
    return 0;
  }
  er_loop_t *loop = er_loop_current();
  if (!loop) return ER_ENOTASKLET;
  er_future_t *f = er_sleep_future(loop, ms);
  if (!f) return ER_ENOMEM;
  int rc = er_future_wait(f);
  er_future_unref(f);
  return rc;
}

/* ---- the tasklet's value ---- */

int er_return_int(int64_t value) {
  er__tasklet_t *t = tl_tasklet;
  if (!t) return ER_ENOTASKLET;
  clear_staged(t);
  t->ret_kind = ER_VALUE_INT;
  t->ret_int = value;
  return 0;
}

int er_return_ptr(void *ptr, void (*dtor)(void *)) {
  er__tasklet_t *t = tl_tasklet;
  if (!t) return ER_ENOTASKLET;
  clear_staged(t);
  t->ret_kind = ER_VALUE_PTR;
  t->ret_ptr = ptr;
  t->ret_dtor = dtor;
  return 0;
}

int er_return_json(json_t *value) {
  er__tasklet_t *t = tl_tasklet;
  if (!t) return ER_ENOTASKLET;
  clear_staged(t);
  t->ret_kind = ER_VALUE_JSON;
  t->ret_json = json_incref(value);
  return 0;
}

int er_return_future(er_future_t *f) {
  er__tasklet_t *t = tl_tasklet;
  if (!t) return ER_ENOTASKLET;
  if (!er_is_future(f)) return ER_ENOTFUTURE;
  clear_staged(t);
  t->ret_future = er_future_ref(f);
  return 0;
}
