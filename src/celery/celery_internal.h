/* Celery protocol v2 on the Redis store (docs/celery.md). Private to
 * src/celery:
 *   codec.c      a kombu envelope in and out: headers, properties, the base64
 *                body [args, kwargs, embed]; result metadata; times
 *   source.c     a store that wraps the Redis store's handle for a worker and
 *                serves Celery messages beside errand's tasks (reserve, renew,
 *                complete, progress, restore)
 *   source_ops.c that store's vtable, wake-ups and forwarded calls
 *   client.c     ?protocol=celery: a client's sends and reads in Celery's terms
 *   progress.c   progress of Celery tasks run in pool threads and children
 *   source_io.c  the Redis side of it: its connection, the scripts
 *                (src/store/lua/celery_*.lua), the watcher thread
 *   outcome.c    what a finished Celery task writes: its result key, the next
 *                chain link, the chord join, links and errbacks, a retry
 *   canvas.c     the signatures it sends next, nested canvases included:
 *                chains, groups and chords published as Celery's canvas.py
 *                publishes them
 *   control.c    kombu's pidbox: remote control commands answered as a
 *                Celery worker answers them (ping, inspect, revoke)
 *   revoked.c    revoked ids kept in Redis so that they outlive the worker */
#ifndef ER_CELERY_INTERNAL_H
#define ER_CELERY_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/store.h"

/* ---- codec.c ---- */

/* One Celery message as the worker reads it. json values and strings are
 * owned by the message (er__cel_msg_clear frees them). */
typedef struct er__cel_msg {
  json_t *env;  /* the whole envelope */
  json_t *args, *kwargs, *embed; /* the body's three parts */
  const char *id, *task;         /* borrowed from env */
  const char *tag, *exchange, *routing_key, *reply_to; /* borrowed; may be NULL */
  const char *root_id, *parent_id, *group;             /* may be NULL */
  json_t *group_index;           /* borrowed; may be NULL */
  int64_t eta_ms, expires_ms;    /* 0: none */
  int retries, priority;
  int64_t soft_ms, hard_ms;      /* 0: none */
  bool ignore_result;
} er__cel_msg_t;

/* Decodes the kombu envelope text[0..len). 0, or ER_EPARSE with why (a
 * one-line reason) filled. On error *m is cleared. */
int er__cel_decode(const char *text, size_t len, er__cel_msg_t *m, char *why, size_t size);
void er__cel_msg_clear(er__cel_msg_t *m);

/* What a new message carries. Strings are borrowed; NULL means absent. */
typedef struct er__cel_send {
  const char *id, *task, *queue; /* queue: the routing key */
  json_t *args, *kwargs, *embed; /* NULL: [], {}, the empty embed */
  int64_t eta_ms, expires_ms;
  int retries, priority;
  const char *root_id, *parent_id, *group, *reply_to;
  json_t *group_index;
  bool ignore_result;
} er__cel_send_t;

/* A kombu envelope for s (new compact JSON text, er_free it), as Celery's
 * send_task writes it; NULL when out of memory. */
char *er__cel_encode(const er__cel_send_t *s);
/* data[0..n) in base64, NUL-terminated (er_free), as a kombu body holds
 * it; NULL out of memory. */
char *er__cel_b64(const char *data, size_t n);
/* The JSON value in base64 text[0..len) (new); NULL when it is not base64
 * (je->text left as it was) or not JSON (je as json_loadb sets it; je may
 * be NULL). */
json_t *er__cel_b64_json(const char *text, size_t len, json_error_t *je);
/* The Redis list a message of priority pri for queue goes to, as kombu
 * names it (priority steps 0, 3, 6, 9). out gets at most size bytes. */
void er__cel_list_name(const char *queue, int pri, char *out, size_t size);

/* Result metadata as Celery's Redis backend writes it (new JSON text). */
char *er__cel_meta(const char *id, const char *status, json_t *result, const char *traceback,
                   const char *group_id, const char *parent_id);
/* {"exc_type", "exc_message": [msg], "exc_module"} for an errand error code. */
json_t *er__cel_exception(int code, const char *message);
/* The Python exception a failed Celery task's metadata names, as an errand
 * error: type, message. */
int er__cel_meta_error(json_t *meta, char *msg, size_t size);

/* ISO 8601 to ms since the epoch (a time without a zone is UTC); -1 on a
 * malformed time. */
int64_t er__cel_parse_time(const char *s);
/* ms since the epoch as Celery's isoformat with +00:00. */
void er__cel_format_time(int64_t ms, bool zone, char *out, size_t size);

/* ---- progress.c ---- */

/* True for a record made from a Celery message (its context has "celery"). */
bool er__celery_borne(const er_task_rec_t *rec);
/* A task's progress callback for a Celery-borne task run in a pool thread or
 * child: ud is the store URL; writes the PROGRESS state to the task's result
 * key on a connection of its own. */
void er__celery_progress(void *ud, const char *id, int attempt, double p, const char *msg);

/* ---- source.c ---- */

/* Wraps a Redis store handle (taken: the wrapper closes it) so that
 * reserve, renew, complete and maintain serve the Celery queues too.
 * ER_EINVAL when inner is not a Redis store. */
int er__celery_wrap(er_store_t *inner, const char *const *queues, size_t nqueues,
                    int64_t visibility_ms, er_store_t **out, char *errmsg, size_t size);
/* Writes the STARTED state of message id (in flight on s, a store made by
 * er__celery_wrap) as Celery's task_track_started does: {"pid", "hostname"},
 * hostname being the worker's id. An id not in flight: 0, nothing written.
 * Store thread only. */
int er__cel_started(er_store_t *s, const char *id, const char *worker);

/* ---- the wrapper's state, shared by source.c, source_io.c, outcome.c ---- */
#include <hiredis/hiredis.h>
#include <pthread.h>

#include "store/redis_internal.h"

#define ER__CEL_RESULT_TTL_S 86400 /* Celery's result_expires default */

typedef struct er__cel {
  er_store_t base;  /* first: er_store_t * and er__cel_t * convert */
  er_store_t *inner; /* the Redis store (an er_rd_t) */
  char **lists;      /* the Celery lists, priority sub-lists included, in order */
  size_t nlists;
  int64_t visibility_ms;
  int64_t restore_ms; /* when the last restore ran (wall) */
  redisContext *c;    /* the store thread's command connection, NULL while down */
  json_t *flight;     /* id -> {"tag", "list", "raw"}: Celery messages held */
  /* wake-ups: epoll over the inner store's fd and evfd */
  int epfd, evfd;
  pthread_t watcher, listener;
  bool have_watcher, have_listener;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t gen;       /* mu: reservations so far (the watcher rings once per one) */
  bool stop;          /* mu */
  json_t *revoked;    /* mu: ids revoked by `celery control revoke` -> when (s) */
  bool revoke_news;   /* mu */
  json_t *ctl;        /* mu: what inspect answers, as of the last heartbeat; never
                       * changed once set, only replaced */
  json_t *totals;     /* store thread: Celery messages finished, by task name */
  char node[300];     /* the Celery node name the worker answers as; set before
                       * the threads start */
} er__cel_t;

/* Arguments for one script call: strings the vector owns (er_rd_args_t). */
/* Runs script text with args (ARGV) on the command connection, connecting
 * first when needed. 0 or ER_EUNAVAILABLE/ER_EIO (error set on the store). */
int er__cel_eval(er__cel_t *cs, const char *script, er_rd_args_t *a, redisReply **out);
/* The same on connection *c of a thread's own (the listener's): connected
 * to cs's server when NULL, dropped when it breaks. err gets the reason. */
int er__cel_eval_on(er__cel_t *cs, redisContext **c, const char *script, er_rd_args_t *a,
                    redisReply **out, char *err, size_t size);
/* The fixed ARGV of celery_ops.lua. */
void er__cel_ops_begin(er__cel_t *cs, er_rd_args_t *a);
/* Starts the watcher and revoke listener threads and the wake-up fds. */
int er__cel_wake_start(er__cel_t *cs, char *errmsg, size_t size);
void er__cel_wake_stop(er__cel_t *cs);
/* After a reservation: the watcher may look for messages again. */
void er__cel_arm(er__cel_t *cs);
/* Wakes the worker (its store's wake-up fd): the listener after a revoke. */
void er__cel_ring(er__cel_t *cs);
/* Drains evfd: true when the watcher or the listener rang. */
bool er__cel_rang(er__cel_t *cs);
/* True when id was revoked by a broadcast. */
bool er__cel_is_revoked(er__cel_t *cs, const char *id);

/* ---- source.c: the calls that serve Celery messages (source_ops.c has
 * the vtable and the rest) ---- */
int er__cel_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out, size_t *n);
int er__cel_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                  int64_t until, bool *revoked, bool *fenced);
int er__cel_complete(er_store_t *s, const er_completion_t *c, size_t n, bool *fenced);
int er__cel_progress(er_store_t *s, const char *id, int attempt, double p, const char *msg);
int er__cel_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts);

/* ---- outcome.c ---- */
/* Adds to a the operations that record completion c of the Celery message
 * held as f ({"tag","list","raw"}); *join (may stay NULL) gets a new
 * description of a chord part whose answer must be read after the call. */
int er__cel_outcome_ops(er__cel_t *cs, const er_completion_t *c, json_t *f, er_rd_args_t *a,
                        size_t *nops, json_t **join);
/* A chord part's join answered with all the parts: sends the callback (or
 * fails it with ChordError). */
void er__cel_chord_ready(er__cel_t *cs, json_t *join, redisReply *parts);
/* Writes a result meta for id (a failure of a message that never ran). */
void er__cel_ops_result(er_rd_args_t *a, const char *id, const char *status, json_t *result,
                        const char *group, const char *parent);

/* ---- canvas.c ---- */
/* Where what a finished message sends goes: the ops call being built. */
typedef struct er__cel_pub {
  er_rd_args_t *a;              /* ops of one celery_ops.lua call */
  size_t *nops;                 /* counted up per op */
  const er__cel_msg_t *from;    /* the finished message: default root, parent, queue */
  int depth;                    /* 0; nesting so far */
} er__cel_pub_t;
/* Adds the messages (and a chord's .s size) Signature.apply_async(prefix,
 * **over) sends from a Python worker for sig, a signature dict of any
 * subtask_type: plain, chain, group, chord. prefix (a JSON array, may be
 * NULL) is prepended to the args of what runs first unless it is immutable;
 * over (may be NULL) overrides sig's options. Borrowed; nothing is kept.
 * Other types (chunks, map) are logged and not sent. */
void er__cel_apply(er__cel_pub_t *p, json_t *sig, json_t *prefix, json_t *over);
/* A task's links, as Celery's worker sends them: one alone as itself,
 * several as a group (each group among them on its own). */
void er__cel_apply_links(er__cel_pub_t *p, json_t *links, json_t *prefix, json_t *over);
/* A failed task's errbacks, given its id: sent as one group. */
void er__cel_apply_errbacks(er__cel_pub_t *p, json_t *errbacks, json_t *prefix, json_t *over);

/* ---- control.c ---- */
/* One message on the pidbox fanout (text[0..len), a kombu envelope): runs
 * the command when it is meant for this node and publishes the reply, on
 * *cmd (connected when NULL; dropped on a connection error). Listener
 * thread only. */
void er__cel_control(er__cel_t *cs, redisContext **cmd, const char *text, size_t len);
/* Makes what inspect answers from a heartbeat's info (er__worker_info) and
 * the messages in flight. Store thread only. */
void er__cel_control_view(er__cel_t *cs, json_t *info);

/* ---- revoked.c ---- */
#define ER__CEL_REVOKE_EXPIRES_S 10800 /* Celery's REVOKE_EXPIRES */
#define ER__CEL_REVOKES_MAX 50000      /* Celery's REVOKES_MAX */
/* Reads the revoked ids still in force from Redis into cs->revoked, on c
 * (connected when *c is NULL, dropped on a connection error). 0 or an
 * ER_E* code. Any thread that owns c. */
int er__cel_revoked_load(er__cel_t *cs, redisContext **c);
/* Revokes ids: a string or an array of strings (revoked now), or an
 * object id -> when (monotonic seconds, or [seconds, ...]: a Python
 * worker's revokes in a mingle hello; older than REVOKE_EXPIRES dropped,
 * later than now taken as now): in memory, then in Redis on *c as
 * er__cel_revoked_load. A failed write is logged: the revoke holds in
 * memory still. */
void er__cel_revoked_add(er__cel_t *cs, redisContext **c, json_t *ids);
/* The revokes in force as a mingle hello answers them: id -> when, by this
 * host's monotonic clock as a Python worker's (new object). */
json_t *er__cel_revoked_mingle(er__cel_t *cs);

extern const char er__rd_lua_celery_reserve[], er__rd_lua_celery_ops[],
    er__rd_lua_celery_restore[], er__rd_lua_celery_reply[], er__rd_lua_celery_revoke[];

#endif
