/* The event loop: ndb's eventloop (a FIFO of ready calls, idlers, a timer
 * queue) on top of libuv, which supplies the waiting: for I/O, for the thread
 * pool, for completions from other threads, and for the next timer. */
#include <stdlib.h>
#include <string.h>

#include "loop/loop_internal.h"

static _Thread_local er_loop_t *tl_current;

/* ---- clock ---- */

static uint64_t mono_now(void *ud) { return er_now_mono_ns(); }

uint64_t er_loop_now_ns(er_loop_t *loop) { return loop->clock.now_ns(loop->clock.ud); }

/* ---- wake-ups from other threads ---- */

static void on_async(uv_async_t *h) { er__loop_drain_inbox(h->data); }

void er__loop_post(er_loop_t *loop, er_future_t *f) {
  f->inbox_next = NULL;
  pthread_mutex_lock(&loop->inbox_lock);
  if (loop->inbox_tail)
    loop->inbox_tail->inbox_next = f;
  else
    atomic_store_explicit(&loop->inbox_head, f, memory_order_relaxed);
  loop->inbox_tail = f;
  pthread_mutex_unlock(&loop->inbox_lock);
  uv_async_send(&loop->async);
}

void er__loop_drain_inbox(er_loop_t *loop) {
  pthread_mutex_lock(&loop->inbox_lock);
  er_future_t *f = atomic_load_explicit(&loop->inbox_head, memory_order_relaxed);
  atomic_store_explicit(&loop->inbox_head, NULL, memory_order_relaxed);
  loop->inbox_tail = NULL;
  pthread_mutex_unlock(&loop->inbox_lock);
  while (f) {
    er_future_t *next = f->inbox_next;
    er__future_complete_on_loop(f);
    er_future_unref(f); /* the reference er__loop_post's caller took */
    f = next;
  }
}

/* A racy peek is enough: a completion posted after it also wakes uv_run
 * through the async handle. */
static bool inbox_empty(er_loop_t *loop) {
  return atomic_load_explicit(&loop->inbox_head, memory_order_relaxed) == NULL;
}

/* ---- life ---- */

int er_loop_new(er_loop_t **out, const er_loop_opts_t *opts) {
  er_loop_t *loop = er_calloc(1, sizeof *loop);
  if (!loop) return ER_ENOMEM;
  if (opts && opts->uv) {
    loop->uv = opts->uv;
  } else {
    if (uv_loop_init(&loop->uv_own) != 0) {
      er_free(loop);
      return ER_ESYS;
    }
    loop->uv = &loop->uv_own;
    loop->owns_uv = true;
  }
  loop->thread = pthread_self();
  pthread_mutex_init(&loop->inbox_lock, NULL);
  uv_async_init(loop->uv, &loop->async, on_async);
  loop->async.data = loop;
  uv_unref((uv_handle_t *)&loop->async);
  uv_timer_init(loop->uv, &loop->wake);
  uv_unref((uv_handle_t *)&loop->wake);
  if (opts && opts->clock) {
    loop->clock = *opts->clock;
    loop->custom_clock = true;
  } else {
    loop->clock.now_ns = mono_now;
  }
  size_t ss = opts && opts->stack_size ? opts->stack_size : 64 * 1024;
  loop->stack_size = ss;
  er__stack_overflow_guard_thread();
  if (!tl_current) tl_current = loop;
  *out = loop;
  return 0;
}

static void on_closed(uv_handle_t *h) {}

void er_loop_free(er_loop_t *loop) {
  if (!loop) return;
  er__loop_drain_inbox(loop);
  er__tasklet_free_all(loop);
  /* Scheduled future callbacks hold references: release them without running. */
  for (size_t i = 0; i < loop->calls_len; i++) {
    er__call_t *c = &loop->calls[(loop->calls_head + i) & (loop->calls_cap - 1)];
    if (c->kind != ER__CALL_PLAIN) er_future_unref(c->a);
    if (c->kind == ER__CALL_FUTURE_PAIR) er_future_unref(c->b);
  }
  er_free(loop->calls);
  er__heap_free(&loop->timers);
  er_free(loop->idlers);
  uv_close((uv_handle_t *)&loop->async, on_closed);
  uv_close((uv_handle_t *)&loop->wake, on_closed);
  uv_run(loop->uv, UV_RUN_NOWAIT);
  if (loop->owns_uv) uv_loop_close(loop->uv);
  er__stack_pool_free(loop);
  pthread_mutex_destroy(&loop->inbox_lock);
  if (tl_current == loop) tl_current = NULL;
  er_free(loop);
}

er_loop_t *er_loop_current(void) { return tl_current; }

er_loop_t *er__loop_swap_current(er_loop_t *loop) {
  er_loop_t *prev = tl_current;
  tl_current = loop;
  return prev;
}

uv_loop_t *er_loop_uv(er_loop_t *loop) { return loop->uv; }

void er_loop_ref(er_loop_t *loop) { atomic_fetch_add(&loop->refs, 1); }

void er_loop_unref(er_loop_t *loop) {
  /* Wake the loop: it may be blocked only because of this reference. */
  if (atomic_fetch_sub(&loop->refs, 1) == 1) uv_async_send(&loop->async);
}

void er_loop_stop(er_loop_t *loop) {
  atomic_store(&loop->stop, 1);
  uv_async_send(&loop->async);
}

/* ---- ready calls ---- */

static int push_call(er_loop_t *loop, er__call_t c) {
  if (loop->calls_len == loop->calls_cap) {
    size_t cap = loop->calls_cap ? loop->calls_cap * 2 : 256;
    er__call_t *calls = er_malloc(cap * sizeof *calls);
    if (!calls) return ER_ENOMEM;
    for (size_t i = 0; i < loop->calls_len; i++)
      calls[i] = loop->calls[(loop->calls_head + i) & (loop->calls_cap - 1)];
    er_free(loop->calls);
    loop->calls = calls;
    loop->calls_cap = cap;
    loop->calls_head = 0;
  }
  loop->calls[(loop->calls_head + loop->calls_len++) & (loop->calls_cap - 1)] = c;
  return 0;
}

int er_loop_call_soon(er_loop_t *loop, er_call_fn fn, void *arg) {
  return push_call(loop, (er__call_t){(void (*)(void))fn, arg, NULL, ER__CALL_PLAIN});
}

int er__loop_call_future_cb(er_loop_t *loop, er_future_cb fn, er_future_t *f, void *arg) {
  er_future_ref(f);
  int rc = push_call(loop, (er__call_t){(void (*)(void))fn, f, arg, ER__CALL_FUTURE_CB});
  if (rc < 0) er_future_unref(f);
  return rc;
}

int er__loop_call_future_pair(er_loop_t *loop, er_future_cb fn, er_future_t *f, er_future_t *arg) {
  er_future_ref(f);
  er_future_ref(arg);
  int rc = push_call(loop, (er__call_t){(void (*)(void))fn, f, arg, ER__CALL_FUTURE_PAIR});
  if (rc < 0) {
    er_future_unref(f);
    er_future_unref(arg);
  }
  return rc;
}

static void run_call(er__call_t c) {
  if (c.kind == ER__CALL_PLAIN) {
    ((er_call_fn)c.fn)(c.a);
  } else {
    ((er_future_cb)c.fn)(c.a, c.b);
    er_future_unref(c.a);
    if (c.kind == ER__CALL_FUTURE_PAIR) er_future_unref(c.b);
  }
}

/* ---- timers ---- */

int er__loop_add_timer(er_loop_t *loop, er_timer_t *t, uint64_t delay_ns) {
  t->loop = loop;
  t->when_ns = (loop->in_timer_step ? loop->step_now_ns : er_loop_now_ns(loop)) + delay_ns;
  t->seq = loop->timer_seq++;
  return er__heap_push(&loop->timers, t);
}

er_timer_t *er_loop_call_later_ns(er_loop_t *loop, uint64_t delay_ns, er_call_fn fn, void *arg) {
  er_timer_t *t = er_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->fn = fn;
  t->arg = arg;
  if (er__loop_add_timer(loop, t, delay_ns) < 0) {
    er_free(t);
    return NULL;
  }
  return t;
}

er_timer_t *er_loop_call_later(er_loop_t *loop, uint64_t delay_ms, er_call_fn fn, void *arg) {
  return er_loop_call_later_ns(loop, delay_ms * 1000000u, fn, arg);
}

int er_timer_cancel(er_timer_t *t) {
  if (!t) return ER_EINVAL;
  er__heap_remove(&t->loop->timers, t);
  if (!t->embedded) er_free(t);
  return 0;
}

/* ---- idlers ---- */

int er_loop_add_idle(er_loop_t *loop, er_idle_fn fn, void *arg) {
  /* Always leave one slot free: run_idle takes an idler out, runs it and puts
   * it back without allocating, and an idler that adds another idler while it
   * runs must not use up the slot it will go back into (that overwrote the
   * head of a full ring: one idler lost, another doubled). */
  if (loop->idle_len + 1 >= loop->idle_cap) {
    size_t cap = loop->idle_cap ? loop->idle_cap * 2 : 8;
    er__idler_t *v = er_malloc(cap * sizeof *v);
    if (!v) return ER_ENOMEM;
    for (size_t i = 0; i < loop->idle_len; i++)
      v[i] = loop->idlers[(loop->idle_head + i) % loop->idle_cap];
    er_free(loop->idlers);
    loop->idlers = v;
    loop->idle_cap = cap;
    loop->idle_head = 0;
  }
  loop->idlers[(loop->idle_head + loop->idle_len++) % loop->idle_cap] = (er__idler_t){fn, arg};
  return 0;
}

/* ndb's run_idle: take the first idler, run it, and put it back at the end
 * unless it asked to be removed. Returns false when every idler is inactive. */
static bool run_idle(er_loop_t *loop) {
  if (!loop->idle_len || loop->idle_inactive >= loop->idle_len) return false;
  er__idler_t idler = loop->idlers[loop->idle_head];
  loop->idle_head = (loop->idle_head + 1) % loop->idle_cap;
  loop->idle_len--;
  er_idle_result_t res = idler.fn(idler.arg);
  if (res == ER_IDLE_REMOVE) return true;
  if (res == ER_IDLE_ACTIVE)
    loop->idle_inactive = 0;
  else
    loop->idle_inactive++;
  /* Cannot fail: er_loop_add_idle keeps a slot free. */
  loop->idlers[(loop->idle_head + loop->idle_len++) % loop->idle_cap] = idler;
  return true;
}

/* ---- running ---- */

int64_t er_loop_run0(er_loop_t *loop) {
  er_loop_t *prev = tl_current;
  tl_current = loop;
  int64_t result = -1;
  if (loop->calls_len) {
    loop->idle_inactive = 0;
    er__call_t c = loop->calls[loop->calls_head];
    loop->calls_head = (loop->calls_head + 1) & (loop->calls_cap - 1); /* cap is a power of two */
    loop->calls_len--;
    run_call(c);
    result = 0;
  } else if (run_idle(loop)) {
    result = 0;
  } else if (loop->timers.len) {
    uint64_t now = er_loop_now_ns(loop);
    uint64_t when = loop->timers.items[0].when_ns;
    if (when <= now) {
      loop->idle_inactive = 0;
      er_timer_t *t = er__heap_pop(&loop->timers);
      er_call_fn fn = t->fn;
      void *arg = t->arg;
      if (!t->embedded) er_free(t);
      /* Timers the callback adds count from this step's time, as libuv's
       * do: one clock read per step instead of one per timer. */
      loop->step_now_ns = now;
      loop->in_timer_step = true;
      fn(arg);
      loop->in_timer_step = false;
      result = 0;
    } else {
      result = (int64_t)(when - now);
    }
  }
  tl_current = prev;
  return result;
}

static bool uv_has_work(er_loop_t *loop) {
  return uv_loop_alive(loop->uv) || atomic_load(&loop->refs) > 0 || !inbox_empty(loop);
}

static void on_wake(uv_timer_t *h) {}

/* Blocks in libuv until I/O, a completion from another thread, or delay_ns
 * (when >= 0) has passed. */
static void wait_uv(er_loop_t *loop, int64_t delay_ns) {
  bool hold = atomic_load(&loop->refs) > 0;
  if (hold) uv_ref((uv_handle_t *)&loop->async);
  if (delay_ns >= 0) {
    uint64_t ms = ((uint64_t)delay_ns + 999999u) / 1000000u;
    uv_update_time(loop->uv);
    uv_timer_start(&loop->wake, on_wake, ms, 0);
    uv_ref((uv_handle_t *)&loop->wake);
  }
  uv_run(loop->uv, UV_RUN_ONCE);
  if (delay_ns >= 0) {
    uv_timer_stop(&loop->wake);
    uv_unref((uv_handle_t *)&loop->wake);
  }
  if (hold) uv_unref((uv_handle_t *)&loop->async);
}

bool er_loop_run1(er_loop_t *loop) {
  /* Follow a loop handed to another thread, but write only then: other
   * threads read loop->thread in every er_future_set_*, and an unconditional
   * store on each step was a data race (reported by TSan). */
  if (!pthread_equal(loop->thread, pthread_self())) loop->thread = pthread_self();
  int64_t delay = er_loop_run0(loop);
  if (delay == 0) {
    /* Poll I/O now and then even while calls keep coming, so it never starves. */
    if ((++loop->steps & 63) == 0 && uv_has_work(loop)) uv_run(loop->uv, UV_RUN_NOWAIT);
    return true;
  }
  if (delay > 0 && loop->custom_clock) {
    if (uv_has_work(loop)) uv_run(loop->uv, UV_RUN_NOWAIT);
    loop->clock.sleep_ns(loop->clock.ud, (uint64_t)delay);
    return true;
  }
  if (uv_has_work(loop) || delay > 0) {
    wait_uv(loop, delay);
    return true;
  }
  return false;
}

int er_loop_run(er_loop_t *loop) {
  er_loop_t *prev = tl_current;
  tl_current = loop;
  /* As ndb's run(): every run starts with the idlers counted active again, so
   * idlers that went quiet in an earlier run get another turn. Without this a
   * second er_loop_run never calls idlers that were all inactive before. */
  loop->idle_inactive = 0;
  while (!atomic_exchange(&loop->stop, 0)) {
    if (!er_loop_run1(loop)) break;
  }
  tl_current = prev ? prev : loop;
  return 0;
}
