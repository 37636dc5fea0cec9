/* The store's public face: URL resolution and the backend registry, common
 * options, task records, and er_store_* calls that check their arguments and
 * forward to the backend's vtable. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/store_internal.h"

/* ---- Registry ---------------------------------------------------------------
 * Backends by URL scheme. To add one, export an er__store_backend_t from its
 * files and list it here (the redis slot is ready for src/store/redis*.c). */
static const er__store_backend_t *const g_backends[] = {
    &er__sqlite_backend,
#ifdef ER_HAVE_REDIS
    &er__redis_backend,
#endif
};
#define N_BACKENDS (sizeof g_backends / sizeof g_backends[0])

static const char *const g_common_options[] = {"tombstone_ms", "max_payload",
                                                "pipe_retention_ms", "protocol", NULL};

/* ---- Errors -------------------------------------------------------------- */

void er__store_set_error(er_store_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
  va_end(ap);
}

void er__errmsg(char *errmsg, size_t size, const char *fmt, ...) {
  if (!errmsg || !size) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, size, fmt, ap);
  va_end(ap);
}

json_t *er__store_error_json(int code, const char *message) {
  return json_pack("{s:i, s:s, s:s}", "code", code, "name", er_err_name(code), "message",
                   message);
}

size_t er__json_size(const json_t *v) {
  return v ? json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
}

/* ---- URLs ------------------------------------------------------------------ */

int er_url_redact(const char *url, char *out, size_t size) {
  if (!url || !out || !size) return ER_EINVAL;
  /* The userinfo ends at the LAST '@' before the query: a password with an
   * unescaped '@' or '/' is still hidden whole, even if the URL is bad. */
  const char *auth = strstr(url, "//");
  const char *at = NULL;
  if (auth) {
    auth += 2;
    for (const char *p = auth; *p && *p != '?'; p++)
      if (*p == '@') at = p;
  }
  int n;
  if (!at) {
    n = snprintf(out, size, "%s", url);
  } else {
    /* "user:pw@" keeps the user; "pw@" (no colon) may be a bare password. */
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    const char *keep_end = colon ? colon + 1 : auth;
    n = snprintf(out, size, "%.*s***%s", (int)(keep_end - url), url, at);
  }
  return n >= 0 && (size_t)n < size ? 0 : ER_ETOOBIG;
}

const char *er_store_default_url(void) {
  const char *e = getenv("ERRAND_STORE");
  return e && *e ? e : "sqlite:errand.db";
}

const char *er__store_url_opt(const char *url, const char *name, size_t *len) {
  const char *q = strchr(url, '?');
  size_t nl = strlen(name);
  while (q) {
    q++;
    size_t seg = strcspn(q, "&");
    if (seg > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
      *len = seg - nl - 1;
      return q + nl + 1;
    }
    if (seg == nl && strncmp(q, name, nl) == 0) { /* "?name" alone: empty value */
      *len = 0;
      return q + nl;
    }
    q = q[seg] ? q + seg : NULL;
  }
  return NULL;
}

int er__store_url_int(const char *url, const char *name, int64_t def, int64_t min, int64_t max,
                      int64_t *out, char *errmsg, size_t size) {
  size_t len;
  const char *v = er__store_url_opt(url, name, &len);
  *out = def;
  if (!v) return 0;
  char buf[32];
  char *end = NULL;
  long long x = 0;
  if (len > 0 && len < sizeof buf) {
    memcpy(buf, v, len);
    buf[len] = 0;
    x = strtoll(buf, &end, 10);
  }
  if (!end || *end || x < min || x > max) {
    er__errmsg(errmsg, size, "store URL option %s=%.*s: want an integer from %lld to %lld", name,
               (int)(len > 40 ? 40 : len), v, (long long)min, (long long)max);
    return ER_EINVAL;
  }
  *out = x;
  return 0;
}

static bool in_list(const char *const *list, const char *s, size_t n) {
  for (; list && *list; list++)
    if (strlen(*list) == n && strncmp(*list, s, n) == 0) return true;
  return false;
}

/* Every query option must be a common one or the backend's own. */
static int check_options(const char *url, const er__store_backend_t *b, char *errmsg,
                         size_t size) {
  const char *q = strchr(url, '?');
  while (q) {
    q++;
    size_t seg = strcspn(q, "&");
    size_t nl = strcspn(q, "=&");
    if (seg && !in_list(g_common_options, q, nl) && !in_list(b->options, q, nl)) {
      char shown[512];
      er_url_redact(url, shown, sizeof shown);
      er__errmsg(errmsg, size, "unknown option '%.*s' in store URL '%s'", (int)nl, q, shown);
      return ER_EINVAL;
    }
    q = q[seg] ? q + seg : NULL;
  }
  return 0;
}

static const er__store_backend_t *find_backend(const char *url) {
  size_t n = strcspn(url, ":");
  if (!url[n]) return NULL;
  for (size_t i = 0; i < N_BACKENDS; i++)
    if (strlen(g_backends[i]->ops->scheme) == n &&
        strncasecmp(g_backends[i]->ops->scheme, url, n) == 0)
      return g_backends[i];
  return NULL;
}

/* ---- Opening ------------------------------------------------------------- */

int er_store_open(const char *url, er_store_t **out, char *errmsg, size_t errmsg_size) {
  if (!out) return ER_EINVAL;
  *out = NULL;
  er__errmsg(errmsg, errmsg_size, "%s", "");
  if (!url) url = er_store_default_url();
  const er__store_backend_t *b = find_backend(url);
  if (b && b->ops->version != ER_STORE_OPS_VERSION) {
    /* A backend built against another vtable layout would be called through
     * the wrong slots. */
    er__errmsg(errmsg, errmsg_size, "store backend '%s' has vtable version %d, not %d",
               b->ops->scheme, b->ops->version, ER_STORE_OPS_VERSION);
    return ER_EINTERNAL;
  }
  if (!b) {
    char shown[512];
    er_url_redact(url, shown, sizeof shown);
    if (strncasecmp(url, "rediss:", 7) == 0)
      er__errmsg(errmsg, errmsg_size,
                 "store URL '%s': TLS (rediss://) is not supported; use redis://, through a "
                 "TLS tunnel if the network needs one",
                 shown);
    else if (strncasecmp(url, "redis:", 6) == 0)
      er__errmsg(errmsg, errmsg_size,
                 "store URL '%s': this errand was built without the redis store (use sqlite:PATH)",
                 shown);
    else
      er__errmsg(errmsg, errmsg_size,
                 "unknown store URL '%s' (use sqlite:PATH or redis://HOST:PORT)", shown);
    return ER_EINVAL;
  }
  int64_t tomb, maxp, keep;
  int rc = check_options(url, b, errmsg, errmsg_size);
  if (!rc)
    rc = er__store_url_int(url, "tombstone_ms", ER__TOMBSTONE_DEFAULT_MS, 0, INT64_MAX / 4, &tomb,
                           errmsg, errmsg_size);
  if (!rc)
    rc = er__store_url_int(url, "max_payload", (int64_t)ER__MAX_PAYLOAD_DEFAULT, 1, INT32_MAX,
                           &maxp, errmsg, errmsg_size);
  if (!rc) /* read by the pipelines' cleanup; checked here, so a typo fails the open */
    rc = er__store_url_int(url, "pipe_retention_ms", ER__PIPE_RETENTION_DEFAULT_MS, 0,
                           INT64_MAX / 4, &keep, errmsg, errmsg_size);
  if (rc) return rc;
  char *copy = er_strdup(url);
  if (!copy) return ER_ENOMEM;
  er_store_t *s = NULL;
  rc = b->ops->open(url, &s, errmsg, errmsg_size);
  if (rc) {
    er_free(copy);
    return rc;
  }
  s->ops = b->ops;
  s->url = copy;
  s->tombstone_ms = tomb;
  s->max_payload = (size_t)maxp;
  s->last_error[0] = 0;
  /* ?protocol=celery: sends and reads speak Celery (src/celery/client.c) */
#ifdef ER_HAVE_REDIS
  if ((rc = er__celery_client_wrap(url, s, &s, errmsg, errmsg_size)) < 0) return rc;
#endif
  *out = s;
  return 0;
}

void er_store_close(er_store_t *s) {
  if (!s) return;
  char *url = s->url;
  s->ops->close(s);
  er_free(url);
}

const char *er_store_last_error(const er_store_t *s) { return s ? s->last_error : ""; }
const char *er_store_url(const er_store_t *s) { return s ? s->url : NULL; }
size_t er_store_max_payload(const er_store_t *s) { return s ? s->max_payload : 0; }

/* ---- Records and states -------------------------------------------------- */

static const char *const g_state_names[] = {"PENDING", "STARTED", "RETRY",
                                            "SUCCESS", "FAILURE", "REVOKED"};

const char *er_state_name(er_task_state_t s) {
  return s >= ER_STATE_PENDING && s <= ER_STATE_REVOKED ? g_state_names[s] : "UNKNOWN";
}

er_task_state_t er_state_from_name(const char *s) {
  for (int i = 0; s && i <= ER_STATE_REVOKED; i++)
    if (strcasecmp(s, g_state_names[i]) == 0) return (er_task_state_t)i;
  return ER_STATE_UNKNOWN;
}

er_task_rec_t *er_task_rec_new(void) {
  er_task_rec_t *r = er_calloc(1, sizeof *r);
  if (!r) return NULL;
  r->state = ER_STATE_PENDING;
  r->max_retries = -1;
  r->progress = -1;
  return r;
}

void er_task_rec_free(er_task_rec_t *r) {
  if (!r) return;
  er_free(r->task);
  er_free(r->queue);
  er_free(r->name);
  er_free(r->key);
  er_free(r->progress_msg);
  er_free(r->worker);
  json_decref(r->args);
  json_decref(r->kwargs);
  json_decref(r->context);
  json_decref(r->result);
  json_decref(r->error);
  er_free(r);
}

void er_task_rec_free_array(er_task_rec_t **recs, size_t n) {
  if (!recs) return;
  for (size_t i = 0; i < n; i++) er_task_rec_free(recs[i]);
  er_free(recs);
}

/* ---- Forwarding ----------------------------------------------------------- */

#define BEGIN_CALL(s)                    \
  do {                                   \
    if (!(s)) return ER_EINVAL;          \
    (s)->last_error[0] = 0;              \
  } while (0)

static int bad(er_store_t *s, const char *what) {
  er__store_set_error(s, "%s", what);
  return ER_EINVAL;
}

int er__store_check_record(er_store_t *s, const er_task_rec_t *r) {
  if (!r) return bad(s, "enqueue: a NULL record");
  if (!r->id[0]) return bad(s, "enqueue: a record without an id");
  if (!r->task || !*r->task) return bad(s, "enqueue: a record without a task name");
  if (!r->queue || !*r->queue) return bad(s, "enqueue: a record without a queue");
  if (!json_is_array(r->args)) return bad(s, "enqueue: args must be a JSON array");
  if (!json_is_object(r->kwargs)) return bad(s, "enqueue: kwargs must be a JSON object");
  if (r->context && !json_is_object(r->context))
    return bad(s, "enqueue: context must be a JSON object");
  /* The names are stored with the task too: they count, so no field is a
   * way around the limit. */
  size_t size = er__json_size(r->args) + er__json_size(r->kwargs) + er__json_size(r->context) +
                strlen(r->task) + strlen(r->queue) + (r->name ? strlen(r->name) : 0) +
                (r->key ? strlen(r->key) : 0);
  if (size > s->max_payload) {
    er__store_set_error(s,
                        "task %s (%s): payload of %zu bytes (args + kwargs + context as compact "
                        "JSON, task, queue, name and key) is over the store's max_payload of %zu",
                        r->id, r->task, size, s->max_payload);
    return ER_ETOOBIG;
  }
  return 0;
}

int er_store_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                     bool *existing) {
  BEGIN_CALL(s);
  if (n && !recs) return bad(s, "enqueue: no records");
  for (size_t i = 0; i < n; i++) {
    int rc = er__store_check_record(s, recs[i]);
    if (rc) return rc;
    if (existing) existing[i] = false;
  }
  if (!n) return 0;
  return s->ops->enqueue(s, recs, n, flags, existing);
}

int er_store_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
                     size_t *n) {
  BEGIN_CALL(s);
  if (!out || !n) return bad(s, "reserve: out and n are required");
  *out = NULL;
  *n = 0;
  if (!req || (req->nqueues && !req->queues)) return bad(s, "reserve: no request or queues");
  if (req->lease_ms <= 0) return bad(s, "reserve: lease_ms must be positive");
  for (size_t i = 0; i < req->nqueues; i++)
    if (!req->queues[i]) return bad(s, "reserve: a NULL queue name");
  if (!req->max || !req->nqueues) return 0;
  return s->ops->reserve(s, req, out, n);
}

int er_store_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                   int64_t lease_until_ms, bool *revoked, bool *fenced) {
  BEGIN_CALL(s);
  if (n && (!ids || !attempts)) return bad(s, "renew: ids and attempts are required");
  for (size_t i = 0; i < n; i++)
    if (!ids[i]) return bad(s, "renew: a NULL id");
  if (!n) return 0;
  return s->ops->renew(s, ids, attempts, n, lease_until_ms, revoked, fenced);
}

int er__store_check_completion(er_store_t *s, const er_completion_t *c) {
  if (!c->id) return bad(s, "complete: a completion without an id");
  if (c->state != ER_STATE_SUCCESS && c->state != ER_STATE_FAILURE &&
      c->state != ER_STATE_RETRY && c->state != ER_STATE_REVOKED && c->state != ER_STATE_PENDING)
    return bad(s, "complete: state must be SUCCESS, FAILURE, RETRY, REVOKED or PENDING");
  return 0;
}

int er_store_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced) {
  BEGIN_CALL(s);
  if (n && !cs) return bad(s, "complete: no completions");
  for (size_t i = 0; i < n; i++) {
    int rc = er__store_check_completion(s, &cs[i]);
    if (rc) return rc;
  }
  if (!n) return 0;
  return s->ops->complete(s, cs, n, fenced);
}

int er_store_progress(er_store_t *s, const char *id, int attempt, double progress,
                      const char *msg) {
  BEGIN_CALL(s);
  if (!id) return bad(s, "progress: no id");
  return s->ops->progress(s, id, attempt, progress, msg);
}

int er_store_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  BEGIN_CALL(s);
  if (!out) return bad(s, "get: out is required");
  *out = NULL;
  if (!id && !key) return bad(s, "get: an id or a key is required");
  return s->ops->get(s, id, key, out);
}

int er_store_revoke(er_store_t *s, const char *id, er_task_state_t *state) {
  BEGIN_CALL(s);
  if (state) *state = ER_STATE_UNKNOWN;
  if (!id) return bad(s, "revoke: no id");
  return s->ops->revoke(s, id, state);
}

int er_store_purge(er_store_t *s, const char *queue, size_t *count) {
  BEGIN_CALL(s);
  if (count) *count = 0;
  return s->ops->purge(s, queue, count);
}

int er_store_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts) {
  BEGIN_CALL(s);
  if (counts) memset(counts, 0, sizeof *counts);
  return s->ops->maintain(s, now_ms, counts);
}

int er_store_heartbeat(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms) {
  BEGIN_CALL(s);
  if (!json_is_object(info) || !json_is_string(json_object_get(info, "id")))
    return bad(s, "heartbeat: info must be an object with a string \"id\"");
  if (ttl_ms <= 0) return bad(s, "heartbeat: ttl_ms must be positive");
  return s->ops->heartbeat(s, info, now_ms, ttl_ms);
}

int er_store_worker_gone(er_store_t *s, const char *worker_id) {
  BEGIN_CALL(s);
  if (!worker_id) return bad(s, "worker_gone: no worker id");
  return s->ops->worker_gone(s, worker_id);
}

int er_store_workers(er_store_t *s, int64_t now_ms, json_t **out) {
  BEGIN_CALL(s);
  if (!out) return bad(s, "workers: out is required");
  *out = NULL;
  return s->ops->workers(s, now_ms, out);
}

int er_store_stats(er_store_t *s, json_t **out) {
  BEGIN_CALL(s);
  if (!out) return bad(s, "stats: out is required");
  *out = NULL;
  return s->ops->stats(s, out);
}

int er_store_wakeup_fd(er_store_t *s) { return s && s->ops->wakeup_fd ? s->ops->wakeup_fd(s) : -1; }

void er_store_drain_wakeups(er_store_t *s) {
  if (s && s->ops->drain_wakeups) s->ops->drain_wakeups(s);
}

int er_store_wait_change(er_store_t *s, int timeout_ms) {
  BEGIN_CALL(s);
  return s->ops->wait_change(s, timeout_ms);
}

/* ---- Stats ---------------------------------------------------------------- */

static const er_task_state_t g_states[] = {ER_STATE_PENDING, ER_STATE_STARTED, ER_STATE_RETRY,
                                           ER_STATE_SUCCESS, ER_STATE_FAILURE, ER_STATE_REVOKED};

json_t *er__stats_zero_counts(void) {
  json_t *o = json_object();
  for (size_t i = 0; o && i < sizeof g_states / sizeof g_states[0]; i++)
    json_object_set_new(o, er_state_name(g_states[i]), json_integer(0));
  return o;
}

void er__stats_add(json_t *counts, const char *state, json_int_t n) {
  json_t *v = json_object_get(counts, state);
  if (v) json_integer_set(v, json_integer_value(v) + n);
}
