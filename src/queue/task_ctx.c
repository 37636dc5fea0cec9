/* The running task's context (er_task_t), and what its outcome means for the
 * store: the retry policy, with exponential backoff and jitter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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

void er__outcome_clear(er__outcome_t *o) {
  json_decref(o->result);
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
    json_decref(result);
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
  json_decref(result);
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

/* ---- the prefork child's job message ---- */

json_t *er__job_to_json(const er_task_rec_t *r) {
  return json_pack("{s:s, s:s, s:i, s:i, s:O, s:O, s:O, s:I, s:I}", "id", r->id, "task", r->task,
                   "attempt", r->attempt, "retries", r->retries, "args", r->args, "kwargs",
                   r->kwargs, "context", r->context ? r->context : json_null(), "soft",
                   (json_int_t)r->soft_limit_ms, "max_retries", (json_int_t)r->max_retries);
}

er_task_rec_t *er__job_from_json(json_t *j) {
  er_task_rec_t *r = er_task_rec_new();
  if (!r) return NULL;
  const char *id = json_string_value(json_object_get(j, "id"));
  snprintf(r->id, sizeof r->id, "%s", id ? id : "");
  r->task = er_strdup(json_string_value(json_object_get(j, "task")));
  r->attempt = (int)json_integer_value(json_object_get(j, "attempt"));
  r->retries = (int)json_integer_value(json_object_get(j, "retries"));
  r->args = json_incref(json_object_get(j, "args"));
  r->kwargs = json_incref(json_object_get(j, "kwargs"));
  json_t *ctx = json_object_get(j, "context");
  r->context = json_is_object(ctx) ? json_incref(ctx) : json_object();
  r->soft_limit_ms = json_integer_value(json_object_get(j, "soft"));
  r->max_retries = (int)json_integer_value(json_object_get(j, "max_retries"));
  return r;
}
