/* The run task ("errand.pipe.run" [id, attempt]): runs a stage's function
 * once its arguments are filled, and commits what came of it as one
 * transition: its outputs (a leaf), or its children with their slots,
 * barriers and the run tasks of those ready now; or a retry; or an abort. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

/* OUT_PENDING: an async stage that ran and waits for its completion. */
typedef enum { OUT_DONE, OUT_CHILDREN, OUT_RETRY, OUT_ABORT, OUT_PENDING } out_kind_t;

typedef struct run {
  const char *id;
  int attempt;
  int64_t start_ms;
  er_pipe_ctx_t ctx;
  out_kind_t kind;
  char message[1024];
  /* The stage's record as read before the run, at its version: the first
   * build starts from it (and from the abort record found absent then)
   * instead of reading both again; a rebuild reads. */
  const json_t *read;
  int64_t read_version;
  int builds;
} run_t;

/* A run task for this attempt of a stage that has not run it yet. */
static bool runnable(const json_t *doc, int attempt) {
  const char *st = er__pipe_status(doc);
  return (strcmp(st, "waiting") == 0 || strcmp(st, "retry") == 0) &&
         json_integer_value(json_object_get(doc, "attempts")) == attempt - 1;
}

/* Whether the tree of doc is being aborted. A root says so itself; other
 * stages look at the root's small abort record, not at the root's record,
 * which lists every child (a fan-out of thousands would read it each time). */
bool er__pipe_aborting(er_store_t *s, const json_t *doc) {
  const char *root = json_string_value(json_object_get(doc, "root"));
  const char *id = json_string_value(json_object_get(doc, "id"));
  if (!root || !id || strcmp(root, id) == 0)
    return json_is_true(json_object_get(doc, "abort_requested"));
  return er_store_doc_get(s, ER__ABORT_COLL, root, NULL, NULL) == 0;
}

/* The slots v's top-level slot references name, read at once (new: id ->
 * slot document). */
static json_t *slots_of(er_store_t *s, json_t *v, int *rc) {
  json_t *want = json_object(), *out = NULL, *x;
  const char *k;
  size_t i;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) if (er__slot_ref_id(x)) json_object_set(want, er__slot_ref_id(x), x);
  } else {
    json_object_foreach(v, k, x) if (er__slot_ref_id(x)) json_object_set(want, er__slot_ref_id(x), x);
  }
  *rc = er__pipe_slots_read(s, want, &out);
  json_decref(want);
  return out;
}

/* v with its top-level slot references replaced by their values (new), or
 * NULL with a message when one is not filled. */
static json_t *resolve(er_store_t *s, json_t *v, char *msg, size_t msg_size, int *rc) {
  json_t *slots = slots_of(s, v, rc);
  if (!slots) return NULL;
  json_t *out = json_copy(v);
  void *iter = json_is_object(out) ? json_object_iter(out) : NULL;
  size_t n = json_is_array(out) ? json_array_size(out) : 0;
  for (size_t i = 0; out && (i < n || iter);) {
    json_t *x = iter ? json_object_iter_value(iter) : json_array_get(out, i);
    const char *sid = er__slot_ref_id(x);
    if (sid) {
      json_t *slot = json_object_get(slots, sid);
      if (!json_is_true(json_object_get(slot, "filled"))) {
        snprintf(msg, msg_size, "slot %s was read before it was filled", sid);
        json_decref(out);
        out = NULL;
        break;
      }
      json_t *val = json_incref(json_object_get(slot, "value"));
      if (iter) json_object_iter_set_new(out, iter, val);
      else json_array_set_new(out, i, val);
    }
    if (iter) iter = json_object_iter_next(out, iter);
    else i++;
  }
  json_decref(slots);
  return out;
}

/* Runs the stage's function and decides what came of it. A store error
 * reading its arguments is returned (the task retries, no attempt spent). */
static int run_stage(er_store_t *s, run_t *r, json_t *doc, const er_pipeline_def_t *def,
                     const char *base_url, const uint8_t *secret) {
  er__pctx_init(&r->ctx, def, doc, r->attempt, true);
  char msg[512] = "";
  bool async = def->flags & ER_PIPE_ASYNC;
  snprintf(msg, sizeof msg, "run:%d", r->attempt);
  int rc = async ? er__pctx_bind(&r->ctx, s, base_url, secret, msg) : 0;
  msg[0] = 0;
  if (rc < 0) return rc;
  json_t *args = resolve(s, json_object_get(doc, "args"), msg, sizeof msg, &rc);
  json_t *kwargs = args ? resolve(s, json_object_get(doc, "kwargs"), msg, sizeof msg, &rc) : NULL;
  if (rc < 0) {
    json_decref(args);
    return rc;
  }
  if (!args || !kwargs) {
    er__pctx_usage(&r->ctx, "pipeline '%s': %s", def->name, msg[0] ? msg : "out of memory");
  } else {
    json_t *value = def->run(&r->ctx, args, kwargs);
    if (async && r->ctx.ask == ER__ASK_NONE && (r->ctx.nchildren || value))
      er__pctx_usage(&r->ctx, "async pipeline '%s' %s", def->name,
                     r->ctx.nchildren ? "declares children" : "returns a value (complete it "
                     "with er_pipe_complete)");
    else if (async)
      ; /* its outputs are filled as it completes */
    else if (r->ctx.ask == ER__ASK_NONE && r->ctx.nchildren && value)
      er__pctx_usage(&r->ctx, "pipeline '%s' declares children and returns a value (its last "
                     "child gives its output)", def->name);
    else if (r->ctx.ask == ER__ASK_NONE && !r->ctx.nchildren &&
             (value || !json_object_get(r->ctx.fills, "default")))
      er_pipe_fill(&r->ctx, "default", value);
    json_decref(value);
  }
  json_decref(args);
  json_decref(kwargs);
  char missing[512];
  if (r->ctx.ask == ER__ASK_NONE && !r->ctx.nchildren && (!async || r->ctx.completed) &&
      er__pctx_unfilled(&r->ctx, missing, sizeof missing))
    er__pctx_usage(&r->ctx, "pipeline '%s' never filled its outputs %s", def->name, missing);
  if (r->ctx.ask != ER__ASK_NONE) {
    r->kind = r->ctx.ask == ER__ASK_ABORT ? OUT_ABORT : OUT_RETRY;
    snprintf(r->message, sizeof r->message, "%s", r->ctx.message ? r->ctx.message : "");
    return 0;
  }
  r->kind = r->ctx.nchildren ? OUT_CHILDREN
            : async && !r->ctx.completed ? OUT_PENDING : OUT_DONE;
  if (r->kind == OUT_DONE && def->finalize) {
    er_pipe_ctx_t fin;
    er__pctx_init(&fin, def, doc, r->attempt, false);
    def->finalize(&fin, r->ctx.fills, false);
    er__pctx_free(&fin);
  }
  return 0;
}

int er__pipe_fill_own(er__pb_t *pb, const char *id, const er_pipe_ctx_t *ctx, json_t *doc) {
  json_t *outputs = json_object_get(doc, "outputs");
  const char *name;
  json_t *value;
  json_object_foreach(ctx->fills, name, value) {
    const char *sid = json_string_value(json_object_get(outputs, name));
    int rc;
    if (!sid) {
      er_id_t nid;
      json_t *none = json_array();
      if ((rc = er_id_new(&nid)) < 0 ||
          (rc = er__pb_doc_new(pb, ER__SLOT_COLL, nid.text, er__slot_doc_new(id, none))) < 0) {
        json_decref(none);
        return rc;
      }
      json_decref(none);
      json_object_set_new(outputs, name, json_string(nid.text));
      sid = json_string_value(json_object_get(outputs, name));
    }
    rc = er__pipe_fill(pb, sid, value, id);
    if (rc == ER_EALREADY)
      er_log(ER_LOG_WARN, "pipeline %s: slot %s was already filled", id, sid);
    else if (rc < 0) return rc;
  }
  return 0;
}

static int add_child(er__pb_t *pb, run_t *r, json_t *doc, const er__pchild_t *c, json_t *waiters,
                     json_t *inherited, size_t *nslots) {
  int rc = 0;
  const char *name;
  json_t *sid;
  json_object_foreach(c->outputs, name, sid) {
    const char *s = json_string_value(sid);
    (*nslots)++;
    char fin[ER_ID_LEN + 8];
    snprintf(fin, sizeof fin, "%s:fin", r->id);
    if (json_object_get(inherited, s)) {
      er__pdoc_t *d = er__pb_doc(pb, ER__SLOT_COLL, s, &rc);
      if (!d) return rc;
      if (!d->value) return ER_ENOENT;
      json_array_append_new(json_object_get(d->value, "waiters"), json_string(fin));
      d->dirty = true;
      continue;
    }
    json_t *w = json_object_get(waiters, s);
    json_t *list = w ? json_copy(w) : json_array();
    json_array_append_new(list, json_string(fin));
    rc = er__pb_doc_new(pb, ER__SLOT_COLL, s, er__slot_doc_new(c->id, list));
    json_decref(list);
    if (rc < 0) return rc;
  }
  const char *root = json_string_value(json_object_get(doc, "root"));
  json_t *cd = er__pipe_doc_new(c->id, c->def->name, root, r->id, pb->queue, c->args, c->kwargs,
                                c->def, c->outputs, pb->now);
  if (cd) json_object_set(cd, "waits", c->waits);
  if ((rc = er__pb_doc_new(pb, ER__PIPE_COLL, c->id, cd)) < 0) return rc;
  size_t k = json_array_size(c->waits);
  if (!k) return er__pipe_enqueue(pb, ER__PIPE_TASK_RUN, c->id, 1, pb->now);
  char start[ER_ID_LEN + 8];
  snprintf(start, sizeof start, "%s:start", c->id);
  return er__pb_counter_new(pb, start, (int64_t)k);
}

/* The stage's children, their slots and barriers; the last child takes the
 * stage's unfilled outputs as its own. */
static int build_children(er__pb_t *pb, run_t *r, json_t *doc) {
  er_pipe_ctx_t *ctx = &r->ctx;
  er__pchild_t *last = ctx->children[ctx->nchildren - 1];
  json_t *inherited = json_object(), *waiters = json_object(), *ids = json_array();
  const char *name;
  json_t *sid;
  json_object_foreach(json_object_get(doc, "outputs"), name, sid) {
    if (json_object_get(ctx->fills, name)) continue;
    json_object_set(last->outputs, name, sid);
    json_object_set_new(inherited, json_string_value(sid), json_true());
  }
  for (size_t i = 0; i < ctx->nchildren; i++) {
    size_t j;
    json_t *w;
    char start[ER_ID_LEN + 8];
    snprintf(start, sizeof start, "%s:start", ctx->children[i]->id);
    json_array_foreach(ctx->children[i]->waits, j, w) {
      json_t *list = json_object_get(waiters, json_string_value(w));
      if (!list) json_object_set_new(waiters, json_string_value(w), list = json_array());
      json_array_append_new(list, json_string(start));
    }
  }
  int rc = 0;
  size_t nslots = 0;
  for (size_t i = 0; i < ctx->nchildren && rc >= 0; i++) {
    rc = add_child(pb, r, doc, ctx->children[i], waiters, inherited, &nslots);
    json_array_append_new(ids, json_string(ctx->children[i]->id));
  }
  char fin[ER_ID_LEN + 8];
  snprintf(fin, sizeof fin, "%s:fin", r->id);
  if (rc >= 0) rc = er__pb_counter_new(pb, fin, (int64_t)nslots);
  json_object_set_new(doc, "status", json_string("run"));
  json_object_set_new(doc, "children", ids);
  json_decref(inherited);
  json_decref(waiters);
  return rc < 0 ? rc : er__pipe_fill_own(pb, r->id, &r->ctx, doc);
}

/* The n-th retry's wait: backoff_s * factor^(n-1), at most a year (many
 * attempts would otherwise overflow the clock). */
#define BACKOFF_MAX_S (365.0 * 86400.0)
static int64_t backoff_ms(const json_t *doc, int n) {
  double s = json_number_value(json_object_get(doc, "backoff_s"));
  double f = json_number_value(json_object_get(doc, "backoff_factor"));
  for (int i = 1; i < n && s < BACKOFF_MAX_S; i++) s *= f;
  return (int64_t)((s < BACKOFF_MAX_S ? s : BACKOFF_MAX_S) * 1000.0);
}

int er__pipe_build_retry(er__pb_t *pb, const char *id, json_t *doc, int n, const char *message) {
  json_object_set_new(doc, "retry_message", json_string(message));
  int max = (int)json_integer_value(json_object_get(doc, "max_attempts"));
  if (n < max) {
    json_object_set_new(doc, "status", json_string("retry"));
    return er__pipe_enqueue(pb, ER__PIPE_TASK_RUN, id, n + 1, pb->now + backoff_ms(doc, n));
  }
  char msg[64];
  bool requested;
  snprintf(msg, sizeof msg, "aborting after %d attempts", n);
  return er__pipe_request_abort(pb, json_string_value(json_object_get(doc, "root")), msg,
                                &requested);
}

static int build_run(er__pb_t *pb, void *ud) {
  run_t *r = ud;
  int rc = 0;
  if (r->builds++ == 0) {
    const char *root = json_string_value(json_object_get(r->read, "root"));
    if ((rc = er__pb_doc_seed(pb, ER__PIPE_COLL, r->id, json_deep_copy(r->read),
                              r->read_version)) < 0 ||
        (root && strcmp(root, r->id) != 0 &&
         (rc = er__pb_doc_seed(pb, ER__ABORT_COLL, root, NULL, 0)) < 0))
      return rc;
  }
  er__pdoc_t *d = er__pb_doc(pb, ER__PIPE_COLL, r->id, &rc);
  if (!d) return rc;
  /* Aborted, or run by another delivery, while this one ran: nothing to do. */
  if (!d->value || !runnable(d->value, r->attempt)) return ER__PB_NOOP;
  json_t *doc = d->value;
  /* The tree is being aborted: the abort finalizes this stage instead. */
  const char *root = json_string_value(json_object_get(doc, "root"));
  if (json_is_true(json_object_get(doc, "abort_requested"))) return ER__PB_NOOP;
  if (strcmp(root, r->id) != 0) {
    er__pdoc_t *ab = er__pb_doc(pb, ER__ABORT_COLL, root, &rc);
    if (!ab) return rc;
    if (ab->value) return ER__PB_NOOP;
  }
  d->dirty = true;
  json_object_set_new(doc, "attempts", json_integer(r->attempt));
  if (json_is_null(json_object_get(doc, "start_ms")))
    json_object_set_new(doc, "start_ms", json_integer(r->start_ms));
  er__pctx_put_status(&r->ctx, doc);
  /* A root started unchecked did not know; the worker does. */
  if (r->ctx.def) {
    json_object_set_new(doc, "async", json_boolean(r->ctx.def->flags & ER_PIPE_ASYNC));
    json_object_set_new(doc, "public_callbacks",
                        json_boolean(r->ctx.def->flags & ER_PIPE_PUBLIC_CALLBACKS));
  }
  bool requested;
  if (r->kind != OUT_RETRY && r->kind != OUT_ABORT &&
      (rc = er__pctx_put_async(pb, &r->ctx, doc)) < 0)
    return rc;
  switch (r->kind) {
    case OUT_DONE:
      json_object_set_new(doc, "status", json_string("done"));
      json_object_set_new(doc, "end_ms", json_integer(pb->now));
      return er__pipe_fill_own(pb, r->id, &r->ctx, doc);
    case OUT_PENDING: /* in RUN until a callback completes it */
      json_object_set_new(doc, "status", json_string("run"));
      return er__pipe_fill_own(pb, r->id, &r->ctx, doc);
    case OUT_CHILDREN:
      return build_children(pb, r, doc);
    case OUT_RETRY:
      return er__pipe_build_retry(pb, r->id, doc, r->attempt, r->message);
    case OUT_ABORT:
      return er__pipe_request_abort(pb, root, r->message, &requested);
  }
  return 0;
}

int er__pipe_exec_run(er_store_t *s, const er_task_rec_t *rec, const char *id, int attempt,
                      const char *base_url, const uint8_t *secret, er__pipe_result_t *res) {
  json_t *doc = NULL;
  int64_t version = 0;
  int rc = er_store_doc_get(s, ER__PIPE_COLL, id, &doc, &version);
  if (rc == ER_ENOENT) return 0;
  if (rc < 0) return rc;
  if (!runnable(doc, attempt) || er__pipe_aborting(s, doc)) {
    json_decref(doc);
    return 0; /* a duplicate or late delivery, or a tree being aborted */
  }
  run_t r = {.id = id, .attempt = attempt, .start_ms = er__pipe_clock(), .read = doc,
             .read_version = version};
  const char *name = json_string_value(json_object_get(doc, "name"));
  const er_pipeline_def_t *def = er_pipeline_lookup(name);
  if (def) {
    rc = run_stage(s, &r, doc, def, base_url, secret);
  } else {
    er__pctx_init(&r.ctx, NULL, doc, attempt, true);
    r.kind = OUT_ABORT;
    snprintf(r.message, sizeof r.message,
             "unknown pipeline '%s' (not registered in the worker that ran stage %s)",
             name ? name : "", id);
  }
  const char *queue = json_string_value(json_object_get(doc, "queue"));
  if (rc == 0) rc = er__pb_commit(s, rec, queue, build_run, &r, &res->applied);
  er__pctx_free(&r.ctx);
  json_decref(doc);
  return rc;
}
