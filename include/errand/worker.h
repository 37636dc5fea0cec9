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
 * Results: a task's result larger than max_result_bytes (as compact JSON) or
 * nested deeper than 2046 arrays or objects fails the task (ER_ETOOBIG, the
 * reason in its error's message) in every pool, as does one no store can
 * keep: a string that is not UTF-8, a key with a NUL byte (ER_EPARSE). NUL
 * bytes in strings are carried intact.
 * Output: a prefork child's stdout and stderr go to the worker's log (warn
 * level), line by line, named by the task, rate-limited, dropped rather
 * than block; threads and solo tasks write to the worker's own fds.
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
 * er_worker_run ignores SIGPIPE (as servers do) and SIGXFSZ, installs the
 * tasklet stack overflow reporter (er_stack_overflow_handler_install, which
 * hands every other fault to the handler installed before it), and installs
 * SIGTERM and SIGINT handlers: the first signal stops
 * taking tasks, lets the running ones finish within grace_ms and gives the
 * rest back to the queue; a second gives everything back at once. Nothing is
 * lost either way.
 *
 * Embedded (er_worker_start): a worker inside a host process, a web server
 * say, on threads of its own, that leaves the process to its host. It
 * changes no signal's disposition (no SIGTERM, SIGINT, SIGPIPE, SIGXFSZ,
 * SIGSEGV or SIGBUS handler): the host stops it with er_worker_stop. Its
 * threads (its loop's, its store thread, the threads pool's) block every
 * signal but the faults a thread raises on itself (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGTRAP, SIGSYS, SIGABRT), so a signal sent to the process is
 * always delivered to one of the host's threads, and a write to a closed
 * pipe or socket, or past a file size limit, fails with EPIPE or EFBIG on
 * the worker's threads (its tasks' too) instead of raising a signal. A
 * tasklet task that overflows its stack is reported only when the host has
 * called er_stack_overflow_handler_install before er_worker_start; otherwise
 * it is a plain SIGSEGV. It never calls exit. Pools: threads and solo;
 * prefork is refused (it would fork the host, a copy of a process whose
 * other threads may hold locks the child then waits on forever). Several
 * may run at once, and a process may start and join them as often as it
 * likes.
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

/* The options' ranges: er_worker_new refuses anything outside them. */
#define ER_WORKER_MAX_QUEUES 64
#define ER_WORKER_MAX_CONCURRENCY 4096
#define ER_WORKER_MAX_PREFETCH 1000
#define ER_WORKER_MIN_LEASE_MS 100
#define ER_WORKER_MAX_LEASE_MS 86400000      /* a day */
#define ER_WORKER_MIN_HEARTBEAT_MS 100
#define ER_WORKER_MAX_HEARTBEAT_MS 3600000   /* an hour */
#define ER_WORKER_MAX_GRACE_MS 86400000      /* grace_ms and revoke_grace_ms: a day */

typedef struct er_worker_opts {
  const char *store_url;      /* NULL: $ERRAND_STORE, else sqlite:errand.db */
  const char *const *queues;  /* consumed in this order of priority; NULL: {"default"};
                                 at most ER_WORKER_MAX_QUEUES non-empty names */
  size_t nqueues;
  int concurrency;            /* tasks at once, 1..ER_WORKER_MAX_CONCURRENCY; 0: the
                                 number of CPUs (at most the maximum) */
  er_pool_kind_t pool;
  int64_t lease_ms;           /* ER_WORKER_MIN_LEASE_MS..ER_WORKER_MAX_LEASE_MS; 0: 30000 */
  int64_t heartbeat_ms;       /* ER_WORKER_MIN_HEARTBEAT_MS..ER_WORKER_MAX_HEARTBEAT_MS;
                                 0: 2000 */
  int64_t grace_ms;           /* warm shutdown wait, 1..ER_WORKER_MAX_GRACE_MS; 0: 30000 */
  int64_t revoke_grace_ms;    /* a revoked running task is killed after,
                                 1..ER_WORKER_MAX_GRACE_MS; 0: 2000 */
  int prefetch;               /* tasks reserved per slot, running or waiting (Celery's
                                 prefetch multiplier), 1..ER_WORKER_MAX_PREFETCH; 0: 4.
                                 1 for long tasks, so a busy worker holds none back
                                 from idle ones */
  bool quiet;                 /* no start-up banner on stderr */
  size_t max_result_bytes;    /* a task's result, as compact JSON, at most this many
                                 bytes, else the task fails (ER_ETOOBIG); 0: 16 MiB,
                                 or the store's max_payload when that is larger */
  const char *task_output;    /* prefork: what tasks print is appended to this file
                                 instead of the log (created 0600: it may be as
                                 private as the args); NULL: the log */
  const char *base_url;       /* the base of pipelines' callback URLs
                                 (er_pipe_callback_url), http:// or https://;
                                 NULL: $ERRAND_BASE_URL. Borrowed: it must
                                 outlive the worker */
  const char *secret;         /* callback URLs' tokens are made under this secret
                                 (at least ER_SECRET_MIN_LEN bytes) instead of
                                 the one the store keeps; an HTTP server must be
                                 given the same (er_http_opts_t.secret) to accept
                                 them. NULL or "": the store's. Not kept: the
                                 worker keeps a key made from it */
  bool celery;                /* also consume Celery (protocol v2) messages from the
                                 Redis lists of the same queue names (default queue
                                 "celery"), writing results as Celery's Redis backend
                                 does (docs/celery.md); a store that is not redis://
                                 is ER_EINVAL */
  int64_t celery_visibility_ms; /* celery: an unacknowledged Celery message older than
                                 this goes back to its queue (kombu's
                                 visibility_timeout); 0: 3600000, as kombu */
  bool celery_track_started;  /* celery: write the STARTED state ({"pid","hostname"})
                                 when a Celery task is handed to a slot, as Celery's
                                 task_track_started does (not for ignore_result
                                 tasks); ignored without celery */
} er_worker_opts_t;

/* Makes a worker; nothing runs until er_worker_run. ER_EINVAL, errmsg
 * naming the option, for an option out of its range above (negative numbers,
 * too many queues, a NULL or empty queue name, an unknown pool); otherwise
 * errors as er_store_open (ER_EINVAL for a malformed store URL).
 * errmsg (may be NULL) gets the reason. */
int er_worker_new(const er_worker_opts_t *opts, er_worker_t **out, char *errmsg,
                  size_t errmsg_size);
/* Runs until stopped (a signal, or er_worker_stop). Returns 0, or ER_ENOENT
 * when it stopped because its store's file was deleted (see docs/queue.md). */
int er_worker_run(er_worker_t *w);
/* Asks the worker to stop: warm (now false: the running tasks finish within
 * grace_ms, those reserved ahead go back at once) or at once (now true:
 * everything goes back); a warm stop asked for while one is under way
 * stops at once, as a second SIGTERM does. Returns at once; any thread,
 * until the worker is freed (er_worker_free, er_worker_join). Not
 * async-signal-safe: a host's signal handler should wake a thread that
 * calls it. */
void er_worker_stop(er_worker_t *w, bool now);
void er_worker_free(er_worker_t *w); /* accepts NULL */

/* Makes a worker as er_worker_new does and runs it, embedded (see above),
 * on a thread of its own; returns once its loop, store thread and pool are
 * up (it then sends its first heartbeat and takes tasks). ER_EINVAL for
 * opts NULL, for pool ER_POOL_PREFORK, or as er_worker_new; the error of
 * its start-up (ER_ESYS, ER_ENOMEM) otherwise, with nothing left running.
 * errmsg (may be NULL) gets the reason. Any thread; opts and what it points
 * to are copied (base_url is borrowed, as for er_worker_new). End it with
 * er_worker_stop, then er_worker_join, never er_worker_run or
 * er_worker_free. */
int er_worker_start(const er_worker_opts_t *opts, er_worker_t **out, char *errmsg,
                    size_t errmsg_size);
/* Waits for a worker started by er_worker_start to end (after er_worker_stop,
 * or when its store's file was deleted) and frees it. *rc (rc may be NULL)
 * gets what er_worker_run returned (0, or ER_ENOENT). Returns 0, or
 * ER_EINVAL (nothing done) for NULL or a worker er_worker_start did not
 * start. Call it once, from any thread but the worker's own (so not from a
 * task); er_worker_stop may be called until it has been. */
int er_worker_join(er_worker_t *w, int *rc);
const char *er_worker_id(const er_worker_t *w);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
