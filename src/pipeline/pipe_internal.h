/* The pipeline layer's private pieces: where things live in the store, the
 * transition builder every state change goes through, and the internal
 * tasks' entry point (shared by the worker and the tests). */
#ifndef ER_PIPE_INTERNAL_H
#define ER_PIPE_INTERNAL_H

#include <stdbool.h>

#include "errand/pipeline.h"
#include "errand/store.h"

/* ---- The store layout (docs/pipeline.md) ---- */
#define ER__PIPE_COLL "pipe"            /* pipeline id -> its record */
#define ER__SLOT_COLL "pipe.slot"       /* slot id -> {filled, value, ...} */
#define ER__BARRIER_COLL "pipe.barrier" /* "<id>:start" / "<id>:fin" -> slots to go */
#define ER__KEY_COLL "pipe.key"         /* start key -> {"root": id} */
#define ER__ROOT_COLL "pipe.root"       /* newest-first index of roots */
#define ER__ABORT_COLL "pipe.abort"     /* root id -> {"message"}: the tree aborts */
#define ER__ENDED_COLL "pipe.ended"     /* oldest-first index of finished roots */
#define ER__CB_COLL "pipe.cb" /* "<pipeline id>:<callback task id>" -> {"pipeline", "answer"} */

#define ER__PIPE_TASK_RUN "errand.pipe.run"     /* [id, attempt] */
#define ER__PIPE_TASK_FIN "errand.pipe.fin"     /* [id] */
#define ER__PIPE_TASK_ABORT "errand.pipe.abort" /* [id] */
#define ER__PIPE_TASK_CALLBACK "errand.pipe.callback" /* [id, params] */

/* The pipelines' clock (wall ms); tests swap it for one they drive. */
extern int64_t (*er__pipe_clock)(void);

/* Registers the internal tasks and the built-in pipelines (once). */
void er__pipe_init(void);
/* er_pipeline_register without er__pipe_init (for what init registers). */
int er__pipe_register_raw(const er_pipeline_def_t *def);
/* The built-ins (common.c, common_text.c). */
void er__pipe_builtins_register(void);
/* def is one of the built-ins (Return, Sum, ..., Delay, Approval). */
bool er__pipe_builtin(const er_pipeline_def_t *def);
extern const er_pipeline_def_t er__pipe_builtins_text[];  /* ends with {0} */
extern const er_pipeline_def_t er__pipe_builtins_async[]; /* Delay, Approval */
/* Python's truth: false, null, 0, "", [] and {} are false. */
bool er__pipe_truthy(const json_t *v);

/* ---- Transition builder ----
 * Reads go through a cache; writes change the cached values. At apply time
 * every changed document becomes one DOC_PUT guarded by the version it was
 * read at (or ABSENT for a new one), every counter one COUNTER_ADD guarded
 * by the value read, then the enqueues: so whatever changed since the reads
 * makes the whole batch fail (ER_ESTATE) and the caller rebuilds it. */
typedef struct er__pdoc {
  char *coll, *key;
  json_t *value;   /* NULL: absent */
  int64_t version; /* as read; 0 absent */
  bool dirty;
} er__pdoc_t;

typedef struct er__pctr {
  char *key; /* in ER__BARRIER_COLL */
  int64_t read, delta;
} er__pctr_t;

typedef struct er__pb {
  er_store_t *s;
  int64_t now;
  const char *queue; /* for the internal tasks enqueued */
  const char *guard_id; /* the running internal task, or NULL */
  int guard_attempt;
  er__pdoc_t **docs;
  size_t ndocs, capdocs;
  er__pctr_t *ctrs;
  size_t nctrs, capctrs;
  er_task_rec_t **recs;
  size_t nrecs, caprecs;
} er__pb_t;

void er__pb_init(er__pb_t *pb, er_store_t *s, int64_t now);
void er__pb_free(er__pb_t *pb);
/* The cached document (read on first use); entry->value NULL when absent.
 * Change entry->value in place and set entry->dirty. NULL with *rc set on a
 * store error. */
er__pdoc_t *er__pb_doc(er__pb_t *pb, const char *coll, const char *key, int *rc);
/* A document this batch creates (guarded ABSENT); value stolen. */
int er__pb_doc_new(er__pb_t *pb, const char *coll, const char *key, json_t *value);
/* Caches a document as the caller read it a moment ago, saving the read:
 * value (stolen) at version; value NULL with version 0 for one believed
 * absent, which the batch then guards as absent even if it stays so. A
 * guess that is no longer true fails the batch, to be rebuilt from reads. */
int er__pb_doc_seed(er__pb_t *pb, const char *coll, const char *key, json_t *value,
                    int64_t version);
/* A counter's value as this batch sees it (read + delta so far). */
int er__pb_counter(er__pb_t *pb, const char *key, int64_t *value);
int er__pb_counter_add(er__pb_t *pb, const char *key, int64_t delta);
/* A counter this batch creates: known to read 0. */
int er__pb_counter_new(er__pb_t *pb, const char *key, int64_t value);
/* Enqueues internal task `task` with args (stolen) on pb->queue, due at eta,
 * under key (ER_ENQ_IF_ABSENT: a re-fire finds the live task). */
int er__pb_enqueue(er__pb_t *pb, const char *task, json_t *args, int64_t eta, const char *key);
/* Applies the batch: 0; ER_ESTATE (or ER_EEXIST/ER_ENOENT) when something read
 * changed, to rebuild; *fenced true when the running task is no longer this
 * attempt's (nothing written, nothing more to do). */
int er__pb_apply(er__pb_t *pb, bool *fenced);

/* Builds a transition into pb: 0 to apply it, ER__PB_NOOP when there is
 * nothing to do, or an error. */
#define ER__PB_NOOP 1
typedef int (*er__pb_build_fn)(er__pb_t *pb, void *ud);
/* Builds and applies, rebuilding from fresh reads while another writer got
 * there first (bounded). guard (may be NULL) is the running internal task,
 * fencing the batch. *applied (may be NULL): a batch was written. */
int er__pb_commit(er_store_t *s, const er_task_rec_t *guard, const char *queue,
                  er__pb_build_fn build, void *ud, bool *applied);

/* ---- Pipelines, slots, barriers (state.c) ---- */
json_t *er__pipe_doc_new(const char *id, const char *name, const char *root, const char *parent,
                         const char *queue, json_t *args, json_t *kwargs,
                         const er_pipeline_def_t *def, json_t *outputs, int64_t now);
json_t *er__slot_doc_new(const char *owner, json_t *waiters);
const char *er__pipe_status(const json_t *doc);
bool er__pipe_over(const json_t *doc); /* done or aborted */
/* {"$slot": id} (new). */
json_t *er__slot_ref(const char *slot_id);
/* The slot id when v is a reference, else NULL. */
const char *er__slot_ref_id(const json_t *v);
/* Fills slot with value (borrowed) by filler, counting down its waiters'
 * barriers and releasing what they hold. ER_EALREADY if filled. */
int er__pipe_fill(er__pb_t *pb, const char *slot, json_t *value, const char *filler);
/* Asks for the tree of root to be aborted with message; *requested false
 * when it was already aborting or over. */
int er__pipe_request_abort(er__pb_t *pb, const char *root, const char *message, bool *requested);
/* Reads the slots named by the keys of want at once (slots.c): *out new,
 * slot id -> slot document, without the absent ones. */
int er__pipe_slots_read(er_store_t *s, json_t *want, json_t **out);
/* Enqueues the internal task for pipeline id ([id, attempt] when attempt >
 * 0, else [id]) under a key naming both. */
int er__pipe_enqueue(er__pb_t *pb, const char *task, const char *id, int attempt, int64_t eta);

/* ---- The root indexes (ended.c) ---- */
/* The pipe.root key of a root: its creation time counted down from the
 * largest 48-bit millisecond, then its id (newest first). */
void er__pipe_root_index_key(char *out, size_t size, int64_t created_ms, const char *id);
/* The pipe.ended key of a root: its end time, 13 digits, then its id
 * (oldest first). */
void er__pipe_ended_key(char *out, size_t size, int64_t end_ms, const char *id);
/* For each root this batch finishes (done or aborted), adds its pipe.ended
 * entry {"id", "end_ms", "created_ms", "key"} and marks the root
 * ("ended_index"). er__pb_commit calls it on every batch it applies. */
int er__pipe_index_ended(er__pb_t *pb);

/* ---- Retention (cleanup.c, retention.c) ---- */
typedef struct er__pipe_swept {
  size_t roots, docs; /* deleted: roots, and documents and counters in all */
  bool more;          /* the budget ran out before the old roots did */
} er__pipe_swept_t;
/* Deletes the trees of roots ended at least older_than_ms before now_ms,
 * oldest first, spending about budget store operations, from cursor (the
 * index key to go on after; "" from the oldest; cursor_size >= 64), which
 * it moves on (and back to "" once no old root is left). */
int er__pipe_cleanup(er_store_t *s, int64_t now_ms, int64_t older_than_ms, int64_t budget,
                     char *cursor, size_t cursor_size, er__pipe_swept_t *out);
/* The store URL's pipe_retention_ms (7 days when absent). */
int64_t er__pipe_retention_ms(er_store_t *s);

/* ---- The internal tasks (exec.c, run.c, finish.c) ---- */
typedef struct er__pipe_result {
  bool applied; /* a transition was written (else a duplicate, a late or a
                   fenced delivery: nothing to do) */
  json_t *answer; /* a callback task's answer {"status", "content_type",
                     "body"} (new; the caller releases it), else NULL */
} er__pipe_result_t;
/* Runs the internal task rec (reserved: STARTED at rec->attempt) on s: what
 * a worker does for "errand.pipe.*". 0 or an error; err gets a line.
 * base_url (may be NULL: $ERRAND_BASE_URL) is the base of callback URLs;
 * secret (may be NULL: the store's) the key their tokens are made under
 * (er__pipe_secret_derive). */
int er__pipe_exec(er_store_t *s, const er_task_rec_t *rec, er__pipe_result_t *res, char *err,
                  size_t err_size);
int er__pipe_exec_at(er_store_t *s, const er_task_rec_t *rec, const char *base_url,
                     const uint8_t *secret, er__pipe_result_t *res, char *err, size_t err_size);
int er__pipe_exec_run(er_store_t *s, const er_task_rec_t *rec, const char *id, int attempt,
                      const char *base_url, const uint8_t *secret, er__pipe_result_t *res);
int er__pipe_exec_callback(er_store_t *s, const er_task_rec_t *rec, const char *id,
                           json_t *params, const char *base_url, const uint8_t *secret,
                           er__pipe_result_t *res);
/* Whether pipeline doc takes a callback now (async, waiting in RUN); else
 * false with "pipeline ID is done: callback refused" (or not async, not
 * started, retrying, ...) in why. */
bool er__pipe_takes_callback(const json_t *doc, char *why, size_t size);
/* Shared by the run and callback transitions (run.c): writes the outputs
 * ctx filled (a dynamic name gets its slot), and a retry of stage id
 * (attempt n failed with message), or the root's abort after the last. */
int er__pipe_fill_own(er__pb_t *pb, const char *id, const er_pipe_ctx_t *ctx, json_t *doc);
int er__pipe_build_retry(er__pb_t *pb, const char *id, json_t *doc, int n, const char *message);
/* name -> value of the outputs of doc filled in the store, and of fills
 * (may be NULL: what a stage filled but did not write yet), new; NULL with
 * *rc on a store error (finish.c). */
json_t *er__pipe_filled_outputs(er_store_t *s, const json_t *doc, const json_t *fills, int *rc);
/* Whether the tree of doc is being aborted (reads the root's abort record). */
bool er__pipe_aborting(er_store_t *s, const json_t *doc);
int er__pipe_exec_fin(er_store_t *s, const er_task_rec_t *rec, const char *id, bool abort,
                      er__pipe_result_t *res);

/* ---- The stage context (ctx.c) ---- */
typedef struct er__pchild {
  char id[ER_ID_LEN + 1];
  const er_pipeline_def_t *def;
  json_t *args, *kwargs; /* with slot references */
  json_t *outputs;       /* name -> slot id */
  json_t *refs;          /* name -> {"$slot": id}, what er_pipe_out gave */
  json_t *waits;         /* distinct slot ids it waits for */
  er_pipe_handle_t *h;
} er__pchild_t;

enum { ER__ASK_NONE = 0, ER__ASK_RETRY, ER__ASK_ABORT };

struct er_pipe_ctx {
  const er_pipeline_def_t *def;
  json_t *doc; /* the pipeline's record (borrowed) */
  const char *id, *root, *name;
  int attempt;
  bool running; /* in run (else finalize) */
  json_t *fills; /* name -> value */
  er__pchild_t **children;
  size_t nchildren, capchildren;
  json_t *known;  /* slot ids of the children's outputs -> true */
  json_t *after;  /* stack of arrays of slot ids */
  bool in_order;
  er__pchild_t *in_order_prev;
  int ask;
  char *message;  /* of the retry or abort; a usage error is a retry */
  char *status_message;
  json_t *links;
  bool status_set;
  /* async pipelines (async.c) */
  er_store_t *s;        /* for callback URLs' tokens; NULL in finalize */
  const char *base_url; /* of callback URLs; NULL: $ERRAND_BASE_URL */
  const uint8_t *secret; /* their tokens' key; NULL: the store's secret */
  char source[64];      /* "run:<attempt>" or "cb:<task id>": names callback tasks */
  bool in_callback;
  bool completed;
  json_t *filled;   /* names of the outputs filled before this call */
  json_t *cbtasks;  /* [{"key", "countdown_ms", "params"}] to enqueue */
  json_t *state;    /* the pipeline's state (starts as the record's) */
  bool state_set;
  json_t *answer;   /* er_pipe_respond's, or NULL */
};

void er__pctx_init(er_pipe_ctx_t *ctx, const er_pipeline_def_t *def, json_t *doc, int attempt,
                   bool running);
void er__pctx_free(er_pipe_ctx_t *ctx);
/* Fails the attempt with a one-line message (the first one wins). */
void er__pctx_usage(er_pipe_ctx_t *ctx, const char *fmt, ...) ER_PRINTF(2, 3);
/* Writes the status message and links the stage set into doc. */
void er__pctx_put_status(const er_pipe_ctx_t *ctx, json_t *doc);
/* Binds ctx to the store, the callback URL base and the tokens' key
 * (async.c), and reads which of the pipeline's outputs are filled already. */
int er__pctx_bind(er_pipe_ctx_t *ctx, er_store_t *s, const char *base_url, const uint8_t *secret,
                  const char *source);
/* Writes what an async stage asked for besides its outcome into the batch:
 * its state into doc, its callback tasks. */
int er__pctx_put_async(er__pb_t *pb, const er_pipe_ctx_t *ctx, json_t *doc);
/* The outputs someone waits on that neither ctx nor an earlier call filled,
 * "a, b", into buf; false if none. */
bool er__pctx_unfilled(const er_pipe_ctx_t *ctx, char *buf, size_t size);

#endif
