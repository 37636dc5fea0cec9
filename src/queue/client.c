/* The client: turns sends into store records and reads outcomes back. One
 * store handle per client, serialised by a mutex so threads may share it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "queue/client_internal.h"

/* ---- life ---- */

int er_client_open(const char *url, er_client_t **out, char *errmsg, size_t errmsg_size) {
  *out = NULL;
  er_client_t *c = er_calloc(1, sizeof *c);
  if (!c) return ER_ENOMEM;
  int rc = er_store_open(url, &c->store, errmsg, errmsg_size);
  if (rc < 0) {
    er_free(c);
    return rc;
  }
  pthread_mutex_init(&c->lock, NULL);
  *out = c;
  return 0;
}

void er_client_close(er_client_t *c) {
  if (!c) return;
  er__client_watch_free(c);
  er_store_close(c->store);
  pthread_mutex_destroy(&c->lock);
  er_free(c);
}

const char *er_client_last_error(const er_client_t *c) { return c->last_error; }
const char *er_client_url(const er_client_t *c) { return er_store_url(c->store); }

int er__client_fail(er_client_t *c, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
  va_end(ap);
  return rc;
}

/* Records the store's own message for a failed store call. */
static int store_fail(er_client_t *c, int rc, const char *what) {
  const char *detail = er_store_last_error(c->store);
  return er__client_fail(c, rc, "%s: %s", what, detail && *detail ? detail : er_strerror(rc));
}

/* ---- sending ---- */

/* Builds the record for one send; *rec is new. */
static int make_rec(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
                    const er_send_opts_t *o, int64_t now, er_task_rec_t **rec) {
  static const er_send_opts_t none;
  if (!o) o = &none;
  if (!task || !*task) return er__client_fail(c, ER_EINVAL, "send: no task name");
  if (args && !json_is_array(args))
    return er__client_fail(c, ER_EINVAL, "send: args must be a JSON array");
  if (kwargs && !json_is_object(kwargs))
    return er__client_fail(c, ER_EINVAL, "send: kwargs must be a JSON object");
  if (o->context && !json_is_object(o->context))
    return er__client_fail(c, ER_EINVAL, "send: context must be a JSON object");
  if (o->if_absent && !o->key)
    return er__client_fail(c, ER_EINVAL, "send: if_absent needs a key");
  er_task_rec_t *r = er_task_rec_new();
  if (!r) return ER_ENOMEM;
  if (er_id_new((er_id_t *)r->id) < 0) {
    er_task_rec_free(r);
    return er__client_fail(c, ER_ESYS, "send: no randomness for an id");
  }
  const er_task_def_t *def = er_task_lookup(task);
  r->task = er_strdup(task);
  r->queue = er_strdup(o->queue ? o->queue : def && def->queue ? def->queue : "default");
  r->priority = o->priority;
  r->args = args ? json_incref(args) : json_array();
  r->kwargs = kwargs ? json_incref(kwargs) : json_object();
  r->context = o->context ? json_incref(o->context) : NULL;
  r->name = o->name ? er_strdup(o->name) : NULL;
  r->key = o->key ? er_strdup(o->key) : NULL;
  r->created_ms = now;
  r->eta_ms = o->eta_ms > 0 ? o->eta_ms : now + (o->countdown_ms > 0 ? o->countdown_ms : 0);
  r->expires_ms = o->expires_ms > 0 ? now + o->expires_ms : 0;
  r->max_retries = o->max_retries == ER_RETRIES_NONE ? 0 : o->max_retries > 0 ? o->max_retries : -1;
  r->soft_limit_ms = o->soft_limit_ms;
  r->hard_limit_ms = o->hard_limit_ms;
  r->result_ttl_ms = o->result_ttl_ms ? o->result_ttl_ms : def ? def->result_ttl_ms : 0;
  r->ignore_result = o->ignore_result || (def && def->ignore_result);
  r->progress = -1;
  if (!r->task || !r->queue || !r->args || !r->kwargs || (o->name && !r->name) ||
      (o->key && !r->key)) {
    er_task_rec_free(r);
    return ER_ENOMEM;
  }
  *rec = r;
  return 0;
}

static int enqueue(er_client_t *c, er_task_rec_t **recs, size_t n, int flags, bool *existing) {
  pthread_mutex_lock(&c->lock);
  int rc = er_store_enqueue(c->store, recs, n, flags, existing);
  if (rc < 0) store_fail(c, rc, "send");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int er_send_ex(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
               const er_send_opts_t *opts, er_id_t *id, bool *existed) {
  er_task_rec_t *r;
  int rc = make_rec(c, task, args, kwargs, opts, er_now_wall_ms(), &r);
  if (rc < 0) return rc;
  bool ex = false;
  rc = enqueue(c, &r, 1, opts && opts->if_absent ? ER_ENQ_IF_ABSENT : 0, &ex);
  if (rc == 0) {
    if (id) memcpy(id->text, r->id, sizeof id->text);
    if (existed) *existed = ex;
  }
  er_task_rec_free(r);
  return rc;
}

int er_send(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
            const er_send_opts_t *opts, er_id_t *id) {
  return er_send_ex(c, task, args, kwargs, opts, id, NULL);
}

int er_fire(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
            const er_send_opts_t *opts) {
  er_send_opts_t o = opts ? *opts : (er_send_opts_t){0};
  o.ignore_result = true;
  return er_send(c, task, args, kwargs, &o, NULL);
}

int er_send_batch(er_client_t *c, const er_send_req_t *reqs, size_t n, er_id_t *ids) {
  if (n == 0) return 0;
  er_task_rec_t **recs = er_calloc(n, sizeof *recs);
  if (!recs) return ER_ENOMEM;
  int64_t now = er_now_wall_ms();
  int rc = 0;
  int flags = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    rc = make_rec(c, reqs[i].task, reqs[i].args, reqs[i].kwargs, reqs[i].opts, now, &recs[i]);
    if (reqs[i].opts && reqs[i].opts->if_absent) flags = ER_ENQ_IF_ABSENT;
  }
  if (rc == 0) rc = enqueue(c, recs, n, flags, NULL);
  for (size_t i = 0; i < n; i++) {
    if (rc == 0 && ids && recs[i]) memcpy(ids[i].text, recs[i]->id, sizeof ids[i].text);
    er_task_rec_free(recs[i]);
  }
  er_free(recs);
  return rc;
}

/* ---- reading ---- */

int er__client_get(er_client_t *c, const char *id, const char *key, er_task_rec_t **out) {
  pthread_mutex_lock(&c->lock);
  int rc = er_store_get(c->store, id, key, out);
  if (rc < 0 && rc != ER_ENOENT) store_fail(c, rc, "status");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int er_status(er_client_t *c, const char *id, const char *key, er_task_rec_t **out) {
  if (!id && !key) return er__client_fail(c, ER_EINVAL, "status: give an id or a key");
  int rc = er__client_get(c, id, key, out);
  if (rc != ER_ENOENT) return rc;
  er_task_rec_t *r = er_task_rec_new();
  if (!r) return ER_ENOMEM;
  r->state = ER_STATE_UNKNOWN;
  r->progress = -1;
  if (id) snprintf(r->id, sizeof r->id, "%s", id);
  if (key) r->key = er_strdup(key);
  *out = r;
  return 0;
}

int er__client_outcome(er_client_t *c, const er_task_rec_t *r, json_t **result, json_t **error) {
  switch (r->state) {
    case ER_STATE_SUCCESS:
      if (result) *result = r->result ? json_incref(r->result) : json_null();
      return 0;
    case ER_STATE_FAILURE:
      if (error) *error = json_incref(r->error);
      return er__client_fail(c, ER_EFAIL, "task %s failed: %s", r->id,
                             json_string_value(json_object_get(r->error, "message")));
    case ER_STATE_REVOKED:
      if (error) *error = json_incref(r->error);
      return er__client_fail(c, ER_EREVOKED, "task %s was revoked", r->id);
    default:
      return er__client_fail(c, ER_ESTATE, "task %s is %s", r->id, er_state_name(r->state));
  }
}

int er_result(er_client_t *c, const char *id, const char *key, int64_t timeout_ms,
              json_t **result, json_t **error) {
  if (result) *result = NULL;
  if (error) *error = NULL;
  if (!id && !key) return er__client_fail(c, ER_EINVAL, "result: give an id or a key");
  uint64_t deadline = timeout_ms > 0 ? er_now_mono_ms() + (uint64_t)timeout_ms : 0;
  for (;;) {
    er_task_rec_t *r;
    int rc = er__client_get(c, id, key, &r);
    if (rc == ER_ENOENT)
      return er__client_fail(c, rc, "no task %s", id ? id : key);
    if (rc < 0) return rc;
    bool finished = er_state_finished(r->state);
    rc = finished || timeout_ms == 0 ? er__client_outcome(c, r, result, error) : 0;
    er_task_rec_free(r);
    if (finished || timeout_ms == 0) return rc;
    int wait_ms = 250; /* a safety net: the store's change notice normally comes first */
    if (deadline) {
      uint64_t now = er_now_mono_ms();
      if (now >= deadline)
        return er__client_fail(c, ER_ETIMEDOUT, "result: still not finished after %lld ms",
                               (long long)timeout_ms);
      if (deadline - now < (uint64_t)wait_ms) wait_ms = (int)(deadline - now);
    }
    pthread_mutex_lock(&c->lock);
    er_store_wait_change(c->store, wait_ms);
    pthread_mutex_unlock(&c->lock);
  }
}

int er_id_for_key(er_client_t *c, const char *key, er_id_t *id) {
  er_task_rec_t *r;
  int rc = er__client_get(c, NULL, key, &r);
  if (rc == ER_ENOENT) return er__client_fail(c, rc, "no task for key '%s'", key);
  if (rc < 0) return rc;
  memcpy(id->text, r->id, sizeof id->text);
  er_task_rec_free(r);
  return 0;
}

int er_key_for_id(er_client_t *c, const char *id, char **key) {
  er_task_rec_t *r;
  int rc = er__client_get(c, id, NULL, &r);
  if (rc == ER_ENOENT) return er__client_fail(c, rc, "no task %s", id);
  if (rc < 0) return rc;
  *key = r->key ? er_strdup(r->key) : NULL;
  er_task_rec_free(r);
  if (!*key) return er__client_fail(c, ER_ENOENT, "task %s has no key", id);
  return 0;
}

/* ---- managing ---- */

int er_revoke(er_client_t *c, const char *id) {
  pthread_mutex_lock(&c->lock);
  int rc = er_store_revoke(c->store, id, NULL);
  if (rc == ER_ENOENT)
    er__client_fail(c, rc, "no task %s", id);
  else if (rc < 0)
    store_fail(c, rc, "revoke");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int er_purge(er_client_t *c, const char *queue, size_t *count) {
  pthread_mutex_lock(&c->lock);
  int rc = er_store_purge(c->store, queue, count);
  if (rc < 0) store_fail(c, rc, "purge");
  pthread_mutex_unlock(&c->lock);
  return rc;
}
