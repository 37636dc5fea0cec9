/* A task's record as people and programs read it: what `errand status`
 * prints and the HTTP API answers, from one place so the two never differ. */
#include <stdio.h>
#include <time.h>

#include "errand/store.h"

/* Sets name to the time ms as ISO 8601 UTC with milliseconds (the number
 * itself when it is no time gmtime knows). */
static void set_time(json_t *o, const char *name, int64_t ms) {
  char buf[40];
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  if (ms < 0 || !gmtime_r(&secs, &tm)) {
    snprintf(buf, sizeof buf, "%lld", (long long)ms);
  } else {
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
  }
  json_object_set_new(o, name, json_string(buf));
}

json_t *er_task_rec_json(const er_task_rec_t *r) {
  json_t *o = json_pack("{s:s, s:s}", "id", r->id, "state", er_state_name(r->state));
  if (!o || r->state == ER_STATE_UNKNOWN) return o;
  json_object_set_new(o, "task", json_string(r->task));
  json_object_set_new(o, "queue", json_string(r->queue));
  if (r->key) json_object_set_new(o, "key", json_string(r->key));
  if (r->name) json_object_set_new(o, "name", json_string(r->name));
  json_object_set_new(o, "attempt", json_integer(r->attempt));
  json_object_set_new(o, "retries", json_integer(r->retries));
  if (r->progress >= 0) json_object_set_new(o, "progress", json_real(r->progress));
  if (r->progress_msg) json_object_set_new(o, "progress_msg", json_string(r->progress_msg));
  set_time(o, "created", r->created_ms);
  set_time(o, "eta", r->eta_ms);
  if (r->expires_ms) set_time(o, "expires", r->expires_ms);
  if (r->started_ms) set_time(o, "started", r->started_ms);
  if (r->finished_ms) set_time(o, "finished", r->finished_ms);
  if (r->worker) json_object_set_new(o, "worker", json_string(r->worker));
  if (r->error) json_object_set(o, "error", r->error);
  /* What the task was called with: a record page shows it. */
  if (r->args) json_object_set(o, "args", r->args);
  if (r->kwargs) json_object_set(o, "kwargs", r->kwargs);
  if (r->context) json_object_set(o, "context", r->context);
  return o;
}
