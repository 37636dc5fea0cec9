/*
 * errand/client.h: sending tasks and reading their outcome.
 *
 * A client is a connection to a store (errand/store.h names them by URL). It
 * must not be used across fork(); open another in the child.
 *
 * Threads and blocking: a client may be used from several threads. Every
 * call except the futures' blocks on the store (a store call, or a few);
 * those short calls are serialised on the client's own store handle. Only
 * er_result with a timeout waits for long, and it waits on a store handle
 * of its own: a thread blocked in er_result holds up no other thread's
 * calls on the same client. er_client_last_error is the last failure of any
 * thread: read it on the thread that failed, before that thread or another
 * makes a call that may fail.
 *
 * Futures: er_send_async runs the send on libuv's thread pool; result
 * futures are watched by a thread the client starts on the first
 * er_result_future, with a store handle of its own. Neither blocks the
 * loop: the futures complete from those threads, and their callbacks run on
 * the loop's thread (errand/future.h).
 *
 * Errors: 0 or a negative ER_E* code; er_client_last_error() keeps a one-line
 * detail of the last failure on that client.
 */
#ifndef ERRAND_CLIENT_H
#define ERRAND_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/common.h"
#include "errand/future.h"
#include "errand/loop.h"
#include "errand/store.h"
#include "errand/task.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

/* Opens a client on the store named by url: NULL means $ERRAND_STORE, else
 * sqlite:errand.db. Errors as er_store_open; errmsg (may be NULL) gets the
 * reason. */
int er_client_open(const char *url, er_client_t **out, char *errmsg, size_t errmsg_size);
/* Closes c (accepts NULL). It stops the result futures' watcher thread and
 * waits for it to end; futures still waiting fail with ER_ECANCELED (done at
 * once when called on their loop's thread, else when that loop next runs).
 * No call on c may be in progress or follow, on any thread. */
void er_client_close(er_client_t *c);
const char *er_client_last_error(const er_client_t *c);
const char *er_client_url(const er_client_t *c);

/* What a send may carry (else ER_EINVAL, with the reason and where in
 * er_client_last_error, e.g. "send: kwargs.x[3]: invalid UTF-8"): every
 * string and object key in args, kwargs and context valid UTF-8, no key with
 * a NUL byte (a NUL inside a string value, JSON's \u0000, is carried intact),
 * nesting at most ER_SEND_MAX_DEPTH deep, every value counted (args itself
 * is level 1, and a number inside 2,048 arrays is level 2,049: the depth the
 * stores' JSON parser reads back); task and queue names at most
 * ER_SEND_MAX_NAME bytes, name and key at most ER_SEND_MAX_KEY, all valid
 * UTF-8. Their bytes count toward the store's payload limit with args, kwargs
 * and context (ER_ETOOBIG past it). */
#define ER_SEND_MAX_DEPTH 2048
#define ER_SEND_MAX_NAME 255
#define ER_SEND_MAX_KEY 1024

/* Options of one send; zero means the task's default (or none). Negative
 * times and limits are refused (ER_EINVAL), as is a countdown_ms or
 * expires_ms that would carry now + it past INT64_MAX. */
typedef struct er_send_opts {
  const char *queue;      /* default: the task's queue, else "default" */
  int priority;           /* higher first; default 0; any int (INT_MIN..INT_MAX):
                             both stores order the whole range exactly */
  int64_t countdown_ms;   /* run no sooner than this from now */
  int64_t eta_ms;         /* or at this wall-clock time (ms since the epoch) */
  int64_t expires_ms;     /* revoke if not started this long after sending.
                             When that is at or before the eta, the task can
                             never start: it falls due at its expiry and the
                             first reserve after that ends it REVOKED (the
                             expired error), never run, never kept waiting */
  const char *name;       /* App Engine named task: ER_EEXIST / ER_ETOMBSTONED */
  const char *key;        /* the polling key: er_status / er_result by key */
  bool if_absent;         /* with key: return the live task for the key instead */
  bool ignore_result;
  int64_t result_ttl_ms;  /* -1: forever; below -1: ER_EINVAL */
  json_t *context;        /* an object the task reads with er_task_context (borrowed) */
  int max_retries;        /* retries after the first attempt: 0 (unset) the
                             task's default; ER_RETRIES_NONE none; n > 0 n.
                             The record stores -1, 0 and n (er_task_rec_t).
                             Below ER_RETRIES_NONE: ER_EINVAL. */
  int64_t soft_limit_ms, hard_limit_ms;
} er_send_opts_t;

/* Sends task with args (an array; NULL means []) and kwargs (an object; NULL
 * means {}), both borrowed. On success *id (may be NULL) gets the task's id:
 * with .if_absent, that of the existing task when there is one, and then
 * *existed (may be NULL) is true. Once this returns 0 the task is durable.
 * ER_EINVAL for args that are not an array or kwargs not an object, or for
 * anything the rules above ER_SEND_MAX_DEPTH refuse (checked before anything
 * is encoded, without recursion: a value nested 100,000 deep is refused, not
 * a crash), ER_ETOOBIG past the store's payload limit, ER_EEXIST /
 * ER_ETOMBSTONED for a taken name. */
int er_send(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
            const er_send_opts_t *opts, er_id_t *id);
int er_send_ex(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
               const er_send_opts_t *opts, er_id_t *id, bool *existed);
/* Sends and forgets: the result is not kept. */
int er_fire(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
            const er_send_opts_t *opts);

/* One entry of a batch. */
typedef struct er_send_req {
  const char *task;
  json_t *args, *kwargs;     /* borrowed */
  const er_send_opts_t *opts; /* may be NULL */
} er_send_req_t;
/* Sends n tasks in one transaction: all or none. ids (may be NULL) gets n
 * ids. Each request keeps its own options: one with .if_absent gets the live
 * task for its key when there is one (a task added earlier in the same batch
 * counts), and existed[i] (may be NULL) is then true; one without is always
 * added. A store without transition batches (er_store_apply) cannot mix the
 * two among keyed requests: such a batch is refused with ER_ENOTSUP and
 * nothing is sent. A request the send's checks refuse (see er_send) fails
 * the whole batch, nothing sent, the reason naming it ("send: request 2 of
 * the batch: args[0]: invalid UTF-8", counting from 0). */
int er_send_batch(er_client_t *c, const er_send_req_t *reqs, size_t n, er_id_t *ids);
int er_send_batch_ex(er_client_t *c, const er_send_req_t *reqs, size_t n, er_id_t *ids,
                     bool *existed);

/* The task's record by id, or the newest for key when id is NULL. A task the
 * store does not know gives 0 with state ER_STATE_UNKNOWN. *out is new (free
 * with er_task_rec_free). */
int er_status(er_client_t *c, const char *id, const char *key, er_task_rec_t **out);

/* The outcome, by id or by key. timeout_ms: 0 do not wait; < 0 wait forever;
 * else wait that long, blocking the calling thread (but not the client: see
 * above). Returns 0 with *result (new reference, may be NULL for
 * null; result may be NULL) on SUCCESS; ER_EFAIL on FAILURE, with *error (new
 * reference; error may be NULL) the task's error object; ER_EREVOKED;
 * ER_ESTATE when not finished and not waiting; ER_ETIMEDOUT; ER_ENOENT for an
 * unknown task. */
int er_result(er_client_t *c, const char *id, const char *key, int64_t timeout_ms,
              json_t **result, json_t **error);

/* The newest task's id for key; ER_ENOENT if none. */
int er_id_for_key(er_client_t *c, const char *key, er_id_t *id);
/* The key the task was sent with (new string, free with er_free); ER_ENOENT
 * if the task is unknown or has none. */
int er_key_for_id(er_client_t *c, const char *id, char **key);

/* Revokes: a pending task never runs; a running one is told (er_task_check)
 * and, in the prefork pool, killed after a grace period. */
int er_revoke(er_client_t *c, const char *id);
/* Removes a queue's waiting tasks; *count (may be NULL) gets how many. */
int er_purge(er_client_t *c, const char *queue, size_t *count);

/* ---- Futures on a loop (for tasklets, and the HTTP layer) ----
 * Loop thread only; they never block it. The client must outlive the
 * futures (er_client_close cancels those still waiting). */

/* Done with the new id as a JSON string, or with the send's error. The
 * send's checks (above ER_SEND_MAX_DEPTH) run at the call, before args,
 * kwargs and context are copied: a refused send gives a future already failed
 * with ER_EINVAL or ER_ETOOBIG and the reason. NULL only when out of memory. */
er_future_t *er_send_async(er_client_t *c, er_loop_t *loop, const char *task, json_t *args,
                           json_t *kwargs, const er_send_opts_t *opts);
/* Done with the task's result (JSON) on SUCCESS, or an error: ER_EFAIL with
 * the task's message (the error object's text) on FAILURE, ER_EREVOKED,
 * ER_ETIMEDOUT after timeout_ms (< 0: never), ER_ENOENT, or the store's
 * error when the watcher cannot open it. Completed from the client's watcher
 * thread, woken by the store's change notifications (for its own task when
 * the store can say which finished), not by polling; the future keeps its
 * loop referenced until then. All of a client's result futures must be on
 * one loop (else ER_EINVAL). */
er_future_t *er_result_future(er_client_t *c, er_loop_t *loop, const char *id,
                              int64_t timeout_ms);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
