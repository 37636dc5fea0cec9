/* The client: its life, and reading outcomes back. One store handle per
 * client for short calls, serialised by a mutex so threads may share it; a
 * thread that waits for a result does so on a handle of its own (a spare),
 * so that it holds up nobody, and so does a status read that finds the
 * handle busy. Sending is in client_send.c, futures in
 * client_async.c. */
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
  pthread_mutex_init(&c->spare_lock, NULL);
  *out = c;
  return 0;
}

void er_client_close(er_client_t *c) {
  if (!c) return;
  er__client_watch_free(c);
  for (size_t i = 0; i < c->nspare; i++) er_store_close(c->spare[i]);
  er_free(c->spare);
  er_store_close(c->store);
  pthread_mutex_destroy(&c->spare_lock);
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

int er__client_store_fail(er_client_t *c, er_store_t *s, int rc, const char *what) {
  const char *detail = er_store_last_error(s);
  return er__client_fail(c, rc, "%s: %s", what, detail && *detail ? detail : er_strerror(rc));
}

static int store_fail(er_client_t *c, int rc, const char *what) {
  return er__client_store_fail(c, c->store, rc, what);
}

int er__client_take_store(er_client_t *c, er_store_t **out) {
  pthread_mutex_lock(&c->spare_lock);
  *out = c->nspare ? c->spare[--c->nspare] : NULL;
  pthread_mutex_unlock(&c->spare_lock);
  if (*out) return 0;
  char msg[256] = "";
  int rc = er_store_open(er_store_url(c->store), out, msg, sizeof msg);
  return rc < 0 ? er__client_fail(c, rc, "%s", msg) : 0;
}

/* Spare handles kept for the next caller, at most: a burst of concurrent
 * readers (an HTTP server's 32 connections) would otherwise leave one handle
 * each, an SQLite handle holding up to 2 MB of page cache. */
#define SPARE_KEEP 8

void er__client_put_store(er_client_t *c, er_store_t *s) {
  pthread_mutex_lock(&c->spare_lock);
  if (c->nspare < SPARE_KEEP && c->nspare == c->spare_cap) {
    size_t cap = c->spare_cap ? c->spare_cap * 2 : 4;
    er_store_t **v = er_realloc(c->spare, cap * sizeof *v);
    if (v) {
      c->spare = v;
      c->spare_cap = cap;
    }
  }
  if (c->nspare < c->spare_cap) {
    c->spare[c->nspare++] = s;
    s = NULL;
  }
  pthread_mutex_unlock(&c->spare_lock);
  er_store_close(s); /* no room to keep it */
}

/* ---- reading ---- */

int er__client_get(er_client_t *c, const char *id, const char *key, er_task_rec_t **out) {
  if (pthread_mutex_trylock(&c->lock) == 0) {
    int rc = er_store_get(c->store, id, key, out);
    if (rc < 0 && rc != ER_ENOENT) store_fail(c, rc, "status");
    pthread_mutex_unlock(&c->lock);
    return rc;
  }
  /* Another thread is using the handle: rather than queue behind it (an HTTP
   * server's status reads each waited for the one before, a Redis round trip
   * apiece, and paid a futex wake per hand-over), read on a spare handle. */
  er_store_t *s;
  int rc = er__client_take_store(c, &s);
  if (rc < 0) return rc;
  rc = er_store_get(s, id, key, out);
  if (rc < 0 && rc != ER_ENOENT) {
    er__client_store_fail(c, s, rc, "status");
    er_store_close(s); /* it may be broken: the next read opens a new one */
    return rc;
  }
  er__client_put_store(c, s);
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

int er__rec_outcome(const er_task_rec_t *r, json_t **result, json_t **error, char *msg,
                    size_t msg_size) {
  switch (r->state) {
    case ER_STATE_SUCCESS:
      if (result) *result = r->result ? json_incref(r->result) : json_null();
      return 0;
    case ER_STATE_FAILURE: {
      if (error) *error = json_incref(r->error);
      const char *m = json_string_value(json_object_get(r->error, "message"));
      snprintf(msg, msg_size, "task %s failed: %s", r->id, m ? m : "(no message)");
      return ER_EFAIL;
    }
    case ER_STATE_REVOKED:
      if (error) *error = json_incref(r->error);
      snprintf(msg, msg_size, "task %s was revoked", r->id);
      return ER_EREVOKED;
    default:
      snprintf(msg, msg_size, "task %s is %s", r->id, er_state_name(r->state));
      return ER_ESTATE;
  }
}

static int outcome(er_client_t *c, const er_task_rec_t *r, json_t **result, json_t **error) {
  char msg[256];
  int rc = er__rec_outcome(r, result, error, msg, sizeof msg);
  return rc < 0 ? er__client_fail(c, rc, "%s", msg) : 0;
}

/* Waits on s, a handle no other thread uses: c->lock is never held here. */
static int wait_result(er_client_t *c, er_store_t *s, const char *id, const char *key,
                       int64_t timeout_ms, json_t **result, json_t **error) {
  uint64_t deadline = timeout_ms > 0 ? er_now_mono_ms() + (uint64_t)timeout_ms : 0;
  for (;;) {
    er_task_rec_t *r;
    int rc = er_store_get(s, id, key, &r);
    if (rc == ER_ENOENT) return er__client_fail(c, rc, "no task %s", id ? id : key);
    if (rc < 0) return er__client_store_fail(c, s, rc, "result");
    bool finished = er_state_finished(r->state);
    rc = finished ? outcome(c, r, result, error) : 0;
    er_task_rec_free(r);
    if (finished) return rc;
    int wait_ms = 250; /* a safety net: the store's change notice normally comes first */
    if (deadline) {
      uint64_t now = er_now_mono_ms();
      if (now >= deadline)
        return er__client_fail(c, ER_ETIMEDOUT, "result: still not finished after %lld ms",
                               (long long)timeout_ms);
      if (deadline - now < (uint64_t)wait_ms) wait_ms = (int)(deadline - now);
    }
    er_store_wait_change(s, wait_ms);
  }
}

int er_result(er_client_t *c, const char *id, const char *key, int64_t timeout_ms,
              json_t **result, json_t **error) {
  if (result) *result = NULL;
  if (error) *error = NULL;
  if (!id && !key) return er__client_fail(c, ER_EINVAL, "result: give an id or a key");
  if (timeout_ms == 0) {
    er_task_rec_t *r;
    int rc = er__client_get(c, id, key, &r);
    if (rc == ER_ENOENT) return er__client_fail(c, rc, "no task %s", id ? id : key);
    if (rc < 0) return rc;
    rc = outcome(c, r, result, error);
    er_task_rec_free(r);
    return rc;
  }
  er_store_t *s;
  int rc = er__client_take_store(c, &s);
  if (rc < 0) return rc;
  rc = wait_result(c, s, id, key, timeout_ms, result, error);
  er__client_put_store(c, s);
  return rc;
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
