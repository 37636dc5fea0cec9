/* The running task's context (er_task_t), and what its outcome means for the
 * store: the retry policy, with exponential backoff and jitter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/json_walk.h"
#include "queue/queue_internal.h"
#include "queue/result_check.h"

#define PROGRESS_EVERY_MS 200

/* ---- settings ---- */

/* The record says what the sender asked: -1 the task's default, 0 none, n.
 * The task's default (er_task_def_t) counts 0 as "unset", hence its own
 * ER_RETRIES_NONE. */
int er__eff_max_retries(const er_task_rec_t *r, const er_task_def_t *d) {
  if (r->max_retries >= 0) return r->max_retries;
  int m = d ? d->max_retries : 0;
  if (m == ER_RETRIES_NONE) return 0;
  return m > 0 ? m : 3;
}

const char *er__kill_text(er__kill_t k) {
  switch (k) {
    case ER__KILL_HARD_LIMIT: return "hard time limit exceeded";
    case ER__KILL_REVOKE: return "revoked";
    case ER__KILL_SHUTDOWN: return "the worker stopped";
    default: return NULL;
  }
}

int64_t er__eff_soft_ms(const er_task_rec_t *r, const er_task_def_t *d) {
  return r->soft_limit_ms > 0 ? r->soft_limit_ms : (d ? d->soft_limit_ms : 0);
}

int64_t er__eff_hard_ms(const er_task_rec_t *r, const er_task_def_t *d) {
  return r->hard_limit_ms > 0 ? r->hard_limit_ms : (d ? d->hard_limit_ms : 0);
}

/* ---- accessors ---- */

const char *er_task_id(const er_task_t *t) { return t->rec->id; }
const char *er_task_name(const er_task_t *t) { return t->rec->task; }
int er_task_attempt(const er_task_t *t) { return t->rec->attempt; }
int er_task_retries(const er_task_t *t) { return t->rec->retries; }
json_t *er_task_args(const er_task_t *t) { return t->rec->args; }
json_t *er_task_kwargs(const er_task_t *t) { return t->rec->kwargs; }
json_t *er_task_context(const er_task_t *t) { return t->rec->context; }
er_loop_t *er_task_loop(const er_task_t *t) { return t->loop; }
er_client_t *er_task_client(const er_task_t *t) { return t->client; }
const char *er__task_store_url(const er_task_t *t) {
  return t->store_url ? t->store_url : t->client ? er_client_url(t->client) : NULL;
}
const char *er__task_base_url(const er_task_t *t) { return t->base_url; }
const uint8_t *er__task_secret(const er_task_t *t) { return t->secret; }

int er_task_progress(er_task_t *t, double fraction, const char *msg) {
  if (fraction < 0) fraction = 0;
  if (fraction > 1) fraction = 1;
  uint64_t now = er_now_mono_ms();
  /* Rate-limited, but the first and the final report always go out. */
  bool final = fraction >= 1.0;
  if (!final && t->last_progress_ms && now - t->last_progress_ms < PROGRESS_EVERY_MS) return 0;
  t->last_progress_ms = now;
  if (t->progress) t->progress(t->progress_ud, t->rec->id, t->rec->attempt, fraction, msg);
  return 0;
}

int er_task_check(er_task_t *t) {
  /* set by the worker's loop thread (or a signal) while this one runs */
  if (t->revoked && __atomic_load_n(t->revoked, __ATOMIC_RELAXED)) return ER_EREVOKED;
  if (t->soft_deadline_ms && er_now_mono_ms() >= t->soft_deadline_ms) return ER_ETIMEDOUT;
  return 0;
}

static void set_message(er_task_t *t, const char *fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
  er_free(t->out.message);
  t->out.message = er_strdup(buf);
}

int er_task_fail(er_task_t *t, int code, const char *fmt, ...) {
  if (code >= 0) code = ER_EFAIL;
  va_list ap;
  va_start(ap, fmt);
  set_message(t, fmt, ap);
  va_end(ap);
  t->out.rc = code;
  return code;
}

int er_task_retry(er_task_t *t, int64_t countdown_ms, int code, const char *fmt, ...) {
  if (code >= 0) code = ER_EFAIL;
  va_list ap;
  va_start(ap, fmt);
  set_message(t, fmt, ap);
  va_end(ap);
  t->out.rc = code;
  t->out.retry = true;
  t->out.countdown_ms = countdown_ms;
  return ER_ERETRY;
}

/* ---- running ---- */

/* Run where the job ends, which for a tasklet task may be its 64 KiB stack
 * (a lease lost, a worker stopping): the result is freed without
 * recursion. */
void er__outcome_clear(er__outcome_t *o) {
  er__json_free_deep(o->result);
  er_free(o->message);
  memset(o, 0, sizeof *o);
}

void er__task_init(er_task_t *t, const er_task_rec_t *rec, const er_task_def_t *def) {
  memset(t, 0, sizeof *t);
  t->rec = rec;
  t->def = def;
  int64_t soft = er__eff_soft_ms(rec, def);
  if (soft > 0) t->soft_deadline_ms = er_now_mono_ms() + (uint64_t)soft;
}

void er__task_finish(er_task_t *t, int rc, json_t *result) {
  if (rc == ER_ERETRY) {
    /* er_task_retry set the code and message; a plain ER_ERETRY is a bare ask. */
    if (!t->out.retry) {
      t->out.retry = true;
      t->out.countdown_ms = -1;
      t->out.rc = ER_ERETRY;
    }
    er__json_free_deep(result); /* on a tasklet's stack, maybe nested 2,046 deep */
    return;
  }
  if (rc == 0) {
    /* Judged here, where the task ran, before anything encodes it: every
     * pool and the tasklet tasks end through this one place. */
    char why[200];
    int bad = er__result_check(result, t->max_result, why, sizeof why);
    if (bad < 0) {
      er__json_free_deep(result);
      er_free(t->out.message);
      t->out.message = er_strdup(why);
      t->out.rc = bad;
      return;
    }
    t->out.rc = 0;
    t->out.result = result ? result : json_null();
    return;
  }
  er__json_free_deep(result);
  if (rc > 0) rc = ER_EFAIL;
  if (t->out.rc != rc || !t->out.message) {
    er_free(t->out.message);
    t->out.message = er_strdup(er_strerror(rc));
  }
  t->out.rc = rc;
}

void er__task_run(const er_task_rec_t *rec, const er_task_def_t *def, er_task_t *t) {
  if (!def) {
    t->out.rc = ER_EUNKNOWN_TASK;
    char buf[512];
    snprintf(buf, sizeof buf, "unknown task '%s'", rec->task ? rec->task : "");
    t->out.message = er_strdup(buf);
    return;
  }
  json_t *result = NULL;
  int rc = def->fn(t, &result);
  er__task_finish(t, rc, result);
}

/* ---- policy ---- */

json_t *er__error_json(int code, const char *message, int signal) {
  json_t *e = json_pack("{s:i, s:s, s:s}", "code", code, "name", er_err_name(code), "message",
                        message ? message : er_strerror(code));
  if (e && signal) json_object_set_new(e, "signal", json_integer(signal));
  return e;
}

double er__jitter(void) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = (uint32_t)rand();
  return (double)r / 4294967296.0;
}

static int64_t backoff_ms(const er_task_def_t *d, int retries) {
  int64_t base = d && d->backoff_ms > 0 ? d->backoff_ms : 1000;
  int64_t cap = d && d->backoff_max_ms > 0 ? d->backoff_max_ms : 600000;
  int64_t delay = base;
  for (int i = 0; i < retries && delay < cap; i++) delay *= 2;
  if (delay > cap) delay = cap;
  /* "Equal jitter": half fixed, half random, so retries of many tasks that
   * failed together spread out but none comes back at once. */
  return delay / 2 + (int64_t)(er__jitter() * (double)(delay / 2));
}

void er__decide(const er_task_rec_t *r, const er_task_def_t *d, const er__outcome_t *o,
                bool revoked, int64_t now_ms, er_completion_t *c) {
  memset(c, 0, sizeof *c);
  c->id = r->id;
  c->attempt = r->attempt;
  c->now_ms = now_ms;
  if (o->rc == 0) {
    c->state = ER_STATE_SUCCESS;
    c->result = o->result;
    return;
  }
  if (revoked && (o->rc == ER_EREVOKED || o->killed == ER__KILL_REVOKE || o->signal)) {
    c->state = ER_STATE_REVOKED;
    c->error = er__error_json(ER_EREVOKED, "revoked while running", o->signal);
    return;
  }
  bool wants_retry = o->retry || (d && d->retry_on_error && o->rc != ER_EUNKNOWN_TASK);
  if (wants_retry && r->retries < er__eff_max_retries(r, d)) {
    c->state = ER_STATE_RETRY;
    int64_t delay = o->retry && o->countdown_ms >= 0 ? o->countdown_ms : backoff_ms(d, r->retries);
    c->retry_eta_ms = now_ms + delay;
    c->error = er__error_json(o->rc, o->message, o->signal);
    return;
  }
  c->state = ER_STATE_FAILURE;
  c->error = er__error_json(o->rc, o->message, o->signal);
}

/* ---- the prefork child's job line ---- */

typedef struct line {
  char *p;
  size_t n, cap;
} line_t;

static int append(const char *s, size_t n, void *ud) {
  line_t *l = ud;
  if (l->n + n + 1 > l->cap) {
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->n + n + 1) cap *= 2;
    char *p = er_realloc(l->p, cap);
    if (!p) return -1;
    l->p = p;
    l->cap = cap;
  }
  memcpy(l->p + l->n, s, n);
  l->n += n;
  return 0;
}

/* A container as itself, anything else (a record a foreign writer made) as
 * the empty one the task would get. */
static const json_t *container_or(const json_t *v, json_t *empty) {
  return json_is_array(v) || json_is_object(v) ? v : empty;
}

/* Four JSON texts one after the other, each read on its own: a header, then
 * args, kwargs and context. Wrapped in one message, args that the sender
 * let through at ER_SEND_MAX_DEPTH levels, jansson's limit, would be one
 * level past it, and the child could not read its job. */
char *er__job_encode(const er_task_rec_t *r, size_t *len) {
  json_t *head = json_pack("{s:s, s:s, s:i, s:i, s:I, s:I}", "id", r->id, "task",
                           r->task ? r->task : "", "attempt", r->attempt, "retries", r->retries,
                           "soft", (json_int_t)r->soft_limit_ms, "max_retries",
                           (json_int_t)r->max_retries);
  json_t *arr = json_array(), *obj = json_object();
  line_t l = {0};
  bool ok = head && arr && obj;
  const json_t *docs[] = {head, container_or(r->args, arr), container_or(r->kwargs, obj),
                          json_is_object(r->context) ? r->context : obj};
  for (size_t i = 0; ok && i < 4; i++) ok = json_dump_callback(docs[i], append, &l, JSON_COMPACT) == 0;
  ok = ok && append("\n", 1, &l) == 0;
  json_decref(head);
  json_decref(arr);
  json_decref(obj);
  if (!ok) {
    er_free(l.p);
    return NULL;
  }
  *len = l.n;
  return l.p;
}

/* The next JSON text of a job line, moving *at past it. */
static json_t *next_text(const char *line, size_t len, size_t *at, json_error_t *e) {
  json_t *v = json_loadb(line + *at, len - *at, JSON_ALLOW_NUL | JSON_DISABLE_EOF_CHECK, e);
  if (v) *at += (size_t)e->position;
  return v;
}

int er__job_decode(const char *line, size_t len, er_task_rec_t **out, json_error_t *e) {
  *out = NULL;
  json_t *docs[4] = {NULL};
  size_t at = 0;
  int rc = 0;
  for (size_t i = 0; i < 4 && !rc; i++)
    if (!(docs[i] = next_text(line, len, &at, e))) rc = ER_EPARSE;
  er_task_rec_t *r = rc ? NULL : er_task_rec_new();
  if (!rc && !r) rc = ER_ENOMEM;
  if (r) {
    json_t *j = docs[0];
    const char *id = json_string_value(json_object_get(j, "id"));
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    r->task = er_strdup(json_string_value(json_object_get(j, "task")));
    r->attempt = (int)json_integer_value(json_object_get(j, "attempt"));
    r->retries = (int)json_integer_value(json_object_get(j, "retries"));
    r->soft_limit_ms = json_integer_value(json_object_get(j, "soft"));
    r->max_retries = (int)json_integer_value(json_object_get(j, "max_retries"));
    r->args = json_incref(docs[1]);
    r->kwargs = json_incref(docs[2]);
    r->context = json_incref(docs[3]);
    *out = r;
  }
  for (size_t i = 0; i < 4; i++) json_decref(docs[i]);
  return rc;
}
