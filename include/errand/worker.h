/*
 * errand/worker.h: a worker consumes queues and runs their tasks.
 *
 * Pools:
 *   prefork  (default) supervised child processes. A task that segfaults,
 *            aborts or passes its hard time limit fails (or is retried by its
 *            policy) with the signal named in its error; the child is replaced.
 *   threads  worker threads in this process.
 *   solo     on the worker's loop thread, one at a time.
 * Tasklet tasks run as tasklets on the worker's loop in every pool.
 *
 * Delivery is at least once: tasks are reserved under a lease renewed while
 * they run; a worker that dies loses its leases and any live worker puts those
 * tasks back in the queue when the leases end. A task whose lease this worker
 * lost is not run (or is stopped) and its outcome is not written.
 *
 * Threads: er_worker_run runs the worker's loop on the calling thread and
 * makes every store call on a store thread of its own (the loop never waits
 * on the store); the pools add their own threads or processes.
 *
 * er_worker_run ignores SIGPIPE (as servers do), installs the tasklet stack
 * overflow reporter (er_stack_overflow_handler_install, which hands every
 * other fault to the handler installed before it), and installs SIGTERM and
 * SIGINT handlers: the first signal stops
 * taking tasks, lets the running ones finish within grace_ms and gives the
 * rest back to the queue; a second gives everything back at once. Nothing is
 * lost either way.
 */
#ifndef ERRAND_WORKER_H
#define ERRAND_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "errand/common.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

typedef enum er_pool_kind { ER_POOL_PREFORK = 0, ER_POOL_THREADS, ER_POOL_SOLO } er_pool_kind_t;
/* "prefork", "threads", "solo" and back; -1 for an unknown name. */
const char *er_pool_name(er_pool_kind_t k);
int er_pool_from_name(const char *s);

typedef struct er_worker er_worker_t;

typedef struct er_worker_opts {
  const char *store_url;      /* NULL: $ERRAND_STORE, else sqlite:errand.db */
  const char *const *queues;  /* consumed in this order of priority; NULL: {"default"} */
  size_t nqueues;
  int concurrency;            /* tasks at once; 0: the number of CPUs */
  er_pool_kind_t pool;
  int64_t lease_ms;           /* 0: 30000 */
  int64_t heartbeat_ms;       /* 0: 2000 */
  int64_t grace_ms;           /* warm shutdown wait; 0: 30000 */
  int64_t revoke_grace_ms;    /* a revoked running task is killed after; 0: 2000 */
  int prefetch;               /* tasks reserved per slot, running or waiting (Celery's
                                 prefetch multiplier); 0: 4. 1 for long tasks, so a
                                 busy worker holds none back from idle ones */
  bool quiet;                 /* no start-up banner on stderr */
} er_worker_opts_t;

/* Makes a worker; nothing runs until er_worker_run. Errors as
 * er_store_open; errmsg (may be NULL) gets the reason. */
int er_worker_new(const er_worker_opts_t *opts, er_worker_t **out, char *errmsg,
                  size_t errmsg_size);
/* Runs until stopped (a signal, or er_worker_stop). Returns 0, or ER_ENOENT
 * when it stopped because its store's file was deleted (see docs/queue.md). */
int er_worker_run(er_worker_t *w);
/* Asks the worker to stop: warm (finish running tasks) or at once. Any thread. */
void er_worker_stop(er_worker_t *w, bool now);
void er_worker_free(er_worker_t *w); /* accepts NULL */
const char *er_worker_id(const er_worker_t *w);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
