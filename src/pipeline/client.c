/* Starting and aborting pipelines from a client, and reading one back. Each
 * call works on a store handle of the client's own (er__client_take_store),
 * so it holds up no other thread's calls. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"
#include "queue/client_internal.h"

#define KEY_MAX 512

typedef struct start {
  const char *name, *key, *queue;
  const er_pipeline_def_t *def;
  json_t *args, *kwargs;
  int64_t eta_ms, countdown_ms;
  er_id_t id;
  char existing[ER_ID_LEN + 1]; /* the root holding the key */
} start_t;

static int build_start(er__pb_t *pb, void *ud) {
  start_t *st = ud;
  int rc = 0;
  if (st->key) {
    er__pdoc_t *k = er__pb_doc(pb, ER__KEY_COLL, st->key, &rc);
    if (!k) return rc;
    if (k->value) {
      snprintf(st->existing, sizeof st->existing, "%s",
               json_string_value(json_object_get(k->value, "root")));
      return ER_EEXIST;
    }
    if ((rc = er__pb_doc_new(pb, ER__KEY_COLL, st->key, json_pack("{s:s}", "root", st->id.text))))
      return rc;
  }
  json_t *outputs = json_object();
  const char *const none[] = {NULL};
  const char *const *names = st->def && st->def->outputs ? st->def->outputs : none;
  for (int i = -1; rc == 0 && (i < 0 || names[i]); i++) {
    er_id_t sid;
    json_t *w = json_array();
    if ((rc = er_id_new(&sid)) == 0)
      rc = er__pb_doc_new(pb, ER__SLOT_COLL, sid.text, er__slot_doc_new(st->id.text, w));
    json_decref(w);
    json_object_set_new(outputs, i < 0 ? "default" : names[i], json_string(sid.text));
  }
  json_t *doc = er__pipe_doc_new(st->id.text, st->name, st->id.text, NULL, pb->queue, st->args,
                                 st->kwargs, st->def, outputs, pb->now);
  if (doc && st->key) json_object_set_new(doc, "key", json_string(st->key)); /* for the cleanup */
  if (rc == 0) rc = er__pb_doc_new(pb, ER__PIPE_COLL, st->id.text, doc);
  else json_decref(doc);
  json_decref(outputs);
  char ikey[ER_ID_LEN + 32];
  er__pipe_root_index_key(ikey, sizeof ikey, pb->now, st->id.text);
  if (rc == 0)
    rc = er__pb_doc_new(pb, ER__ROOT_COLL, ikey,
                        json_pack("{s:s, s:s, s:I}", "id", st->id.text, "name", st->name,
                                  "created_ms", (json_int_t)pb->now));
  int64_t eta = st->eta_ms ? st->eta_ms : pb->now + st->countdown_ms;
  return rc ? rc : er__pipe_enqueue(pb, ER__PIPE_TASK_RUN, st->id.text, 1, eta);
}

static int with_store(er_client_t *c, const char *queue, er__pb_build_fn build, void *ud,
                      const char *what) {
  er_store_t *s = NULL;
  int rc = er__client_take_store(c, &s);
  if (rc < 0) return rc;
  rc = er__pb_commit(s, NULL, queue, build, ud, NULL);
  if (rc < 0 && rc != ER_EEXIST && rc != ER_ENOENT && rc != ER_EINVAL)
    er__client_store_fail(c, s, rc, what);
  er__client_put_store(c, s);
  return rc;
}

int er_pipeline_start(er_client_t *c, const char *name, json_t *args, json_t *kwargs,
                      const er_pipeline_opts_t *opts, er_id_t *root_id) {
  er_pipeline_opts_t none = {0};
  if (!opts) opts = &none;
  if (!c) return ER_EINVAL;
  if (!name || !*name) return er__client_fail(c, ER_EINVAL, "pipeline start: no pipeline name");
  start_t st = {.name = name, .key = opts->key, .def = er_pipeline_lookup(name)};
  if (!st.def && !opts->unchecked)
    return er__client_fail(c, ER_EINVAL, "unknown pipeline '%s' (not registered in this "
                           "process; .unchecked starts it for a worker that has it)", name);
  if (args && !json_is_array(args))
    return er__client_fail(c, ER_EINVAL, "pipeline start: args must be a JSON array");
  if (kwargs && !json_is_object(kwargs))
    return er__client_fail(c, ER_EINVAL, "pipeline start: kwargs must be a JSON object");
  if (opts->countdown_ms && opts->eta_ms)
    return er__client_fail(c, ER_EINVAL, "pipeline start: give countdown or eta, not both");
  if (opts->countdown_ms < 0 || opts->eta_ms < 0)
    return er__client_fail(c, ER_EINVAL, "pipeline start: countdown and eta cannot be negative");
  if (opts->key && (!*opts->key || strlen(opts->key) > KEY_MAX))
    return er__client_fail(c, ER_EINVAL, "pipeline start: the key must be 1 to %d bytes", KEY_MAX);
  if (opts->queue && (!*opts->queue || strlen(opts->queue) > 200))
    return er__client_fail(c, ER_EINVAL, "pipeline start: the queue name must be 1 to 200 bytes");
  int rc = er_id_new(&st.id);
  if (rc < 0) return er__client_fail(c, rc, "pipeline start: no id");
  st.args = args ? json_incref(args) : json_array();
  st.kwargs = kwargs ? json_incref(kwargs) : json_object();
  st.eta_ms = opts->eta_ms;
  st.countdown_ms = opts->countdown_ms;
  rc = with_store(c, opts->queue ? opts->queue : "default", build_start, &st, "pipeline start");
  json_decref(st.args);
  json_decref(st.kwargs);
  if (rc == ER_EEXIST) {
    if (root_id) snprintf(root_id->text, sizeof root_id->text, "%s", st.existing);
    return er__client_fail(c, rc, "pipeline start: the key '%s' belongs to root %s", opts->key,
                           st.existing);
  }
  if (rc == 0 && root_id) *root_id = st.id;
  return rc;
}

typedef struct abort_req {
  const char *root, *message;
  bool requested;
} abort_req_t;

static int build_abort(er__pb_t *pb, void *ud) {
  abort_req_t *a = ud;
  int rc = 0;
  er__pdoc_t *d = er__pb_doc(pb, ER__PIPE_COLL, a->root, &rc);
  if (!d) return rc;
  if (!d->value) return ER_ENOENT;
  const char *root = json_string_value(json_object_get(d->value, "root"));
  if (!root || strcmp(root, a->root) != 0) return ER_EINVAL;
  const char *q = json_string_value(json_object_get(d->value, "queue"));
  if (q) pb->queue = q;
  rc = er__pipe_request_abort(pb, a->root, a->message, &a->requested);
  return rc == 0 && !a->requested ? ER__PB_NOOP : rc;
}

int er_pipeline_abort(er_client_t *c, const char *root_id, const char *message, bool *aborted) {
  if (aborted) *aborted = false;
  if (!c) return ER_EINVAL;
  if (!root_id || !er_id_valid(root_id))
    return er__client_fail(c, ER_EINVAL, "pipeline abort: '%s' is not a pipeline id",
                           root_id ? root_id : "");
  abort_req_t a = {.root = root_id, .message = message ? message : "aborted"};
  int rc = with_store(c, NULL, build_abort, &a, "pipeline abort");
  if (rc == ER_ENOENT) return er__client_fail(c, rc, "pipeline abort: no pipeline %s", root_id);
  if (rc == ER_EINVAL)
    return er__client_fail(c, rc, "pipeline abort: %s is not a root (abort its root)", root_id);
  /* A NOOP commits nothing: requested stays as the last build left it. */
  if (rc == 0 && aborted) *aborted = a.requested;
  return rc;
}
