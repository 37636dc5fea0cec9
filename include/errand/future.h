/*
 * errand/future.h: futures, tasklets and their combinators, with the semantics
 * of App Engine ndb's tasklets module.
 *
 * A future belongs to the loop it was made on. It is pending, then done, once,
 * with a value or an error. Futures are reference counted: a function that
 * returns a new future gives the caller one reference, to be dropped with
 * er_future_unref. A done future keeps its value until its last reference goes.
 *
 * Threads: everything here runs on the future's loop thread, except the
 * er_future_set_* functions and er_future_ref/unref/done, which any thread may
 * call: a completion from another thread is handed to the loop, which runs the
 * callbacks on its own thread. Keep the loop referenced (er_loop_ref, or a
 * future made with er_future_new_external) while such a completion is due,
 * so that waiting on it blocks instead of reporting a deadlock.
 */
#ifndef ERRAND_FUTURE_H
#define ERRAND_FUTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/common.h"
#include "errand/loop.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

typedef struct er_future er_future_t;
typedef struct er_error er_error_t;

/* ---- Values -----------------------------------------------------------------
 * What a future is done with: nothing, an integer, any pointer with an optional
 * destructor (run when the last reference to the future goes), or a JSON value
 * (the future holds one reference to it). */
typedef enum er_value_kind {
  ER_VALUE_NONE = 0,
  ER_VALUE_INT,
  ER_VALUE_PTR,
  ER_VALUE_JSON
} er_value_kind_t;

/* ---- Errors -------------------------------------------------------------------
 * An error is a code, a message and the chain of tasklets it passed through,
 * innermost first. Errors are immutable and reference counted. */
int er_error_code(const er_error_t *err);
const char *er_error_message(const er_error_t *err);
size_t er_error_chain_len(const er_error_t *err);
/* The name of the i-th tasklet the error passed through, innermost first;
 * NULL when i is out of range. Borrowed from err. */
const char *er_error_chain_at(const er_error_t *err, size_t i);
/* Writes "ENAME: message (in a <- b <- c)" into buf, truncated to size.
 * Returns buf. */
char *er_error_format(const er_error_t *err, char *buf, size_t size);
/* A new error with an empty chain; NULL on ENOMEM. Any thread. */
er_error_t *er_error_new(int code, const char *fmt, ...) ER_PRINTF(2, 3);
er_error_t *er_error_ref(er_error_t *err);
void er_error_unref(er_error_t *err); /* accepts NULL */

/* ---- Futures ------------------------------------------------------------------- */

/* A new pending future on loop; NULL on out of memory. */
er_future_t *er_future_new(er_loop_t *loop);
/* A future that another thread will complete: it keeps loop referenced until
 * it is done (see er_loop_ref). */
er_future_t *er_future_new_external(er_loop_t *loop);
/* A future already done with an integer, or with an error. NULL on ENOMEM. */
er_future_t *er_future_new_int(er_loop_t *loop, int64_t value);
er_future_t *er_future_new_error(er_loop_t *loop, int code, const char *fmt, ...) ER_PRINTF(3, 4);

er_future_t *er_future_ref(er_future_t *f);
void er_future_unref(er_future_t *f); /* accepts NULL */
er_loop_t *er_future_loop(const er_future_t *f);
/* 1 when f points at a live future, 0 otherwise (NULL, or another object). */
int er_is_future(const void *f);

/* Completing. Each returns 0, or ER_EALREADY when f is already done (the
 * value given is then released: a destructor runs, a JSON reference is not
 * taken), or ER_ENOTFUTURE. Thread-safe. */
int er_future_set_none(er_future_t *f);
int er_future_set_int(er_future_t *f, int64_t value);
/* dtor (may be NULL) runs on ptr when the future is freed. */
int er_future_set_ptr(er_future_t *f, void *ptr, void (*dtor)(void *));
/* Takes a new reference to value (borrowed from the caller). */
int er_future_set_json(er_future_t *f, json_t *value);
/* code must be negative; the message is formatted like printf; NULL means the
 * code's own message. */
int er_future_set_error(er_future_t *f, int code, const char *fmt, ...) ER_PRINTF(3, 4);
/* Completes f with err (a reference is taken). */
int er_future_set_error_obj(er_future_t *f, er_error_t *err);
/* Completes dst with src's outcome once src is done (at once if it is):
 * dst then shares src's value. While src is pending, dst holds a reference to
 * it and src none to dst, so dropping dst lets an abandoned src go. ER_EALREADY
 * when dst is done or already waits on a source. Loop thread only, and so is
 * dropping the last reference to a dst still waiting. */
int er_future_set_from(er_future_t *dst, er_future_t *src);

/* Inspecting. */
bool er_future_done(const er_future_t *f);
/* 0 when done with a value, the error's code when done with one, ER_ESTATE
 * while pending. */
int er_future_status(const er_future_t *f);
/* The error, borrowed from f; NULL while pending or when done with a value. */
er_error_t *er_future_error(const er_future_t *f);
er_value_kind_t er_future_kind(const er_future_t *f);
/* The value; 0/NULL when pending, failed or of another kind. The pointer and
 * the JSON value are borrowed from f. */
int64_t er_future_int(const er_future_t *f);
void *er_future_ptr(const er_future_t *f);
json_t *er_future_json(const er_future_t *f);

/* Callbacks. fn(f, arg) runs once f is done. er_future_add_callback always
 * runs it from the loop, even when f is already done; the immediate form runs
 * it inline, at completion or at once if f is done. Loop thread only. Returns
 * 0 or ER_ENOMEM. */
typedef void (*er_future_cb)(er_future_t *f, void *arg);
int er_future_add_callback(er_future_t *f, er_future_cb fn, void *arg);
int er_future_add_immediate_callback(er_future_t *f, er_future_cb fn, void *arg);

/* Waiting. Outside a tasklet, runs f's loop until f is done; inside one,
 * suspends the tasklet (er_await). er_future_wait returns 0 once f is done
 * (whatever its outcome) or ER_EDEADLK when the loop runs dry first.
 * er_future_get_result (and its alias er_future_check_success) return 0 when
 * f succeeded, f's error code when it failed, or ER_EDEADLK. */
int er_future_wait(er_future_t *f);
int er_future_get_result(er_future_t *f);
int er_future_check_success(er_future_t *f);

/* Waits until one of fs is done and stores its index in *index. Returns 0,
 * ER_ENOENT when n == 0 (ndb returns None for an empty set), or ER_EDEADLK. */
int er_future_wait_any(er_future_t *const *fs, size_t n, size_t *index);
/* Waits until all of fs are done and, as ndb, until the loop has turned
 * once more, so the callbacks their completions queued (er_future_add_callback)
 * have run. Returns 0 or ER_EDEADLK. */
int er_future_wait_all(er_future_t *const *fs, size_t n);

/* ---- Tasklets ------------------------------------------------------------------
 * A tasklet is a function that runs on its own stack on a loop and may suspend
 * itself with er_await and er_sleep without blocking the loop. It returns 0 with
 * a value set through er_return_*, or a negative code: er_fail() sets the
 * message; returning the code of an error it just awaited passes that error up,
 * adding this tasklet to its chain.
 */
typedef int (*er_tasklet_fn)(void *arg);

typedef struct er_tasklet_opts {
  const char *name;  /* shown in error chains; copied; NULL: "tasklet" */
  size_t stack_size; /* 0: the loop's default */
} er_tasklet_opts_t;

/* Starts fn(arg) at once, on a new stack, until it first suspends or returns,
 * and returns the future of its outcome (a new reference), already done if fn
 * never suspended. NULL on out of memory. opts may be NULL. Loop thread only;
 * may be called from inside a tasklet.
 *
 * Unobserved failures. A tasklet that fails where nobody looks would fail
 * silently; as ndb does, errand logs it, at ER_LOG_WARN, as
 * "tasklet failed and nobody read its outcome: EIO: message (in a <- b)".
 * "Nobody" is known when the last reference to the tasklet's future goes
 * (the caller's and the one the running tasklet holds, whichever is last) and
 * its outcome was never observed. Observing is reading or passing on the
 * outcome: er_future_status, er_future_error, er_future_get_result,
 * er_future_check_success, er_await, er_await_all, er_tasklet_run, handing it
 * on with er_future_set_from (or er_return_future), or a combinator taking it
 * as a dependent. Waiting alone (er_future_wait, _wait_any, _wait_all,
 * er_future_done) and reading a value (er_future_int, ...) are not. So a
 * future dropped without a look logs once; er_loop_free drops the futures of
 * tasklets still suspended, which have not failed, and logs nothing. */
er_future_t *er_tasklet_spawn(er_loop_t *loop, er_tasklet_fn fn, void *arg,
                              const er_tasklet_opts_t *opts);
/* Spawns with the function's own name in error chains. */
#define er_spawn(loop, fn, arg) \
  er_tasklet_spawn((loop), (fn), (arg), &(er_tasklet_opts_t){.name = #fn})

/* ndb's toplevel (and synctasklet): makes a loop of its own, current on this
 * thread while it runs, starts fn(arg) on it (opts as for er_tasklet_spawn;
 * NULL is fine), runs the loop until fn's future is done and then until the
 * loop is empty, so that what fn started and left running finishes too, frees
 * the loop, and gives back the thread's previous current loop.
 * Returns 0 when fn succeeded; fn's error code when it failed (the error is
 * then this thread's current error, er_last_error); ER_EDEADLK when the loop
 * ran dry with fn still suspended; ER_ENOMEM or ER_ESYS when the loop or the
 * tasklet could not be made; ER_ESTATE when called from inside a tasklet (its
 * caller's loop would stop while this one runs: spawn and await instead).
 * out may be NULL. Otherwise *out is NULL unless fn's future is done, and
 * then a new reference to it, detached from the freed loop: read its outcome
 * (er_future_status, _error, _int, _ptr, _json, er_future_list_*) and unref
 * it; er_future_loop() gives NULL and er_future_add_callback ER_ESTATE. Futures
 * reached through it (a MultiFuture's list) are only for reading too.
 * Freeing the loop leaks nothing of errand's; a tasklet still suspended at
 * ER_EDEADLK has its stack released without unwinding (see er_loop_free).
 * Any thread; the loop lives on the calling one. */
int er_tasklet_run(er_tasklet_fn fn, void *arg, const er_tasklet_opts_t *opts, er_future_t **out);
/* Runs with the function's own name in error chains. */
#define er_run(fn, arg, out) \
  er_tasklet_run((fn), (arg), &(er_tasklet_opts_t){.name = #fn}, (out))

/* True when called from inside a tasklet. */
bool er_in_tasklet(void);

/* Inside a tasklet: suspends until f is done, then returns 0 or f's error code
 * (the error is then the tasklet's current error, see er_last_error). Outside a
 * tasklet it behaves as er_future_get_result. ER_ENOTFUTURE when f is not a
 * future; ER_EINVAL when f belongs to another loop. f stays owned by the
 * caller. */
int er_await(er_future_t *f);
/* Awaits every one of fs, then returns 0 or the first error in argument order.
 * Read the values from each future afterwards. */
int er_await_all(er_future_t *const *fs, size_t n);
#define ER_AWAIT_ALL(...)                                          \
  er_await_all((er_future_t *const[]){__VA_ARGS__},                \
               sizeof((er_future_t *const[]){__VA_ARGS__}) / sizeof(er_future_t *))

/* A future on loop done with nothing after ms milliseconds. */
er_future_t *er_sleep_future(er_loop_t *loop, uint64_t ms);
/* Inside a tasklet: suspends for ms milliseconds on the loop's clock. Outside
 * one: runs the current loop for that long. Returns 0, or ER_ENOTASKLET when
 * there is no loop on this thread. */
int er_sleep(uint64_t ms);

/* Setting the tasklet's outcome. er_return_* set the value the tasklet's
 * future will get when it returns 0 (the last call wins). Each returns 0, or
 * ER_ENOTASKLET outside a tasklet. */
int er_return_int(int64_t value);
int er_return_ptr(void *ptr, void (*dtor)(void *));
int er_return_json(json_t *value); /* takes a reference */
/* The tasklet's future will complete as f does (ndb: raise Return(future)). */
int er_return_future(er_future_t *f);
/* Sets the error the tasklet fails with and returns code, for
 * `return er_fail(ER_EINVAL, "bad %s", what);`. Outside a tasklet it sets
 * this thread's current error. */
int er_fail(int code, const char *fmt, ...) ER_PRINTF(2, 3);
/* The current error of this tasklet (or thread): the last one awaited or set
 * with er_fail; borrowed, NULL if none. */
er_error_t *er_last_error(void);

/* ---- Combinators (ndb's MultiFuture, QueueFuture, SerialQueueFuture,
 * ReducingFuture). Each is itself a future: await it, wait on it, unref it.
 * Loop thread only.
 *
 * As in ndb, a dependent's outcome reaches a Multi, Queue or Reducing future
 * from the loop (ndb's add_callback), never inline, even when the dependent is
 * already done: such a combinator is done at the earliest one loop step after
 * its last dependent. A future added again before its outcome has reached the
 * combinator is waited for once (ndb's set of dependents; a MultiFuture, whose
 * outcome cannot tell, dedupes pending ones only). complete() a second
 * time, or after set_error, returns ER_EALREADY on all four (ndb raises).
 *
 * Ownership: add_dependent takes a reference to the dependent, held until its
 * outcome has reached the combinator; the dependent holds none to the
 * combinator. A getq() future waiting for a value holds its queue. So dropping
 * the last reference to a combinator whose dependents never finish frees it
 * and lets go of them, and er_loop_free releases one kept alive only by a
 * dependent's outcome still queued on the loop. */

/* A future list: the value of a MultiFuture, the dependents' futures in
 * insertion order (done ones). Borrowed from the MultiFuture. */
size_t er_future_list_len(const er_future_t *multi);
er_future_t *er_future_list_at(const er_future_t *multi, size_t i);

/* MultiFuture: done when complete() was called and the outcome of every
 * dependent has reached it; then with the list of dependents in insertion
 * order (a future added twice appears twice), or with the first error in
 * insertion order. Adding after complete() fails with ER_ESTATE. */
er_future_t *er_multi_future_new(er_loop_t *loop);
int er_multi_future_add_dependent(er_future_t *mf, er_future_t *f);
int er_multi_future_putq_int(er_future_t *mf, int64_t value);
int er_multi_future_complete(er_future_t *mf);
int er_multi_future_set_error(er_future_t *mf, int code, const char *fmt, ...) ER_PRINTF(3, 4);

/* QueueFuture: getq() returns a new future for the next dependent to finish,
 * in completion order; done with its value or error. A future added twice is
 * handed out once. Once complete() was called and all dependents are taken,
 * getq() fails with ER_EEOF, or with the queue's own error if it has one. The
 * QueueFuture itself is done (with nothing) when complete() was called and
 * every dependent has finished. A pending getq() future keeps the queue alive;
 * dropped, it is taken off the queue's waiters. */
er_future_t *er_queue_future_new(er_loop_t *loop);
int er_queue_future_add_dependent(er_future_t *qf, er_future_t *f);
int er_queue_future_putq_int(er_future_t *qf, int64_t value);
int er_queue_future_complete(er_future_t *qf);
int er_queue_future_set_error(er_future_t *qf, int code, const char *fmt, ...) ER_PRINTF(3, 4);
er_future_t *er_queue_future_getq(er_future_t *qf);

/* SerialQueueFuture: as QueueFuture but in insertion order, so getq() may
 * hand out a future that is still pending. complete() makes it done at once. */
er_future_t *er_serial_queue_future_new(er_loop_t *loop);
int er_serial_queue_future_add_dependent(er_future_t *sf, er_future_t *f);
int er_serial_queue_future_putq_int(er_future_t *sf, int64_t value);
int er_serial_queue_future_complete(er_future_t *sf);
int er_serial_queue_future_set_error(er_future_t *sf, int code, const char *fmt, ...)
    ER_PRINTF(3, 4);
er_future_t *er_serial_queue_future_getq(er_future_t *sf);

/* ReducingFuture: feeds the dependents' values to a reducer in batches of
 * batch_size (0 means 20) as they finish, and feeds each result back in.
 * At the end: no values give nothing, one value is the result without calling
 * the reducer, more are reduced once more. The reducer gets done futures and
 * completes `out` (a pending future on the same loop) at once, or later, as
 * when it hands out to a tasklet with er_future_set_from; it returns 0, or an
 * error code that fails the ReducingFuture. Any error fails it. */
typedef int (*er_reducer_fn)(void *ud, er_future_t *const *values, size_t n, er_future_t *out);
er_future_t *er_reducing_future_new(er_loop_t *loop, er_reducer_fn reducer, void *ud,
                                    size_t batch_size);
int er_reducing_future_add_dependent(er_future_t *rf, er_future_t *f);
int er_reducing_future_putq_int(er_future_t *rf, int64_t value);
int er_reducing_future_complete(er_future_t *rf);
int er_reducing_future_set_error(er_future_t *rf, int code, const char *fmt, ...) ER_PRINTF(3, 4);

/* ---- Blocking work on libuv's thread pool ----------------------------------
 * fn(arg, out) runs on a pool thread and completes out (any er_future_set_*,
 * which is thread-safe); if it returns without doing so, out is completed
 * with its return code as the error, or with nothing when it returned 0.
 * Returns the future (a new reference), NULL on ENOMEM. Loop thread only. */
typedef int (*er_work_fn)(void *arg, er_future_t *out);
er_future_t *er_loop_queue_work(er_loop_t *loop, er_work_fn fn, void *arg);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
