/*
 * errand/task.h: tasks, the C functions workers run.
 *
 * A task is registered under a name with ER_TASK, usually in a shared library
 * that `errand worker -A ./libmytasks.so` loads: registration happens when the
 * library loads, so every task in it is found.
 *
 *   static int add(er_task_t *t, json_t **result) {
 *     json_t *args = er_task_args(t);
 *     *result = json_integer(json_integer_value(json_array_get(args, 0)) +
 *                            json_integer_value(json_array_get(args, 1)));
 *     return 0;
 *   }
 *   ER_TASK("add", add, .max_retries = 5);
 *
 * A task returns 0 with *result set to a new JSON reference (NULL means null),
 * or a negative code: `return er_task_fail(t, ER_EINVAL, "no such user %s", u);`
 * or `return er_task_retry(t, 5000, ER_EUNAVAILABLE, "the mail server is down");`.
 * A result larger than the worker's limit (er_worker_opts_t.max_result_bytes,
 * 16 MiB by default) as compact JSON, or nested deeper than 2046 arrays or
 * objects, fails the task with ER_ETOOBIG instead; the worker frees it.
 *
 * Threads: a task runs on a worker's pool: in a child process (prefork), on a
 * worker thread (threads), on the worker's loop thread (solo), or as a tasklet
 * on the loop (tasklet tasks, with .tasklet = true, in any pool). The er_task_t
 * is valid only during the call and only on that thread. What a prefork task
 * prints goes to the worker's log (see errand/worker.h); other pools' tasks
 * write to the worker's own stdout and stderr.
 */
#ifndef ERRAND_TASK_H
#define ERRAND_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/common.h"
#include "errand/loop.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

typedef struct er_task er_task_t;
typedef struct er_client er_client_t;
typedef int (*er_task_fn)(er_task_t *t, json_t **result);

/* Per-task defaults; zero fields take the defaults named. A sender may
 * override most of them per call (er_send_opts_t). */
typedef struct er_task_def {
  const char *name; /* unique; "add", "mail.send" */
  er_task_fn fn;
  bool tasklet;            /* run as a tasklet on the worker's loop: may er_await */
  const char *queue;       /* default "default" */
  int max_retries;         /* retries after the first attempt; 0: 3; ER_RETRIES_NONE: none */
  bool retry_on_error;     /* retry every failure (crashes included), not only er_task_retry */
  int64_t backoff_ms;      /* first retry delay; doubles each time, with jitter; 0: 1000 */
  int64_t backoff_max_ms;  /* cap on the delay; 0: 600000 */
  int64_t soft_limit_ms;   /* er_task_check reports ER_ETIMEDOUT after this; 0: none */
  int64_t hard_limit_ms;   /* the attempt is killed after this (prefork); 0: none */
  int64_t result_ttl_ms;   /* how long the result is kept; 0: 1 day; -1: forever */
  bool ignore_result;      /* keep no result (the state is still kept) */
} er_task_def_t;

/* max_retries (here and in er_send_opts_t): no retries at all. 0 there means
 * the default, so "none" needs its own value. */
#define ER_RETRIES_NONE (-1)

/* Registers def (not copied: it must outlive the process's use of it, as a
 * static does). Returns 0, ER_EEXIST for a name already taken by another
 * function, ER_EINVAL for a missing name or function. Thread-safe. */
int er_task_register(const er_task_def_t *def);
/* The task registered under name, or NULL. Thread-safe. */
const er_task_def_t *er_task_lookup(const char *name);
/* Calls fn for each registered task, in name order. */
void er_task_foreach(void (*fn)(const er_task_def_t *def, void *ud), void *ud);
/* Loads a shared library of tasks (dlopen); its ER_TASKs register as it loads.
 * Returns 0 or ER_ENOENT with the loader's message in errmsg. */
int er_task_load_library(const char *path, char *errmsg, size_t errmsg_size);

#define ER__CAT2(a, b) a##b
#define ER__CAT(a, b) ER__CAT2(a, b)
/* ER_TASK("name", fn, .option = value, ...): registers fn when the program or
 * library loads. */
#define ER_TASK(name_, fn_, ...)                                                 \
  static const er_task_def_t ER__CAT(er__task_def_, __LINE__) = {                \
      .name = (name_), .fn = (fn_), __VA_ARGS__};                                \
  __attribute__((constructor)) static void ER__CAT(er__task_reg_, __LINE__)(void) { \
    er_task_register(&ER__CAT(er__task_def_, __LINE__));                         \
  }

/* ---- Inside a task ---- */

const char *er_task_id(const er_task_t *t);
const char *er_task_name(const er_task_t *t);
int er_task_attempt(const er_task_t *t); /* 1 for the first attempt */
int er_task_retries(const er_task_t *t); /* retries used before this attempt */
/* Borrowed from t: an array, an object, an object (empty when not sent). */
json_t *er_task_args(const er_task_t *t);
json_t *er_task_kwargs(const er_task_t *t);
json_t *er_task_context(const er_task_t *t);

/* Reports progress, 0..1, with an optional message; pollers see it in
 * er_status. Rate-limited to a few writes a second; the last call is always
 * written before the result. Returns 0. */
int er_task_progress(er_task_t *t, double fraction, const char *msg);

/* 0 while the task should go on; ER_ETIMEDOUT past its soft time limit;
 * ER_EREVOKED when it was revoked. Long tasks call it now and then and return
 * its code when it is not 0. */
int er_task_check(er_task_t *t);

/* Sets the error the attempt fails with and returns code (negative). */
int er_task_fail(er_task_t *t, int code, const char *fmt, ...) ER_PRINTF(3, 4);
/* Asks for another attempt after countdown_ms (< 0: the task's backoff) and
 * returns ER_ERETRY, for `return er_task_retry(...)`. When the retries are
 * spent the task fails with code and the message instead. */
int er_task_retry(er_task_t *t, int64_t countdown_ms, int code, const char *fmt, ...)
    ER_PRINTF(4, 5);

/* For tasklet tasks: the worker's loop, and a client on the worker's store for
 * sending subtasks and awaiting their results (er_send_async,
 * er_result_future). NULL in other tasks' children; for them open a client. */
er_loop_t *er_task_loop(const er_task_t *t);
er_client_t *er_task_client(const er_task_t *t);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
