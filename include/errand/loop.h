/*
 * errand/loop.h: the event loop, with the semantics of App Engine ndb's
 * eventloop, on libuv.
 *
 * A loop belongs to one thread: every function here must be called on that
 * thread, except er_loop_ref(), er_loop_unref() and er_loop_stop(), which any
 * thread may call, and the future functions documented as thread-safe in
 * errand/future.h.
 *
 * One step of the loop (er_loop_run0) does the first of these that applies:
 *   1. runs the oldest call made with er_loop_call_soon (FIFO);
 *   2. runs the next idler, unless every idler is inactive;
 *   3. runs the earliest due timer (timers due at the same time run in the
 *      order they were made);
 *   4. otherwise reports how long until the next timer, or that there is
 *      nothing to do.
 * er_loop_run1 additionally waits: for I/O and for completions from other
 * threads while libuv has work or the loop is referenced (er_loop_ref), else
 * for the next timer. er_loop_run repeats er_loop_run1 until the loop is empty
 * or stopped. A loop whose idlers are all inactive and that has nothing else to
 * do counts as empty, as in ndb.
 */
#ifndef ERRAND_LOOP_H
#define ERRAND_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/common.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

typedef struct er_loop er_loop_t;
typedef struct er_timer er_timer_t;
struct uv_loop_s;

typedef void (*er_call_fn)(void *arg);

/* What an idler answers each time it runs (ndb's add_idle contract). */
typedef enum er_idle_result {
  ER_IDLE_REMOVE = 0,   /* done: take me off the list (ndb: None) */
  ER_IDLE_INACTIVE = 1, /* keep me, but I did nothing (ndb: False) */
  ER_IDLE_ACTIVE = 2    /* keep me, I did something (ndb: True) */
} er_idle_result_t;
typedef er_idle_result_t (*er_idle_fn)(void *arg);

/* A clock the loop reads for timers. Tests use it to run time forward by hand.
 * now_ns: the current time in nanoseconds, any fixed origin. sleep_ns: called
 * when the loop has nothing to do but wait for a timer that far away; a test
 * clock advances itself here. */
typedef struct er_clock {
  uint64_t (*now_ns)(void *ud);
  void (*sleep_ns)(void *ud, uint64_t ns);
  void *ud;
} er_clock_t;

typedef struct er_loop_opts {
  /* Stack size of tasklets spawned on this loop without their own size;
   * 0 means 64 KiB. Rounded up to the page size. */
  size_t stack_size;
  /* Run on this libuv loop instead of one the loop owns. Not closed by
   * er_loop_free. */
  struct uv_loop_s *uv;
  /* A clock for timers; NULL means the monotonic clock. Copied. */
  const er_clock_t *clock;
} er_loop_opts_t;

/* Makes a loop for the calling thread. opts may be NULL. Returns 0, ER_ENOMEM,
 * or ER_ESYS when libuv fails. The thread's current loop becomes this one if it
 * had none (see er_loop_current). Touches no signal disposition (see
 * er_stack_overflow_handler_install). */
int er_loop_new(er_loop_t **out, const er_loop_opts_t *opts);

/* Frees the loop. Pending calls and timers are dropped; tasklets still
 * suspended have their stacks released without unwinding, so whatever their
 * frames own leaks (run the loop to the end first). Futures made on this loop
 * must not be used after. Accepts NULL. */
void er_loop_free(er_loop_t *loop);

/* The loop current on this thread: the one running here (inside er_loop_run*
 * or a tasklet), else the one er_loop_new made current (the first made while
 * the thread had none). Freeing that loop leaves the thread with none, even if
 * it made others: use the handles you keep, not this, when a thread has
 * several loops. NULL if none. */
er_loop_t *er_loop_current(void);

/* The libuv loop underneath, for adding handles of your own. */
struct uv_loop_s *er_loop_uv(er_loop_t *loop);

/* Runs fn(arg) from the loop, after calls made before it. Returns 0 or
 * ER_ENOMEM. */
int er_loop_call_soon(er_loop_t *loop, er_call_fn fn, void *arg);

/* Runs fn(arg) from the loop once delay_ms have passed on the loop's clock.
 * Returns the timer, owned by the loop until it fires or is cancelled, or NULL
 * on ER_ENOMEM. The pointer is invalid once fn has started. */
er_timer_t *er_loop_call_later(er_loop_t *loop, uint64_t delay_ms, er_call_fn fn, void *arg);
/* As er_loop_call_later, with nanoseconds. */
er_timer_t *er_loop_call_later_ns(er_loop_t *loop, uint64_t delay_ns, er_call_fn fn, void *arg);

/* Cancels a timer that has not fired. Returns 0, or ER_EINVAL for NULL. */
int er_timer_cancel(er_timer_t *timer);

/* Adds an idler, run when there is no call ready (see er_idle_result_t).
 * Returns 0 or ER_ENOMEM. */
int er_loop_add_idle(er_loop_t *loop, er_idle_fn fn, void *arg);

/* One step, without waiting (see above). Returns 0 when it ran something, the
 * nanoseconds until the next timer when that is all there is, or -1 when there
 * is nothing at all. */
int64_t er_loop_run0(er_loop_t *loop);

/* One step, waiting if need be. Returns true when it ran or waited for
 * something, false when the loop is empty. */
bool er_loop_run1(er_loop_t *loop);

/* Runs until the loop is empty or er_loop_stop is called. Returns 0. */
int er_loop_run(er_loop_t *loop);

/* Makes er_loop_run return after the current step. Thread-safe. */
void er_loop_stop(er_loop_t *loop);

/* The loop's clock, in nanoseconds. */
uint64_t er_loop_now_ns(er_loop_t *loop);

/* Keeps the loop from counting as empty while work is outstanding elsewhere,
 * such as a future that another thread will complete: er_loop_run1 then
 * blocks for it instead of returning. Every ref needs one unref. Thread-safe. */
void er_loop_ref(er_loop_t *loop);
void er_loop_unref(er_loop_t *loop);

/* ---- Tasklet stack overflows ---------------------------------------------
 * Each tasklet stack has a guard page below it (see docs/loop.md), so an
 * overflow faults instead of corrupting memory: the process dies by SIGSEGV.
 * errand installs no signal handler of its own accord. A program that wants
 * the overflow named on stderr ("errand: tasklet stack overflow in 'name'
 * (stack of N bytes; ...)") before it dies calls this once:
 *
 *   - installs, process-wide, a SIGSEGV and SIGBUS handler (SA_ONSTACK) that
 *     recognises a fault on the running tasklet's guard page, writes that line
 *     (write(2) only: it is async-signal-safe) and ends the process by the
 *     default action;
 *   - hands every other fault, and any SIGSEGV or SIGBUS sent with kill or
 *     raise, to the disposition installed before it: that handler runs (with
 *     its sa_mask added and SA_RESETHAND honoured), SIG_DFL ends the process
 *     as it would have, SIG_IGN ignores a sent signal (a real fault cannot be
 *     ignored, so it ends the process);
 *   - gives the calling thread, and each thread that makes a loop afterwards,
 *     an alternate signal stack (64 KiB, unmapped when the thread ends; a
 *     thread's own is kept), since an overflowing stack has no room for the
 *     handler. A thread that made its
 *     loop before the call gets none: call this at start-up, before starting
 *     threads that run tasklets.
 * Idempotent; any thread. A handler installed after this one replaces it (as
 * sigaction does) and should chain to it in turn. Returns 0, or ER_ESYS when
 * sigaction fails (nothing is then installed). */
int er_stack_overflow_handler_install(void);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
