/* The finalize task ("errand.pipe.fin" [id]), released when every child
 * output of a stage is filled, and the abort task ("errand.pipe.abort"
 * [id]), which walks a tree down from its root: each runs the stage's
 * finalize function, then commits the stage done (or aborted, releasing its
 * children's aborts) in one transition. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

typedef struct fin {
  const char *id;
  bool abort;
  bool unknown; /* this worker lacks the pipeline */
  bool kept;    /* an async stage in RUN whose try_cancel said no */
  char message[512];
} fin_t;

static bool pending(const json_t *doc, bool abort) {
  return abort ? !er__pipe_over(doc) : strcmp(er__pipe_status(doc), "finalizing") == 0;
}

json_t *er__pipe_filled_outputs(er_store_t *s, const json_t *doc, const json_t *fills, int *rc) {
  json_t *out = fills ? json_deep_copy(fills) : json_object();
  const char *name;
  json_t *sid;
  json_object_foreach(json_object_get(doc, "outputs"), name, sid) {
    if (json_object_get(out, name)) continue;
    json_t *slot = NULL;
    *rc = er_store_doc_get(s, ER__SLOT_COLL, json_string_value(sid), &slot, NULL);
    if (*rc < 0 && *rc != ER_ENOENT) {
      json_decref(out);
      return NULL;
    }
    if (json_is_true(json_object_get(slot, "filled")))
      json_object_set(out, name, json_object_get(slot, "value"));
    json_decref(slot);
  }
  *rc = 0;
  return out;
}

/* Runs def's finalize (if any) on the stage's filled outputs. */
static int finalize(er_store_t *s, const er_pipeline_def_t *def, json_t *doc, bool abort) {
  if (!def->finalize) return 0;
  int rc = 0;
  json_t *outputs = er__pipe_filled_outputs(s, doc, NULL, &rc);
  if (!outputs) return rc;
  er_pipe_ctx_t ctx;
  er__pctx_init(&ctx, def, doc, (int)json_integer_value(json_object_get(doc, "attempts")), false);
  def->finalize(&ctx, outputs, abort);
  er__pctx_free(&ctx);
  json_decref(outputs);
  return 0;
}

static int build_fin(er__pb_t *pb, void *ud) {
  fin_t *f = ud;
  int rc = 0;
  er__pdoc_t *d = er__pb_doc(pb, ER__PIPE_COLL, f->id, &rc);
  if (!d) return rc;
  if (!d->value || !pending(d->value, f->abort)) return ER__PB_NOOP;
  json_t *doc = d->value;
  if (f->kept) {
    /* It goes on; a callback that ends it later aborts it (callback.c). */
    if (strcmp(er__pipe_status(doc), "run") != 0) goto aborted; /* it ended meanwhile */
    if (json_is_true(json_object_get(doc, "cancel_refused"))) return ER__PB_NOOP;
    json_object_set_new(doc, "cancel_refused", json_true());
    d->dirty = true;
    return 0;
  }
  if (f->unknown && !f->abort) {
    bool requested;
    return er__pipe_request_abort(pb, json_string_value(json_object_get(doc, "root")), f->message,
                                  &requested);
  }
aborted:
  d->dirty = true;
  json_object_set_new(doc, "status", json_string(f->abort ? "aborted" : "done"));
  json_object_set_new(doc, "end_ms", json_integer(pb->now));
  if (!f->abort) return 0;
  json_object_set_new(doc, "was_aborted", json_true());
  size_t i;
  json_t *child;
  json_array_foreach(json_object_get(doc, "children"), i, child) {
    rc = er__pipe_enqueue(pb, ER__PIPE_TASK_ABORT, json_string_value(child), 0, pb->now);
    if (rc < 0) return rc;
  }
  return 0;
}

int er__pipe_exec_fin(er_store_t *s, const er_task_rec_t *rec, const char *id, bool abort,
                      er__pipe_result_t *res) {
  json_t *doc = NULL;
  int rc = er_store_doc_get(s, ER__PIPE_COLL, id, &doc, NULL);
  if (rc == ER_ENOENT) return 0;
  if (rc < 0) return rc;
  if (!pending(doc, abort)) {
    json_decref(doc);
    return 0; /* a duplicate or late delivery */
  }
  fin_t f = {.id = id, .abort = abort};
  const char *name = json_string_value(json_object_get(doc, "name"));
  const er_pipeline_def_t *def = er_pipeline_lookup(name);
  if (!def) {
    f.unknown = true;
    snprintf(f.message, sizeof f.message,
             "unknown pipeline '%s' (not registered in the worker that finalized stage %s)",
             name ? name : "", id);
    if (abort)
      er_log(ER_LOG_WARN, "pipeline %s: aborted without its finalize: %s", id, f.message);
  } else if (abort && (def->flags & ER_PIPE_ASYNC) && !strcmp(er__pipe_status(doc), "run")) {
    /* An async stage waiting for its completion is aborted only if its
     * try_cancel agrees (App Engine's); then its finalize runs. */
    er_pipe_ctx_t ctx;
    er__pctx_init(&ctx, def, doc, (int)json_integer_value(json_object_get(doc, "attempts")), false);
    f.kept = !def->try_cancel || !def->try_cancel(&ctx);
    er__pctx_free(&ctx);
    if (!f.kept) rc = finalize(s, def, doc, abort);
  } else {
    rc = finalize(s, def, doc, abort);
  }
  if (rc < 0) {
    json_decref(doc);
    return rc;
  }
  const char *queue = json_string_value(json_object_get(doc, "queue"));
  rc = er__pb_commit(s, rec, queue, build_fin, &f, &res->applied);
  json_decref(doc);
  return rc;
}
