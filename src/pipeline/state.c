/* Pipeline records, slots and barriers as the store keeps them, and the
 * transitions they share: filling a slot (which counts down the barriers
 * waiting on it and releases what they hold) and asking for an abort. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

static int64_t wall_clock(void) { return er_now_wall_ms(); }
int64_t (*er__pipe_clock)(void) = wall_clock;

json_t *er__pipe_doc_new(const char *id, const char *name, const char *root, const char *parent,
                         const char *queue, json_t *args, json_t *kwargs,
                         const er_pipeline_def_t *def, json_t *outputs, int64_t now) {
  int max = def && def->max_attempts > 0 ? def->max_attempts : 3;
  double backoff = def && def->backoff_s > 0 ? def->backoff_s : 15;
  double factor = def && def->backoff_factor > 0 ? def->backoff_factor : 2;
  json_t *doc = json_pack(
      "{s:s, s:s, s:s, s:s?, s:s, s:O, s:O, s:O, s:b, s:[], s:s, s:i, s:i, s:f, s:f, s:I, "
      "s:n, s:n, s:n, s:n, s:n, s:n, s:b}",
      "id", id, "name", name, "root", root, "parent", parent, "queue", queue, "args", args,
      "kwargs", kwargs, "outputs", outputs, "strict", def && def->outputs, "children", "status",
      "waiting", "attempts", 0, "max_attempts", max, "backoff_s", backoff, "backoff_factor",
      factor, "created_ms", (json_int_t)now, "start_ms", "end_ms", "retry_message",
      "abort_message", "status_message", "links", "abort_requested", 0);
  /* Whether it takes callbacks: what a client checks before queueing one. */
  json_object_set_new(doc, "async", json_boolean(def && (def->flags & ER_PIPE_ASYNC)));
  /* Whether its callbacks check their own token: what the HTTP layer asks
   * when a callback's URL is not signed. */
  json_object_set_new(doc, "public_callbacks",
                      json_boolean(def && (def->flags & ER_PIPE_PUBLIC_CALLBACKS)));
  json_object_set_new(doc, "state", json_null());
  return doc;
}

json_t *er__slot_doc_new(const char *owner, json_t *waiters) {
  return json_pack("{s:b, s:n, s:n, s:n, s:s, s:O}", "filled", 0, "value", "fill_ms", "filler",
                   "owner", owner, "waiters", waiters);
}

const char *er__pipe_status(const json_t *doc) {
  const char *s = json_string_value(json_object_get(doc, "status"));
  return s ? s : "";
}

bool er__pipe_over(const json_t *doc) {
  const char *s = er__pipe_status(doc);
  return strcmp(s, "done") == 0 || strcmp(s, "aborted") == 0;
}

json_t *er__slot_ref(const char *slot_id) { return json_pack("{s:s}", "$slot", slot_id); }

const char *er__slot_ref_id(const json_t *v) {
  if (!json_is_object(v) || json_object_size(v) != 1) return NULL;
  return json_string_value(json_object_get(v, "$slot"));
}

int er__pipe_enqueue(er__pb_t *pb, const char *task, const char *id, int attempt, int64_t eta) {
  /* A key per (task, pipeline[, attempt]): a second release of the same
   * thing finds the live task (ER_ENQ_IF_ABSENT) instead of adding one. */
  char key[128];
  json_t *args;
  if (attempt > 0) {
    snprintf(key, sizeof key, "%s:%s:%d", task, id, attempt);
    args = json_pack("[s, i]", id, attempt);
  } else {
    snprintf(key, sizeof key, "%s:%s", task, id);
    args = json_pack("[s]", id);
  }
  return er__pb_enqueue(pb, task, args, eta, key);
}

/* The barrier reached 0: a child may start, or a stage may finalize. */
static int fire(er__pb_t *pb, const char *barrier) {
  const char *colon = strrchr(barrier, ':');
  if (!colon || (size_t)(colon - barrier) != ER_ID_LEN) return 0;
  char id[ER_ID_LEN + 1];
  memcpy(id, barrier, ER_ID_LEN);
  id[ER_ID_LEN] = 0;
  if (strcmp(colon + 1, "start") == 0)
    return er__pipe_enqueue(pb, ER__PIPE_TASK_RUN, id, 1, pb->now);
  if (strcmp(colon + 1, "fin") != 0) return 0;
  int rc = 0;
  er__pdoc_t *d = er__pb_doc(pb, ER__PIPE_COLL, id, &rc);
  if (!d) return rc;
  /* An aborted stage is finalized by the abort instead. */
  if (!d->value || strcmp(er__pipe_status(d->value), "run") != 0) return 0;
  json_object_set_new(d->value, "status", json_string("finalizing"));
  d->dirty = true;
  return er__pipe_enqueue(pb, ER__PIPE_TASK_FIN, id, 0, pb->now);
}

static int count_down(er__pb_t *pb, const char *barrier) {
  int64_t v = 0;
  int rc = er__pb_counter(pb, barrier, &v);
  if (rc < 0) return rc;
  if (v <= 0) {
    er_log(ER_LOG_WARN, "pipeline: barrier %s counted down past 0 (ignored)", barrier);
    return 0;
  }
  if ((rc = er__pb_counter_add(pb, barrier, -1)) < 0) return rc;
  return v == 1 ? fire(pb, barrier) : 0;
}

int er__pipe_fill(er__pb_t *pb, const char *slot, json_t *value, const char *filler) {
  int rc = 0;
  er__pdoc_t *d = er__pb_doc(pb, ER__SLOT_COLL, slot, &rc);
  if (!d) return rc;
  if (!d->value) return ER_ENOENT;
  if (json_is_true(json_object_get(d->value, "filled"))) return ER_EALREADY;
  json_object_set_new(d->value, "filled", json_true());
  json_object_set(d->value, "value", value ? value : json_null());
  json_object_set_new(d->value, "fill_ms", json_integer(pb->now));
  json_object_set_new(d->value, "filler", json_string(filler));
  d->dirty = true;
  json_t *waiters = json_object_get(d->value, "waiters");
  size_t i;
  json_t *w;
  json_array_foreach(waiters, i, w) {
    if (json_is_string(w) && (rc = count_down(pb, json_string_value(w))) < 0) return rc;
  }
  return 0;
}

int er__pipe_request_abort(er__pb_t *pb, const char *root, const char *message, bool *requested) {
  *requested = false;
  int rc = 0;
  er__pdoc_t *d = er__pb_doc(pb, ER__PIPE_COLL, root, &rc);
  if (!d) return rc;
  if (!d->value) return ER_ENOENT;
  if (er__pipe_over(d->value) || json_is_true(json_object_get(d->value, "abort_requested")))
    return 0;
  json_object_set_new(d->value, "abort_requested", json_true());
  json_object_set_new(d->value, "abort_message", json_string(message ? message : "aborted"));
  d->dirty = true;
  /* What the tree's other stages look at before they run or commit. */
  er__pdoc_t *a = er__pb_doc(pb, ER__ABORT_COLL, root, &rc);
  if (!a) return rc;
  json_decref(a->value);
  a->value = json_pack("{s:s}", "message", message ? message : "aborted");
  a->dirty = true;
  *requested = true;
  return er__pipe_enqueue(pb, ER__PIPE_TASK_ABORT, root, 0, pb->now);
}
