/* The loop layer's private structures, shared by its files only. */
#ifndef ER_LOOP_INTERNAL_H
#define ER_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "errand/future.h"
#include "errand/loop.h"

/* ---- Calls ready to run (the FIFO of er_loop_call_soon) ---- */
typedef enum { ER__CALL_PLAIN, ER__CALL_FUTURE_CB, ER__CALL_FUTURE_PAIR } er__call_kind_t;
typedef struct er__call {
  void (*fn)(void);
  void *a, *b;
  int kind;
} er__call_t;

/* ---- Timers: a binary min-heap on (when, seq); seq keeps equal times FIFO ---- */
struct er_timer {
  uint64_t when_ns;
  uint64_t seq;
  size_t index; /* position in the heap, SIZE_MAX when not in it */
  er_call_fn fn;
  void *arg;
  er_loop_t *loop;
  bool embedded; /* lives inside another object; the heap never frees it */
  /* Called with arg when the timer is dropped unfired (er_loop_free), to
   * release what arg holds; NULL: nothing to release. */
  er_call_fn drop;
};

typedef struct er__heap_item {
  uint64_t when_ns, seq; /* copies of the timer's keys */
  er_timer_t *t;
} er__heap_item_t;

typedef struct er__heap {
  er__heap_item_t *items;
  size_t len, cap;
} er__heap_t;

int er__heap_push(er__heap_t *h, er_timer_t *t);
er_timer_t *er__heap_pop(er__heap_t *h);
void er__heap_remove(er__heap_t *h, er_timer_t *t);
static inline er_timer_t *er__heap_top(const er__heap_t *h) { return h->len ? h->items[0].t : NULL; }
void er__heap_free(er__heap_t *h);

/* ---- Idlers ---- */
typedef struct er__idler {
  er_idle_fn fn;
  void *arg;
} er__idler_t;

typedef struct er__stack_pool er__stack_pool_t;
typedef struct er__tasklet er__tasklet_t;

struct er_loop {
  uv_loop_t *uv;
  uv_loop_t uv_own;
  bool owns_uv;
  uv_async_t async;     /* wakes the loop for cross-thread completions and stop */
  uv_timer_t wake;      /* wakes uv_run for our next timer */
  pthread_t thread;

  er__call_t *calls; /* ring buffer */
  size_t calls_head, calls_len, calls_cap;

  er__heap_t timers;
  uint64_t timer_seq;
  uint64_t step_now_ns; /* the clock as read by the timer step running now */
  bool in_timer_step;

  er__idler_t *idlers; /* ring buffer */
  size_t idle_head, idle_len, idle_cap, idle_inactive;

  er_clock_t clock;
  bool custom_clock;
  atomic_int stop;
  atomic_long refs;
  unsigned steps;

  pthread_mutex_t inbox_lock; /* futures completed from other threads */
  _Atomic(er_future_t *) inbox_head; /* peeked without the lock */
  er_future_t *inbox_tail;

  size_t stack_size;
  er__stack_pool_t *stacks;
  er__tasklet_t *tasklets; /* live tasklets, for er_loop_free */
};

/* The loop thread test: completions from elsewhere go through the inbox. */
static inline bool er__on_loop_thread(const er_loop_t *loop) {
  return pthread_equal(pthread_self(), loop->thread);
}

/* A future callback scheduled on the loop: fn(f, arg); the loop holds a
 * reference to f until it has run. */
int er__loop_call_future_cb(er_loop_t *loop, er_future_cb fn, er_future_t *f, void *arg);
/* As er__loop_call_future_cb with a future for arg, which the loop holds a
 * reference to as well. */
int er__loop_call_future_pair(er_loop_t *loop, er_future_cb fn, er_future_t *f, er_future_t *arg);
/* Adds an embedded timer (t->fn, t->arg set by the caller). */
int er__loop_add_timer(er_loop_t *loop, er_timer_t *t, uint64_t delay_ns);
/* Makes loop this thread's current loop; returns the one it replaces. */
er_loop_t *er__loop_swap_current(er_loop_t *loop);
/* Completes the futures other threads handed over. */
void er__loop_drain_inbox(er_loop_t *loop);
/* Hands a future completed on another thread to its loop. */
void er__loop_post(er_loop_t *loop, er_future_t *f);

/* ---- Errors (error_value.c) ---- */
struct er_error {
  atomic_int refs;
  int code;
  char *message;
  size_t chain_len;
  char **chain;
};
er_error_t *er__error_vnew(int code, const char *fmt, va_list ap);
/* A copy of err with name added to the end of its chain. */
er_error_t *er__error_with_frame(const er_error_t *err, const char *name);

/* ---- Futures (future.c) ---- */
#define ER__FUTURE_MAGIC 0x46757472u /* "Futr" */
enum { ER__PENDING = 0, ER__SETTING = 1, ER__DONE = 2 };

typedef struct er__cb {
  er_future_cb fn;
  void *arg;
  bool immediate;
} er__cb_t;

/* Combinators extend a future: destroy releases what they add; dep_done gets
 * each dependent's outcome, from the loop (see combinator.h); forget takes
 * back a future waiting on this one for its next outcome (a getq() future),
 * answering whether it was one. */
typedef struct er__future_ops {
  void (*destroy)(er_future_t *f);
  void (*dep_done)(er_future_t *comb, er_future_t *dep);
  bool (*forget)(er_future_t *comb, er_future_t *waiter);
} er__future_ops_t;

struct er_future {
  uint32_t magic;
  atomic_int refs;
  atomic_int state;
  uint8_t kind;     /* er_value_kind_t */
  bool external;    /* holds a loop ref until done */
  bool tasklet;     /* a tasklet's outcome: an unobserved failure is logged */
  bool observed;    /* its outcome was read or passed on (er__future_observe) */
  er_loop_t *loop;  /* NULL once detached from a freed loop (er_tasklet_run) */
  union {
    int64_t i;
    void *ptr;
    json_t *json;
  } v;
  void (*dtor)(void *);
  er_error_t *err;
  er_future_t *forward; /* done as this one is (er_future_set_from) */
  /* While pending: the future this one waits to complete from (set_from's
   * source, or the QueueFuture of a getq() future), one reference. The waiter
   * owns what it waits on and is known to it only by a callback without a
   * reference, so dropping a waiter frees an abandoned chain instead of
   * leaving a cycle. Fits in malloc's 128-byte class with the rest. */
  er_future_t *source;
  er__cb_t cb1;         /* most futures have one callback: no allocation */
  er__cb_t *cbs;
  uint32_t ncb, cbcap;
  const er__future_ops_t *ops;
  er_future_t *inbox_next;
};

/* Initialises a future embedded at the start of a larger object. */
void er__future_init(er_future_t *f, er_loop_t *loop, const er__future_ops_t *ops);
/* Allocates size bytes (>= sizeof(er_future_t)) and initialises the future. */
er_future_t *er__future_alloc(er_loop_t *loop, size_t size, const er__future_ops_t *ops);
/* Finishes a completion on the loop thread: runs or schedules callbacks. */
void er__future_complete_on_loop(er_future_t *f);
/* The future holding the value: follows set_from forwarding. */
const er_future_t *er__future_resolve(const er_future_t *f);
int er__future_vset_error(er_future_t *f, int code, const char *fmt, va_list ap);
/* Completes dst with the outcome of done future src (sharing its value). */
int er__future_copy_outcome(er_future_t *dst, er_future_t *src);
/* Takes back a callback that has not run yet: the first one added with fn
 * and arg. Returns true when there was one. Loop thread only. */
bool er__future_remove_callback(er_future_t *f, er_future_cb fn, void *arg);
/* Whether a callback added with fn and arg has still to run. */
bool er__future_has_callback(const er_future_t *f, er_future_cb fn, void *arg);
/* Completes waiter from its source's outcome src (done) and drops its hold
 * on the source. */
void er__future_take_from(er_future_t *waiter, er_future_t *src);
/* Someone read f's outcome or took it over: a failure is not unobserved. Loop
 * thread (or the thread holding the last reference). */
static inline void er__future_observe(const er_future_t *f) {
  ((er_future_t *)f)->observed = true;
}

/* ---- Tasklets (tasklet.c) ---- */
er__tasklet_t *er__tasklet_current(void);
void er__tasklet_free_all(er_loop_t *loop);
/* Suspends the current tasklet until resumed by er__tasklet_resume. */
void er__tasklet_suspend(er__tasklet_t *t);
void er__tasklet_resume(er__tasklet_t *t);

/* ---- Stacks (stack.c) ---- */
typedef struct er__stack {
  char *lo;     /* lowest usable byte (above the guard page, if any) */
  size_t size;  /* usable bytes */
  bool guarded; /* a PROT_NONE page lies just below lo */
  unsigned vg_id;
  void *slab;   /* the mapping it was carved from */
} er__stack_t;
int er__stack_get(er_loop_t *loop, size_t size, er__stack_t *out);
void er__stack_put(er_loop_t *loop, const er__stack_t *s);
void er__stack_pool_free(er_loop_t *loop);
/* Gives this thread an alternate signal stack when the overflow reporter is
 * installed (er_stack_overflow_handler_install); nothing otherwise. */
void er__stack_overflow_guard_thread(void);
/* Tells the fault handler which tasklet stack this thread runs on (NULL name:
 * none). */
void er__stack_running(const er__stack_t *s, const char *name);
/* Canary at the low end of unguarded stacks; checked on every switch. */
void er__stack_check(const er__stack_t *s, const char *name);

#endif
