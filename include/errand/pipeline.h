/*
 * errand/pipeline.h: pipelines, durable workflows of stages (App Engine's
 * Pipelines API, in C). docs/pipeline.md tells the whole story.
 *
 * A pipeline kind registers like a task, usually in the library a worker
 * loads with `errand worker -A`:
 *
 *   static json_t *euclid(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
 *     json_int_t a = json_integer_value(json_array_get(args, 0));
 *     json_int_t b = json_integer_value(json_array_get(args, 1));
 *     if (b == 0) return json_integer(a);        // the default output
 *     json_t *next = json_pack("[I, I]", b, a % b);
 *     er_pipe_child(ctx, "euclid", next, NULL);  // the last child gives
 *     json_decref(next);                         // this stage's output
 *     return NULL;
 *   }
 *   ER_PIPELINE("euclid", euclid)
 *
 * A stage's run function gets its arguments as values: a child's argument
 * that names another child's output (er_pipe_out) is filled before the child
 * runs. It returns a new reference, the stage's default output (NULL: null),
 * or declares children and returns NULL; the last child inherits the
 * stage's unfilled outputs, and the stage finalizes once every child output
 * is filled. It may instead ask for a retry or an abort.
 *
 * Execution: errand's own workers run every stage through internal tasks
 * ("errand.pipe.run", "errand.pipe.fin", "errand.pipe.abort",
 * "errand.pipe.callback") that liberrand registers; a worker that loads a
 * library of pipelines runs them.
 * Every transition (a stage's outcome with its children, slots, barriers and
 * the tasks it releases; a finalize; a retry; an abort) is one atomic store
 * batch (er_store_apply), safe under duplicated, late and reordered
 * deliveries. Run, finalize and callback functions may run more than once
 * (delivery is at least once); what they write to the store is written once.
 *
 * Threads: run, finalize and callback functions run on a worker's pool like tasks; the
 * er_pipe_ctx_t is valid only during the call and only on that thread.
 *
 * Errors: 0 or a negative ER_E* code; client calls keep a one-line detail in
 * er_client_last_error().
 */
#ifndef ERRAND_PIPELINE_H
#define ERRAND_PIPELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/client.h"
#include "errand/common.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

typedef struct er_pipe_ctx er_pipe_ctx_t;
typedef struct er_pipe_handle er_pipe_handle_t;

/* A stage: args (an array) and kwargs (an object) are borrowed, their slot
 * references already replaced by the slots' values. Returns the default
 * output as a new reference (NULL: null), or NULL after declaring children
 * or asking for a retry or an abort. */
typedef json_t *(*er_pipe_fn)(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs);
/* Called once the stage is over: outputs (borrowed) maps each filled output's
 * name to its value; was_aborted says whether the tree was aborted. May run
 * more than once. */
typedef void (*er_pipe_finalize_fn)(er_pipe_ctx_t *ctx, json_t *outputs, bool was_aborted);
/* An async pipeline's callback: params (borrowed) is an object of string
 * values, those of the callback URL or callback task. It may complete the
 * pipeline (er_pipe_complete), fill outputs, ask for a retry (the run
 * function runs again, as the next attempt) or an abort, set the status,
 * the state, schedule callback tasks, and answer with er_pipe_respond.
 * Returns NULL (a value returned is ignored, with a warning). */
typedef json_t *(*er_pipe_callback_fn)(er_pipe_ctx_t *ctx, json_t *params);
/* An abort reached this async pipeline while it waits in RUN for its
 * completion: true lets it be aborted (its finalize then runs with
 * was_aborted true), false keeps it running (App Engine's try_cancel): it
 * is aborted when a callback later completes it, retries or aborts. No
 * try_cancel: false. */
typedef bool (*er_pipe_try_cancel_fn)(er_pipe_ctx_t *ctx);

enum {
  /* The pipeline stays in RUN after its run function returns, until
   * er_pipe_complete (from run, or later from its callback). */
  ER_PIPE_ASYNC = 1,
  /* Its callback URLs need no token: anyone who has the URL may call it
   * back (its callback checks what it must, as Approval checks its own
   * random token). With ER_PIPE_ASYNC only. */
  ER_PIPE_PUBLIC_CALLBACKS = 2
};

typedef struct er_pipeline_def {
  const char *name; /* unique among pipelines; "euclid", "mail.digest" */
  er_pipe_fn run;
  er_pipe_finalize_fn finalize; /* may be NULL */
  er_pipe_callback_fn callback; /* async pipelines; may be NULL (callbacks refused) */
  int flags;                    /* ER_PIPE_* */
  /* Declared output names, NULL-ended: the pipeline is strict, and filling
   * another name is an error. NULL: dynamic, any name may be filled. The
   * default output ("default") always exists. */
  const char *const *outputs;
  int max_attempts;      /* 0: 3 */
  double backoff_s;      /* the first retry's wait; 0: 15 */
  double backoff_factor; /* each later retry waits this much longer; 0: 2 */
  er_pipe_try_cancel_fn try_cancel; /* async pipelines; may be NULL */
} er_pipeline_def_t;

/* Registers def (not copied: a static). 0; ER_EEXIST for a name taken by
 * another run function; ER_EINVAL for no name or run function, a name over
 * 200 bytes, a declared output named "default" or "", unknown flags, or a
 * callback, try_cancel or ER_PIPE_PUBLIC_CALLBACKS without ER_PIPE_ASYNC.
 * Each refusal is logged. Thread-safe. */
int er_pipeline_register(const er_pipeline_def_t *def);
/* The pipeline registered under name, or NULL. Thread-safe. */
const er_pipeline_def_t *er_pipeline_lookup(const char *name);
/* Calls fn for each registered pipeline (built-ins included), in name
 * order. Thread-safe. */
void er_pipeline_foreach(void (*fn)(const er_pipeline_def_t *def, void *ud), void *ud);

/* ER_PIPELINE("name", run, .finalize = f, .outputs = (const char *[]){"a",
 * NULL}, .max_attempts = 5, ...): registers run when the program or library
 * loads. (ER__CAT comes from errand/task.h.) */
#define ER_PIPELINE(name_, fn_, ...)                                                  \
  static const er_pipeline_def_t ER__CAT(er__pipe_def_, __LINE__) = {                \
      .name = (name_), .run = (fn_), __VA_ARGS__};                                    \
  __attribute__((constructor)) static void ER__CAT(er__pipe_reg_, __LINE__)(void) {  \
    er_pipeline_register(&ER__CAT(er__pipe_def_, __LINE__));                         \
  }

/* ---- Inside a stage (run or finalize) ---- */

const char *er_pipe_id(const er_pipe_ctx_t *ctx);      /* this pipeline's id */
const char *er_pipe_root_id(const er_pipe_ctx_t *ctx); /* its root's id */
const char *er_pipe_name(const er_pipe_ctx_t *ctx);
int er_pipe_attempt(const er_pipe_ctx_t *ctx); /* 1 for the first */

/* Fills the output name (NULL or "default": the default output) with value
 * (borrowed). Run functions only. ER_EINVAL for a name a strict pipeline did
 * not declare, ER_EALREADY for an output filled twice, ER_ESTATE outside
 * run: each also fails the attempt with a one-line message, as a retry. */
int er_pipe_fill(er_pipe_ctx_t *ctx, const char *name, json_t *value);

/* Asks for another attempt after the backoff (the n-th retry waits
 * backoff_s * backoff_factor^(n-1)); after max_attempts the root is aborted
 * with "aborting after N attempts". Returns NULL, for `return
 * er_pipe_retry(ctx, "...")`. */
json_t *er_pipe_retry(er_pipe_ctx_t *ctx, const char *fmt, ...) ER_PRINTF(2, 3);
/* Aborts the whole tree with this message: every pipeline not yet done is
 * aborted and its finalize runs with was_aborted true. Returns NULL. */
json_t *er_pipe_abort(er_pipe_ctx_t *ctx, const char *fmt, ...) ER_PRINTF(2, 3);

/* Declares a child running the pipeline name with args (an array; NULL: [])
 * and, with er_pipe_child_kw, kwargs (an object; NULL: {}), both borrowed; an
 * argument (or a kwargs value) that is a slot reference from er_pipe_out
 * makes the child wait for that slot. Returns a handle owned by ctx, or NULL
 * (the attempt then fails with the reason: an unknown name, args not an
 * array, a reference to no output of this stage's children). */
er_pipe_handle_t *er_pipe_child(er_pipe_ctx_t *ctx, const char *name, json_t *args);
er_pipe_handle_t *er_pipe_child_kw(er_pipe_ctx_t *ctx, const char *name, json_t *args,
                                   json_t *kwargs);
/* A reference to the child's output name (NULL: the default), borrowed from
 * the handle, to put in later children's args. A dynamic child's output is
 * made when first named; a strict child's undeclared one gives NULL and
 * fails the attempt. */
json_t *er_pipe_out(er_pipe_handle_t *h, const char *name);
/* Children declared from now on also wait for every output of these
 * handles (NULL-ended), until the matching er_pipe_after_end. Nests. */
int er_pipe_after(er_pipe_ctx_t *ctx, ...);
int er_pipe_after_end(er_pipe_ctx_t *ctx);
/* Children declared between these run one after the other (each waits for
 * the one before it). Nesting is an error: ER_ESTATE, and the attempt fails. */
int er_pipe_in_order(er_pipe_ctx_t *ctx);
int er_pipe_in_order_end(er_pipe_ctx_t *ctx);

/* A status message and links ({"name": "url"}, borrowed; may be NULL) shown
 * with the pipeline in the tree; written with the stage's outcome. */
int er_pipe_set_status(er_pipe_ctx_t *ctx, const char *message, json_t *links);

/* ---- Async pipelines (run and callback functions of ER_PIPE_ASYNC ones) ----
 * Each of these, called for a pipeline that is not async, fails the attempt
 * (ER_ESTATE). What they do is written with the function's outcome, in the
 * same transition. */

/* Completes the pipeline: value (borrowed; NULL: null) fills the default
 * output unless it is filled already (with NULL; else the attempt fails:
 * filled twice), and every output someone waits on must be filled by now.
 * The stage is then done (its finalize runs). ER_EALREADY when called twice. */
int er_pipe_complete(er_pipe_ctx_t *ctx, json_t *value);

/* The HTTP callback URL, a new string (er_free):
 *   BASE/callback?pipeline_id=ID&NAME=VALUE&...&token=TOKEN
 * BASE is the worker's --base-url (er_worker_opts_t.base_url), else
 * $ERRAND_BASE_URL; TOKEN an HMAC-SHA256 over the id and params under a
 * secret the store keeps. params (borrowed; NULL: none) is an object of
 * string values, without "pipeline_id"; "token" only for a pipeline with
 * ER_PIPE_PUBLIC_CALLBACKS, whose own token it then is (it stands where the
 * HMAC token would). NULL when no base URL is configured (logged; the
 * attempt goes on), or for bad params (the attempt fails, saying why). */
char *er_pipe_callback_url(er_pipe_ctx_t *ctx, json_t *params);

/* Schedules the callback (params as above, borrowed; NULL: none) to be
 * delivered by a task countdown_ms from now. The task is named after the
 * pipeline, the call (countdown and params) and the attempt or callback
 * that asked for it, so the same call twice, or an attempt run twice, never
 * delivers it twice. 0, or ER_EINVAL (bad params, a negative countdown: the
 * attempt fails). */
int er_pipe_callback_task(er_pipe_ctx_t *ctx, int64_t countdown_ms, json_t *params);

/* In a callback: the answer to give whoever called back (the HTTP layer
 * answers with it; `errand pipeline callback` prints it): status 100..599,
 * content_type (NULL: "text/plain; charset=utf-8") and body (NULL: "")
 * copied. Without it the answer is 200 with an empty body. ER_EINVAL for a
 * bad status; ER_ESTATE outside a callback. The last call wins. */
int er_pipe_respond(er_pipe_ctx_t *ctx, int status, const char *content_type, const char *body);

/* The pipeline's own state, kept with its record between its run and its
 * callbacks (Approval keeps its random token there): state (borrowed, any
 * JSON; NULL: null) replaces it, written with the outcome. er_pipe_state
 * gives it (borrowed from ctx; null until set). */
int er_pipe_set_state(er_pipe_ctx_t *ctx, json_t *state);
json_t *er_pipe_state(const er_pipe_ctx_t *ctx);

/* ---- Starting and watching (clients) ---- */

typedef struct er_pipeline_opts {
  const char *key;      /* idempotence key: a second start gives ER_EEXIST */
  const char *queue;    /* the queue of the tree's internal tasks; "default" */
  int64_t countdown_ms; /* start no sooner than this from now */
  int64_t eta_ms;       /* or at this wall-clock time (not both) */
  bool unchecked;       /* start a name this process has not registered (a
                           worker has it); a worker lacking it aborts the
                           root with "unknown pipeline" */
} er_pipeline_opts_t;

/* Starts a root pipeline: args an array (NULL: []), kwargs an object (NULL:
 * {}), both borrowed; opts may be NULL. *root_id (may be NULL) gets the
 * root's id, also on ER_EEXIST (the root that holds the key). ER_EINVAL: an
 * unknown name (unless .unchecked), args or kwargs of the wrong type, both
 * countdown and eta, a key over 512 bytes. Nothing is written on error. */
int er_pipeline_start(er_client_t *c, const char *name, json_t *args, json_t *kwargs,
                      const er_pipeline_opts_t *opts, er_id_t *root_id);

/* er_pipeline_start on libuv's thread pool (loop thread only; it never
 * blocks the loop): done with the root's id as a JSON string, or with the
 * start's error and its message. Arguments are copied. NULL when out of
 * memory. */
er_future_t *er_pipeline_start_async(er_client_t *c, er_loop_t *loop, const char *name,
                                     json_t *args, json_t *kwargs,
                                     const er_pipeline_opts_t *opts);

/* Aborts the tree of root_id with message (NULL: "aborted"): *aborted (may
 * be NULL) is true when this call asked for it, false when the root was
 * already aborted, aborting or done. ER_ENOENT for an unknown pipeline,
 * ER_EINVAL for one that is not a root (or not an id). */
int er_pipeline_abort(er_client_t *c, const char *root_id, const char *message, bool *aborted);

/* Delivers a callback to pipeline id by queueing its callback task
 * ("errand.pipe.callback", a worker runs the pipeline's callback function):
 * the trusted path, with no token (an operator's, or the HTTP layer's once
 * it checked the token). params (borrowed; NULL: {}) an object of string
 * values. *task_id (may be NULL) gets the task's id, whose result (er_result)
 * is the answer {"status", "content_type", "body"}. ER_ENOENT for an unknown
 * pipeline; ER_ESTATE for one that takes no callback now (not async, not
 * started, or finished: "pipeline ID is done: callback refused"); ER_EINVAL
 * for bad params. Nothing is written on error. */
int er_pipeline_callback(er_client_t *c, const char *id, json_t *params, er_id_t *task_id);

/* Rotates the secret the callback tokens are made under (the store keeps
 * it): tokens made before stay valid until the next rotation, made after
 * use the new one. Processes that cached the secret see the rotation at
 * their next check (a failed check reads the store again). Two rotations
 * racing count as one. 0, or the store's error. */
int er_pipeline_secret_rotate(er_client_t *c);

/* One pipeline's record, *out new: {"id", "name", "root", "parent", "args",
 * "kwargs", "outputs" (name -> slot id), "children", "status" (waiting, run,
 * retry, finalizing, done, aborted), "attempts", "max_attempts",
 * "backoff_s", "backoff_factor", "start_ms", "end_ms", "retry_message",
 * "abort_message", "status_message", "links", "async", "state", ...}.
 * ER_ENOENT if unknown. */
int er_pipeline_get(er_client_t *c, const char *id, json_t **out);
/* The value of a pipeline's output name (NULL: default), *out new. ER_ESTATE
 * while it is not filled, ER_ENOENT for an unknown pipeline or output. */
int er_pipeline_output(er_client_t *c, const char *id, const char *name, json_t **out);
/* The whole tree, *out new: {"root": id, "pipelines": {id: record},
 * "slots": {id: {"status": "filled"|"waiting", "value", "fill_ms",
 * "filler", "owner"}}}. ER_ENOENT for an unknown root. */
int er_pipeline_tree(er_client_t *c, const char *root_id, json_t **out);
/* Roots, newest first: up to limit (0: 100) entries {"id", "name",
 * "created_ms", "status"} after the cursor `after` (NULL: from the newest),
 * only those named name (NULL: all). *next (may be NULL) gets a new string
 * to pass as after for the next page, or NULL at the end. *out new. */
int er_pipeline_list(er_client_t *c, const char *name, const char *after, size_t limit,
                     json_t **out, char **next);

/* ---- Retention ---- */

typedef struct er_pipeline_cleanup_counts {
  size_t roots; /* roots deleted, each with its whole tree */
  size_t docs;  /* documents and barrier counters deleted, in all */
} er_pipeline_cleanup_counts_t;

/* Deletes the trees (every pipeline, slot, barrier, start key and index
 * entry) of the roots that finished, done or aborted, at least
 * older_than_ms ago; older_than_ms < 0: the store URL's pipe_retention_ms
 * (default 7 days), as workers do now and then on their own. Roots not
 * finished are kept whatever their age, and so is a tree with a stage not
 * over yet (a child finalizing just after its root) until its root ended a
 * day ago. Deletes in bounded batches, each atomic and guarded: a root that
 * another cleaner or a late stage changes meanwhile is left for the next
 * call. counts (may be NULL) says what went. 0 or a store error. */
int er_pipeline_cleanup(er_client_t *c, int64_t older_than_ms,
                        er_pipeline_cleanup_counts_t *counts);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
