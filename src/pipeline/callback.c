/* The callback task ("errand.pipe.callback" [id, params]): runs an async
 * pipeline's callback function and commits what came of it as one
 * transition: its completion (its outputs, done), filled outputs, a retry
 * (its run function runs again, as the next attempt), an abort, its status,
 * state and callback tasks. The task's result is the answer to whoever
 * called back ({"status", "content_type", "body"}).
 *
 * A callback is refused, with nothing written, when the pipeline is
 * unknown, not async, or not waiting in RUN for its completion (not started,
 * retrying, finished). A callback task delivered again after its
 * transition was written (its worker died before acknowledging it) finds
 * its record in ER__CB_COLL and gives the same answer without running the
 * callback function again. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

typedef enum { CB_NONE, CB_DONE, CB_RETRY, CB_ABORT } cb_kind_t;

typedef struct cb {
  const char *id, *task_id;
  char done_key[2 * ER_ID_LEN + 2]; /* "<pipeline id>:<task id>" in ER__CB_COLL */
  er_pipe_ctx_t ctx;
  cb_kind_t kind;
  /* The stage ends aborted now (its finalize ran so): it asked for an
   * abort, or a retry after its last attempt, or it ended while its tree
   * was being aborted (its try_cancel had said no). It is not left in RUN
   * for the abort's walk, which would ask its try_cancel again. */
  bool aborted;
  bool effects; /* something to write (else only an answer) */
  json_t *answer;
} cb_t;

static json_t *answer(int status, const char *fmt, ...) ER_PRINTF(2, 3);
static json_t *answer(int status, const char *fmt, ...) {
  char body[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  return json_pack("{s:i, s:s, s:s}", "status", status, "content_type",
                   "text/plain; charset=utf-8", "body", body);
}

bool er__pipe_takes_callback(const json_t *doc, char *why, size_t size) {
  const char *st = er__pipe_status(doc);
  const char *id = json_string_value(json_object_get(doc, "id"));
  const char *state = !json_is_true(json_object_get(doc, "async")) ? "not async"
                      : !strcmp(st, "waiting")                     ? "not started"
                      : !strcmp(st, "retry")                       ? "retrying"
                                                                   : st;
  if (!strcmp(st, "run") && json_is_true(json_object_get(doc, "async"))) return true;
  snprintf(why, size, "pipeline %s is %s: callback refused", id ? id : "?", state);
  return false;
}

/* Why pipeline doc takes no callback now (an answer, new), or NULL. */
static json_t *refusal(const json_t *doc, const char *id) {
  if (!doc) return answer(404, "no pipeline %s", id);
  char why[256];
  return er__pipe_takes_callback(doc, why, sizeof why) ? NULL : answer(409, "%s", why);
}

static int build_cb(er__pb_t *pb, void *ud) {
  cb_t *c = ud;
  int rc = 0;
  er__pdoc_t *d = er__pb_doc(pb, ER__PIPE_COLL, c->id, &rc);
  if (!d) return rc;
  json_t *no = refusal(d->value, c->id);
  if (no) { /* another callback, or the abort, ended it meanwhile */
    json_decref(c->answer);
    c->answer = no;
    return ER__PB_NOOP;
  }
  if (!c->effects) return ER__PB_NOOP;
  json_t *doc = d->value;
  const char *root = json_string_value(json_object_get(doc, "root"));
  json_t *rec = json_pack("{s:s, s:O}", "pipeline", c->id, "answer", c->answer);
  if ((rc = er__pb_doc_new(pb, ER__CB_COLL, c->done_key, rec)) < 0) return rc;
  d->dirty = true;
  bool requested;
  if (c->kind == CB_RETRY)
    rc = er__pipe_build_retry(pb, c->id, doc,
                              (int)json_integer_value(json_object_get(doc, "attempts")),
                              c->ctx.message ? c->ctx.message : "");
  else if (c->kind == CB_ABORT)
    rc = er__pipe_request_abort(pb, root, c->ctx.message, &requested);
  if (rc < 0) return rc;
  if (c->aborted) { /* after the abort request: a root asks before it ends */
    json_object_set_new(doc, "status", json_string("aborted"));
    json_object_set_new(doc, "was_aborted", json_true());
    json_object_set_new(doc, "end_ms", json_integer(pb->now));
    return 0;
  }
  er__pctx_put_status(&c->ctx, doc);
  if (c->kind == CB_RETRY) return 0; /* its next attempt schedules what it needs */
  if ((rc = er__pctx_put_async(pb, &c->ctx, doc)) < 0) return rc;
  if (c->kind == CB_DONE) {
    json_object_set_new(doc, "status", json_string("done"));
    json_object_set_new(doc, "end_ms", json_integer(pb->now));
  }
  return er__pipe_fill_own(pb, c->id, &c->ctx, doc);
}

/* Runs the callback function and decides what came of it. */
static int run_callback(er_store_t *s, cb_t *c, const er_pipeline_def_t *def, json_t *params,
                        const char *base_url, const uint8_t *secret) {
  er_pipe_ctx_t *ctx = &c->ctx;
  char source[64];
  snprintf(source, sizeof source, "cb:%s", c->task_id);
  int rc = er__pctx_bind(ctx, s, base_url, secret, source);
  if (rc < 0) return rc;
  bool aborting = er__pipe_aborting(s, ctx->doc);
  json_t *v = def->callback(ctx, params);
  if (v) {
    er_log(ER_LOG_WARN, "pipeline %s: the callback of '%s' returned a value (ignored: complete "
           "with er_pipe_complete)", c->id, def->name);
    json_decref(v);
  }
  char missing[512];
  if (ctx->ask == ER__ASK_NONE && ctx->nchildren)
    er__pctx_usage(ctx, "async pipeline '%s' declares children in its callback", def->name);
  if (ctx->ask == ER__ASK_NONE && ctx->completed &&
      er__pctx_unfilled(ctx, missing, sizeof missing))
    er__pctx_usage(ctx, "pipeline '%s' never filled its outputs %s", def->name, missing);
  c->kind = ctx->ask == ER__ASK_RETRY   ? CB_RETRY
            : ctx->ask == ER__ASK_ABORT ? CB_ABORT
            : ctx->completed            ? CB_DONE
                                        : CB_NONE;
  int attempts = (int)json_integer_value(json_object_get(ctx->doc, "attempts"));
  int max = (int)json_integer_value(json_object_get(ctx->doc, "max_attempts"));
  if (aborting) /* only its end counts now: it is aborted */
    c->kind = c->kind == CB_NONE ? CB_NONE : CB_DONE;
  c->aborted = c->kind != CB_NONE &&
               (aborting || c->kind == CB_ABORT || (c->kind == CB_RETRY && attempts >= max));
  c->effects = c->kind != CB_NONE ||
               (!aborting && (json_object_size(ctx->fills) || ctx->status_set ||
                              ctx->state_set || json_array_size(ctx->cbtasks)));
  c->answer = ctx->answer ? json_incref(ctx->answer) : answer(200, "%s", "");
  if ((c->kind == CB_DONE || c->aborted) && def->finalize) {
    json_t *outputs = er__pipe_filled_outputs(s, ctx->doc, ctx->fills, &rc);
    if (!outputs) return rc;
    er_pipe_ctx_t fin;
    er__pctx_init(&fin, def, ctx->doc, ctx->attempt, false);
    def->finalize(&fin, outputs, c->aborted);
    er__pctx_free(&fin);
    json_decref(outputs);
  }
  return 0;
}

int er__pipe_exec_callback(er_store_t *s, const er_task_rec_t *rec, const char *id,
                           json_t *params, const char *base_url, const uint8_t *secret,
                           er__pipe_result_t *res) {
  cb_t c = {.id = id, .task_id = rec->id};
  snprintf(c.done_key, sizeof c.done_key, "%s:%s", id, rec->id);
  json_t *done = NULL;
  int rc = er_store_doc_get(s, ER__CB_COLL, c.done_key, &done, NULL);
  if (rc == 0) { /* delivered again: the same answer */
    res->answer = json_incref(json_object_get(done, "answer"));
    json_decref(done);
    return 0;
  }
  if (rc != ER_ENOENT) return rc;
  json_t *doc = NULL;
  rc = er_store_doc_get(s, ER__PIPE_COLL, id, &doc, NULL);
  if (rc < 0 && rc != ER_ENOENT) return rc;
  json_t *no = refusal(doc, id);
  const char *name = json_string_value(json_object_get(doc, "name"));
  const er_pipeline_def_t *def = doc ? er_pipeline_lookup(name) : NULL;
  if (!no && !def)
    no = answer(500, "unknown pipeline '%s' (not registered in the worker that ran the "
                "callback of %s)", name ? name : "", id);
  else if (!no && !def->callback)
    no = answer(409, "pipeline '%s' has no callback function: callback refused", name);
  if (no) {
    res->answer = no;
    json_decref(doc);
    return 0;
  }
  er__pctx_init(&c.ctx, def, doc, (int)json_integer_value(json_object_get(doc, "attempts")), true);
  c.ctx.in_callback = true;
  rc = run_callback(s, &c, def, params, base_url, secret);
  const char *queue = json_string_value(json_object_get(doc, "queue"));
  if (rc == 0) rc = er__pb_commit(s, rec, queue, build_cb, &c, &res->applied);
  if (rc == 0) res->answer = json_incref(c.answer);
  json_decref(c.answer);
  er__pctx_free(&c.ctx);
  json_decref(doc);
  return rc;
}
