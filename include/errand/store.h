/*
 * errand/store.h: all durable state behind one vtable. The queue, and later
 * the pipelines and the HTTP layer, go through er_store_* only; nothing above
 * this header knows which backend it runs on.
 *
 * Stores are named by URL:
 *   sqlite:PATH[?opt=v&...]          the default, sqlite:errand.db
 *   redis://[:PASSWORD@]HOST:PORT[/DB][?prefix=P]
 * Options common to all backends:
 *   tombstone_ms  how long a finished named task's name stays taken (default 1 day)
 *   max_payload   bytes of args + kwargs + context (compact JSON) and the task,
 *                 queue, name and key accepted per task (default 1 MiB)
 *   pipe_retention_ms  how long a finished pipeline root is kept before the
 *                 cleanup deletes its tree (default 7 days; docs/pipeline.md)
 * sqlite only:
 *   sync=normal|full   full fsyncs every commit (survives power loss); normal
 *                      (default) survives any process crash.
 *   busy_ms            how long a call waits on a locked database (default 5000)
 * redis only (docs/store-redis.md):
 *   prefix             the store's name in Redis, keys errand:{P}:... (default
 *                      "default")
 *   timeout_ms         how long a call may take, reconnecting included, before
 *                      it gives up with ER_EUNAVAILABLE (default 5000)
 *   protocol=celery    sends (enqueue) and reads (get) speak Celery's protocol
 *                      v2, for Python Celery workers (docs/celery.md); other
 *                      values are ER_EINVAL
 *
 * Threads: a store handle is used by one thread at a time; open one per
 * thread (opening is cheap). Every call blocks; the queue layer runs them on
 * libuv's thread pool when it needs futures. A worker makes all its store
 * calls on a store thread of its own, with its own handle, so its loop never
 * waits on the store: the loop only polls that handle's wakeup fd (a poll
 * needs no call) and hands each read of it to the store thread.
 *
 * Errors: 0 or a negative ER_E* code; er_store_last_error() gives the detail
 * (for example SQLite's own message) until the next call on that handle.
 * No call leaves anything half-written: each is one transaction or script.
 *
 * Times are wall-clock milliseconds since the Unix epoch (er_now_wall_ms).
 */
#ifndef ERRAND_STORE_H
#define ERRAND_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/common.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

/* Task states. UNKNOWN is for an id the store never saw (or forgot after its
 * result expired); Celery answers PENDING there, a known confusion. */
typedef enum er_task_state {
  ER_STATE_UNKNOWN = -1,
  ER_STATE_PENDING = 0, /* queued, or scheduled for later */
  ER_STATE_STARTED = 1, /* reserved by a worker under a lease */
  ER_STATE_RETRY = 2,   /* failed an attempt; queued again for later */
  ER_STATE_SUCCESS = 3,
  ER_STATE_FAILURE = 4,
  ER_STATE_REVOKED = 5
} er_task_state_t;

const char *er_state_name(er_task_state_t s); /* "PENDING", ...; static */
/* The state named s (case-insensitive), or ER_STATE_UNKNOWN. */
er_task_state_t er_state_from_name(const char *s);
static inline bool er_state_finished(er_task_state_t s) {
  return s == ER_STATE_SUCCESS || s == ER_STATE_FAILURE || s == ER_STATE_REVOKED;
}

/* One task as the store keeps it. Strings and JSON values are owned by the
 * record (er_task_rec_free releases them); a NULL pointer means absent. */
typedef struct er_task_rec {
  char id[ER_ID_LEN + 1];
  char *task;   /* registered name */
  char *queue;
  int priority; /* higher runs first */
  er_task_state_t state;
  json_t *args;    /* array */
  json_t *kwargs;  /* object */
  json_t *context; /* object: the caller's user and request data */
  char *name;      /* App Engine-style task name, unique while known */
  char *key;       /* polling key */
  int64_t created_ms, eta_ms, expires_ms; /* expires 0: never */
  int64_t started_ms, finished_ms;
  int attempt;     /* reservations so far; fences completions */
  int retries;     /* retries used (lease expiries do not count) */
  int max_retries; /* -1: the task's default; 0: no retries; n: n */
  int64_t soft_limit_ms, hard_limit_ms; /* 0: the task's default */
  int64_t result_ttl_ms;                /* 0: the task's default; -1: forever */
  bool ignore_result;
  bool revoke_requested; /* revoked while running */
  double progress;       /* 0..1, or -1 when never reported */
  char *progress_msg;
  json_t *result; /* SUCCESS: the value */
  json_t *error;  /* FAILURE or RETRY: {"code","name","message",...} */
  char *worker;   /* the worker holding the lease */
  int64_t lease_until_ms;
} er_task_rec_t;

er_task_rec_t *er_task_rec_new(void);
void er_task_rec_free(er_task_rec_t *r); /* accepts NULL */
void er_task_rec_free_array(er_task_rec_t **recs, size_t n);
/* The record as `errand status` prints it and the HTTP API answers it
 * (new; NULL when out of memory): {"id", "state"} and, for a task the store
 * knows, "task", "queue", "key", "name", "attempt", "retries", "progress",
 * "progress_msg", "created", "eta", "expires", "started", "finished" (ISO
 * 8601 UTC with milliseconds), "worker", "error", "args", "kwargs",
 * "context"; fields that do not apply are left out. The result is not
 * included. */
json_t *er_task_rec_json(const er_task_rec_t *r);

typedef struct er_store er_store_t;

/* ---- Opening ---- */

/* Opens the store named by url (NULL: $ERRAND_STORE, else sqlite:errand.db),
 * creating or migrating its schema. ER_EINVAL for a URL that names no backend,
 * ER_EUNAVAILABLE when it cannot be reached, ER_ECORRUPT for a file that is not
 * an errand store (the message says "database file is truncated" for a file
 * cut short, "is corrupt (not an SQLite database)" for one that is not
 * SQLite's), ER_EBUSY when locked past busy_ms. On failure *out is NULL
 * and errmsg (may be NULL) gets a one-line reason. */
int er_store_open(const char *url, er_store_t **out, char *errmsg, size_t errmsg_size);
void er_store_close(er_store_t *s); /* accepts NULL */
const char *er_store_last_error(const er_store_t *s);
/* The URL as given to er_store_open, password included: print it only
 * through er_url_redact. */
const char *er_store_url(const er_store_t *s);
/* Copies url into out (size bytes, always NUL-terminated when size > 0) with
 * the password of its userinfo replaced by "***": redis://:pw@h:1/0 gives
 * redis://:***@h:1/0, redis://user:pw@h gives redis://user:***@h, and a
 * userinfo without a colon (redis://pw@h) is hidden whole. A URL without
 * userinfo is copied as is. Pure, thread-safe, works on malformed URLs too.
 * 0, ER_EINVAL for a NULL url or out or a zero size, ER_ETOOBIG when out was
 * too small (out then holds a truncated copy, never a password). */
int er_url_redact(const char *url, char *out, size_t size);
/* The resolved default URL: $ERRAND_STORE or sqlite:errand.db. Static. */
const char *er_store_default_url(void);
size_t er_store_max_payload(const er_store_t *s);

/* ---- Sending ---- */

/* How er_store_enqueue treats an existing task with the same key. */
typedef enum er_enqueue_flags {
  ER_ENQ_IF_ABSENT = 1 /* a live task for the key (pending, running, retrying,
                          or succeeded with its result still kept) is returned
                          instead of adding one */
} er_enqueue_flags_t;

/* Adds tasks, all or none, in one transaction. Each record must have id, task,
 * queue, args, kwargs, eta_ms and created_ms set; state is set to PENDING.
 * existing[i] (may be NULL) is set to true when the key rule returned an
 * existing task, whose id is then copied into recs[i]->id.
 * ER_EEXIST: a named task by that name is known and not finished;
 * ER_ETOMBSTONED: it finished less than tombstone_ms before the record's
 * created_ms; ER_ETOOBIG: a payload over max_payload (nothing is written). */
int er_store_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                     bool *existing);

/* ---- Working ---- */

typedef struct er_reserve_req {
  const char *const *queues; /* by priority: earlier queues first */
  size_t nqueues;
  const char *worker; /* worker id, stored with the lease */
  int64_t now_ms;
  int64_t lease_ms;
  size_t max; /* at most this many */
} er_reserve_req_t;

/* Takes up to req->max due tasks (eta <= now, not expired), highest priority
 * first, then oldest, moving them to STARTED under a lease and counting an
 * attempt. Tasks past their expiry are moved to REVOKED instead. A task whose
 * stored record cannot be decoded (invalid JSON or UTF-8, args not an array,
 * no task name, a number field that is not one, an unknown state) is moved to
 * FAILURE with an ER_ECORRUPT error "task record cannot be decoded: FIELD:
 * REASON", never handed out, and the tasks behind it are taken instead.
 * *out is a new array of new records (free with er_task_rec_free_array); *n
 * may be 0. */
int er_store_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out, size_t *n);

/* Extends the leases of tasks this worker runs. For each, revoked[i] (may be
 * NULL) tells whether a revoke was requested; a lease lost to another attempt
 * gives fenced[i] = true (may be NULL). */
int er_store_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                   int64_t lease_until_ms, bool *revoked, bool *fenced);

/* What a worker reports when an attempt ends. */
typedef struct er_completion {
  const char *id;
  int attempt;
  er_task_state_t state; /* SUCCESS, FAILURE, RETRY or REVOKED; or PENDING:
                            give the task back to the queue (a worker that
                            stops), counting no retry */
  json_t *result;        /* SUCCESS (borrowed; may be NULL) */
  json_t *error;         /* FAILURE/RETRY (borrowed) */
  int64_t retry_eta_ms;  /* RETRY: when to run again. PENDING: not due before
                            then when that is later than the task's eta (a
                            worker that lacks the task gives it back for a
                            while); 0 leaves the eta as it was */
  int64_t now_ms;
} er_completion_t;

/* Records outcomes, each fenced by attempt: fenced[i] (may be NULL) is set when
 * the attempt no longer owns the task, whose record is then left alone. */
int er_store_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced);

/* Progress of a running attempt. ER_EFENCED when the attempt lost its lease. */
int er_store_progress(er_store_t *s, const char *id, int attempt, double progress,
                      const char *msg);

/* ---- Reading ---- */

/* The task by id, or the newest task for key when id is NULL. ER_ENOENT when
 * there is none. *out is a new record. A record that cannot be decoded is
 * still returned (0), its undecodable values NULL and, unless it finished
 * with an error of its own, error set to the reason (ER_ECORRUPT, "task
 * record cannot be decoded: ..."). */
int er_store_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out);

/* ---- Managing ---- */

/* Revokes a task: a pending one never runs (REVOKED at once); a running one
 * gets revoke_requested, which its worker sees when it renews the lease.
 * *state (may be NULL) gets the state it had. ER_ENOENT if unknown; revoking a
 * finished task changes nothing and returns 0. */
int er_store_revoke(er_store_t *s, const char *id, er_task_state_t *state);

/* Removes the queued (not running) tasks of a queue (NULL: of every queue);
 * *count gets how many. Their names stay tombstoned. */
int er_store_purge(er_store_t *s, const char *queue, size_t *count);

/* Housekeeping any live worker does now and then: tasks whose lease ended go
 * back to the queue; expired results and their tasks are deleted; expired
 * tombstones are dropped. Counts (may be NULL) say what was done. */
typedef struct er_maint_counts {
  size_t requeued, expired_results;
} er_maint_counts_t;
int er_store_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts);

/* Worker heartbeats: info is a JSON object with at least "id"; it is stored
 * with the time. ttl_ms after the last beat the worker is no longer listed. */
int er_store_heartbeat(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms);
/* Removes a worker's entry (at a clean shutdown). */
int er_store_worker_gone(er_store_t *s, const char *worker_id);
/* *out: new array of the live workers' info objects, each with
 * "heartbeat_ms" (the time of its last beat) added. */
int er_store_workers(er_store_t *s, int64_t now_ms, json_t **out);
/* *out: new object {"queues": {"name": {"PENDING": n, ...}}, "total": {...},
 * "names": {"task name": {"PENDING": n, ...}}}: tasks by queue and state, in
 * all, and by task name and state. Each counter is kept in the transactions
 * that change tasks (a read never walks the tasks); queues and names whose
 * counts are all zero are left out. On Redis the by-name counts are read
 * right after the by-queue ones, not in the same instant. */
int er_store_stats(er_store_t *s, json_t **out);

/* ---- Listing ---- */

/* Which tasks er_store_list_tasks returns; zero-initialised it asks for the
 * newest 50 tasks of any state, name and queue. */
typedef struct er_task_list_req {
  bool by_state;          /* only tasks in .state */
  er_task_state_t state;
  const char *task;       /* only tasks of this registered name (NULL: any) */
  const char *queue;      /* only tasks on this queue (NULL: any) */
  const char *cursor;     /* only tasks older than this id: the previous page's
                             next_cursor (NULL or "": from the newest) */
  size_t limit;           /* 1..ER_TASK_LIST_MAX; 0: ER_TASK_LIST_DEFAULT */
} er_task_list_req_t;

#define ER_TASK_LIST_DEFAULT 50
#define ER_TASK_LIST_MAX 1000

/* Task records newest first (by id: UUIDv7 ids sort by creation time),
 * filtered by req, one page at a time. *out is a new array of new records
 * (free with er_task_rec_free_array), without their result (result is NULL:
 * er_store_get reads it); *n may be 0. next_cursor (ER_ID_LEN + 1 bytes) gets
 * the id to pass as the next page's cursor, or "" when no task is left past
 * this page. Tasks whose result expired are left out, as er_store_get does.
 * A page may be shorter than limit and still have a next_cursor: on Redis a
 * filtered page looks at no more than ER_TASK_LIST_SCAN index entries (so
 * that one call stays short whatever the filter) and then stops there; the
 * caller follows next_cursor for more. An empty page with a cursor is
 * possible the same way. ER_EINVAL for a limit over ER_TASK_LIST_MAX, a
 * state outside PENDING..REVOKED or a cursor that is not an id's text. */
#define ER_TASK_LIST_SCAN 10000
int er_store_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                        size_t *n, char *next_cursor);

/* ---- Waking ---- */

/* A file descriptor that becomes readable when the store may have changed
 * (another process committed), for a loop to watch; -1 when the backend has
 * none. Call er_store_drain_wakeups after it fires. Owned by the store. */
int er_store_wakeup_fd(er_store_t *s);
void er_store_drain_wakeups(er_store_t *s);
/* Blocks until the store may have changed or timeout_ms passes. Returns 0 on a
 * change, ER_ETIMEDOUT otherwise. */
int er_store_wait_change(er_store_t *s, int timeout_ms);

/* ---- Transition batches: the one atomic way to change state ----
 *
 * A state change that touches more than one thing (a stage's completion, its
 * slots, its barrier and the tasks it releases; a Celery message and its
 * task) is a batch of primitive mutations applied all or nothing: one SQLite
 * transaction, one Redis script that interprets the batch. Every guard in the
 * batch is checked before anything is written; if one fails, nothing is
 * written and er_store_apply returns that guard's code with *failed set to its
 * index.
 *
 * Besides tasks, a store keeps documents and counters for the layers above:
 *   document: (coll, key) -> a JSON value with a version, 1 when created and
 *             one more at every change (pipelines, slots, barriers);
 *   counter:  (coll, key) -> a 64-bit integer, 0 when absent.
 * coll and key are non-empty UTF-8 strings without NUL; coll is at most 64
 * bytes, key at most 512. */
typedef enum er_mut_kind {
  ER_MUT_ENQUEUE = 1, /* .rec (borrowed; as er_store_enqueue for one record) and
                         .flags (ER_ENQ_IF_ABSENT, for this record only).
                         Result: .existing, and .rec->id updated as there.
                         Fails the batch: ER_EEXIST, ER_ETOMBSTONED, ER_ETOOBIG. */
  ER_MUT_COMPLETE,    /* .completion (as er_store_complete for one outcome).
                         A fenced attempt fails the batch with ER_EFENCED. */
  ER_MUT_TASK_GUARD,  /* writes nothing: the task .id must exist (else
                         ER_ENOENT), be in .state (ER_STATE_UNKNOWN: any) and,
                         when .attempt > 0, at that attempt (else ER_ESTATE). */
  ER_MUT_DOC_PUT,     /* sets (.coll, .key) to .value (borrowed). Guard
                         .if_version: ER_VERSION_ANY, ER_VERSION_ABSENT (must
                         not exist: else ER_EEXIST), or n (must exist at
                         version n: else ER_ESTATE, or ER_ENOENT when absent).
                         Result: .version, the new version. */
  ER_MUT_DOC_MERGE,   /* merges the object .value into the document's object
                         (top-level keys replaced, as json_object_update),
                         creating {} first when absent; a document that is not
                         an object: ER_ESTATE. Guard .if_version as DOC_PUT.
                         Result: .version. */
  ER_MUT_DOC_DEL,     /* deletes (.coll, .key); guard .if_version as DOC_PUT.
                         Deleting an absent document with ER_VERSION_ANY is not
                         an error. */
  ER_MUT_COUNTER_ADD  /* adds .delta to counter (.coll, .key). Guard: when
                         .if_value != ER_COUNTER_ANY the counter must equal it
                         before the add (else ER_ESTATE). A sum outside
                         +-9.2e18 is ER_EINVAL (on every store). Result:
                         .value, the counter after the add. A counter that reaches 0 may be
                         removed from the store (it reads as 0 either way). */
} er_mut_kind_t;

#define ER_VERSION_ANY (-1)
#define ER_VERSION_ABSENT 0
#define ER_COUNTER_ANY INT64_MIN

typedef struct er_mut {
  er_mut_kind_t kind;
  /* ENQUEUE */
  er_task_rec_t *rec;
  int flags;
  /* COMPLETE */
  er_completion_t completion;
  /* TASK_GUARD */
  const char *id;
  er_task_state_t state;
  int attempt;
  /* DOC_*, COUNTER_ADD */
  const char *coll, *key;
  json_t *value;
  int64_t if_version;
  int64_t delta, if_value;
} er_mut_t;

typedef struct er_mut_result {
  bool existing;   /* ENQUEUE: the key rule returned an existing task */
  int64_t version; /* DOC_PUT, DOC_MERGE: the version written */
  int64_t value;   /* COUNTER_ADD: the counter after the add */
} er_mut_result_t;

/* Applies muts[0..n) all or nothing, in order (a later mutation sees the
 * earlier ones' writes, and a guard is checked against them). results (may be
 * NULL) has n entries, filled only on success. On a failed guard or a refused
 * mutation returns its code and sets *failed (may be NULL) to its index,
 * having written nothing; other errors (ER_EUNAVAILABLE, ER_EBUSY, ...) set
 * *failed to n. Wakes watchers as the single calls would. */
int er_store_apply(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
                   size_t *failed);

/* The document (coll, key): *value a new reference (may be NULL if not
 * wanted), *version (may be NULL) its version. ER_ENOENT when absent. */
int er_store_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                     int64_t *version);
/* Up to limit documents of coll whose keys sort after `after` (NULL or "":
 * from the first), in key order (bytewise): *out a new array of
 * {"key": k, "value": v, "version": n}. An array shorter than limit is the
 * end. */
int er_store_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                      json_t **out);
/* The counter's value (0 when absent). */
int er_store_counter_get(er_store_t *s, const char *coll, const char *key, int64_t *value);

/* ---- Precise wake-ups ----
 *
 * A handle that watches says what it waits for; its wakeup fd then becomes
 * readable only for those (a backend may wake a little more often, never
 * less), and er_store_read_wakeups says what happened. */
typedef struct er_watch {
  const char *const *queues; /* work arriving or made due on these queues */
  size_t nqueues;
  bool finished;             /* tasks finishing (for result waiters) */
  bool control;              /* revokes of running tasks (for workers) */
} er_watch_t;

/* Sets what this handle watches (copied; replaces the previous set; a
 * finished record already running goes on, or reports finished_overflow).
 * A handle that never calls it is woken by every change, as before, and
 * er_store_read_wakeups then reports work, control and finished_overflow
 * together whenever anything changed. */
int er_store_watch(er_store_t *s, const er_watch_t *w);

typedef struct er_wakeups {
  bool work;        /* a watched queue may have due work */
  bool control;     /* a running task may have been revoked */
  char **finished;  /* ids of tasks finished since the last read (new array of
                       new strings: free with er_wakeups_clear) */
  size_t nfinished;
  bool finished_overflow; /* too many to list: re-check every waiter */
} er_wakeups_t;

/* Drains the wakeup fd and says what it reported since the last read. With
 * finished watched, the ids listed are those of tasks finished after
 * er_store_watch returned (so watch, then read a task's state, then wait:
 * no finish is missed). The first read after er_store_watch may report work
 * and control once, as a first look. */
int er_store_read_wakeups(er_store_t *s, er_wakeups_t *out);
void er_wakeups_clear(er_wakeups_t *w);

/* When the next delayed thing on these queues falls due: the earliest eta of
 * a task queued for later (countdown, eta, retry backoff), and, on any queue,
 * the earliest lease that ends. *due_ms is 0 when there is none. A worker
 * sets a timer for it instead of polling. */
int er_store_next_due(er_store_t *s, const char *const *queues, size_t nqueues,
                      int64_t *due_ms);

/* ---- Backends ---- */

/* The vtable each backend fills. version is ER_STORE_OPS_VERSION. */
#define ER_STORE_OPS_VERSION 3
typedef struct er_store_ops {
  int version;
  const char *scheme; /* "sqlite", "redis" */
  int (*open)(const char *url, er_store_t **out, char *errmsg, size_t errmsg_size);
  void (*close)(er_store_t *s);
  int (*enqueue)(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags, bool *existing);
  int (*reserve)(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out, size_t *n);
  int (*renew)(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
               int64_t lease_until_ms, bool *revoked, bool *fenced);
  int (*complete)(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced);
  int (*progress)(er_store_t *s, const char *id, int attempt, double progress, const char *msg);
  int (*get)(er_store_t *s, const char *id, const char *key, er_task_rec_t **out);
  int (*revoke)(er_store_t *s, const char *id, er_task_state_t *state);
  int (*purge)(er_store_t *s, const char *queue, size_t *count);
  int (*maintain)(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts);
  int (*heartbeat)(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms);
  int (*worker_gone)(er_store_t *s, const char *worker_id);
  int (*workers)(er_store_t *s, int64_t now_ms, json_t **out);
  int (*stats)(er_store_t *s, json_t **out);
  int (*wakeup_fd)(er_store_t *s);
  void (*drain_wakeups)(er_store_t *s);
  int (*wait_change)(er_store_t *s, int timeout_ms);
  /* Version 2. A backend may leave any of these NULL: the call then returns
   * ER_ENOTSUP. */
  int (*apply)(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
               size_t *failed);
  int (*doc_get)(er_store_t *s, const char *coll, const char *key, json_t **value,
                 int64_t *version);
  int (*doc_list)(er_store_t *s, const char *coll, const char *after, size_t limit,
                  json_t **out);
  int (*counter_get)(er_store_t *s, const char *coll, const char *key, int64_t *value);
  int (*watch)(er_store_t *s, const er_watch_t *w);
  int (*read_wakeups)(er_store_t *s, er_wakeups_t *out);
  int (*next_due)(er_store_t *s, const char *const *queues, size_t nqueues, int64_t *due_ms);
  /* Version 3 (NULL: ER_ENOTSUP). req is checked: limit in 1..1000. */
  int (*list_tasks)(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                    size_t *n, char *next_cursor);
} er_store_ops_t;

/* Every backend's handle starts with this. */
struct er_store {
  const er_store_ops_t *ops;
  char *url;
  int64_t tombstone_ms;
  size_t max_payload;
  char last_error[256];
};

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
