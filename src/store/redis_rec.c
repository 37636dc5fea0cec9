/* Task records to script arguments and back: an argument vector that owns
 * its strings, and a record from a task hash (a flat HGETALL reply). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

/* ---- arguments ------------------------------------------------------------ */

static void push(er_rd_args_t *a, char *s, size_t len) {
  if (!s) {
    a->oom = true;
    return;
  }
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 32;
    char **v = er_realloc(a->v, cap * sizeof *v);
    if (v) a->v = v;
    size_t *l = er_realloc(a->len, cap * sizeof *l);
    if (l) a->len = l;
    if (!v || !l) {
      er_free(s);
      a->oom = true;
      return;
    }
    a->cap = cap;
  }
  a->v[a->n] = s;
  a->len[a->n++] = len;
}

void er__rd_args_str(er_rd_args_t *a, const char *s) {
  char *d = er_strdup(s);
  push(a, d, d ? strlen(d) : 0);
}

void er__rd_args_fmt(er_rd_args_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[64];
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf) {
    a->oom = true; /* only used for short numbers */
    return;
  }
  er__rd_args_str(a, buf);
}

void er__rd_args_i64(er_rd_args_t *a, int64_t x) { er__rd_args_fmt(a, "%lld", (long long)x); }

void er__rd_args_opt(er_rd_args_t *a, const char *s) {
  if (!s) {
    er__rd_args_str(a, "-");
    return;
  }
  size_t n = strlen(s);
  char *d = er_malloc(n + 2);
  if (d) {
    d[0] = '+';
    memcpy(d + 1, s, n + 1);
  }
  push(a, d, n + 1);
}

void er__rd_args_json(er_rd_args_t *a, const json_t *v, bool opt) {
  if (!v) {
    er__rd_args_str(a, opt ? "-" : "null");
    return;
  }
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  /* jansson answers 0 when it cannot encode (out of memory): sending "" would
   * store a record nobody can read back, so the call fails instead. */
  size_t n = json_dumpb(v, NULL, 0, flags);
  size_t off = opt ? 1 : 0;
  char *d = n ? er_malloc(n + off + 1) : NULL;
  if (d) {
    if (opt) d[0] = '+';
    if (json_dumpb(v, d + off, n, flags) != n) {
      er_free(d);
      d = NULL;
    } else {
      d[n + off] = 0;
    }
  }
  push(a, d, n + off);
}

void er__rd_args_free(er_rd_args_t *a) {
  for (size_t i = 0; i < a->n; i++) er_free(a->v[i]);
  er_free(a->v);
  er_free(a->len);
  memset(a, 0, sizeof *a);
}

/* The record encoding, in the order of tasks.lua's rec_read: ER_RD_REC_FIELDS
 * arguments. */
void er__rd_args_rec(er_rd_args_t *a, const er_task_rec_t *r) {
  er__rd_args_str(a, r->id);
  er__rd_args_str(a, r->task);
  er__rd_args_str(a, r->queue);
  er__rd_args_i64(a, r->priority);
  er__rd_args_json(a, r->args, false);
  er__rd_args_json(a, r->kwargs, false);
  er__rd_args_json(a, r->context, true);
  er__rd_args_opt(a, r->name);
  er__rd_args_opt(a, r->key);
  er__rd_args_i64(a, r->created_ms);
  er__rd_args_i64(a, r->eta_ms);
  er__rd_args_i64(a, r->expires_ms);
  er__rd_args_i64(a, r->max_retries);
  er__rd_args_i64(a, r->soft_limit_ms);
  er__rd_args_i64(a, r->hard_limit_ms);
  er__rd_args_i64(a, r->result_ttl_ms);
  er__rd_args_i64(a, r->ignore_result ? 1 : 0);
}

/* An outcome, in the order of tasks.lua's done_read (ER_RD_DONE_FIELDS). A revoke without an
 * error gets the standard "revoked" one; giving a task back keeps none. */
void er__rd_args_done(er_rd_args_t *a, const er_completion_t *c) {
  json_t *err = c->error ? json_incref(c->error)
                : c->state == ER_STATE_REVOKED ? er__store_error_json(ER_EREVOKED, "revoked")
                                               : NULL;
  er__rd_args_str(a, c->id);
  er__rd_args_i64(a, c->attempt);
  er__rd_args_i64(a, c->state);
  er__rd_args_json(a, c->state == ER_STATE_SUCCESS ? c->result : NULL, true);
  er__rd_args_json(a, c->state == ER_STATE_PENDING ? NULL : err, true);
  er__rd_args_i64(a, c->retry_eta_ms);
  er__rd_args_i64(a, c->now_ms);
  json_decref(err);
}

int er__rd_run(er_rd_t *rd, er_rd_script_t script, bool idempotent, er_rd_args_t *a,
               redisReply **out) {
  *out = NULL;
  if (a->oom) return ER_ENOMEM;
  return er__rd_script(rd, script, idempotent, (int)a->n, (const char *const *)a->v, a->len,
                       out);
}

/* ---- records ------------------------------------------------------------------ */

static char *dup_n(const char *s, size_t n, bool *oom) {
  char *d = er_malloc(n + 1);
  if (!d) {
    *oom = true;
    return NULL;
  }
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

/* A number field: kept at 0 and noted when it is not a number. */
static int64_t num(const char *s, size_t n, const char *field, er_rec_why_t *w) {
  int64_t v = 0;
  return er__rec_int(s, n, field, &v, w) ? v : 0;
}

/* A reply that names a field twice (no real hash does) must not leak the
 * first value: the last one wins. */
static void put_str(char **dst, char *s) {
  er_free(*dst);
  *dst = s;
}

static void put_json(json_t **dst, json_t *v) {
  json_decref(*dst);
  *dst = v;
}

int er__rd_read_rec(er_rd_t *rd, const redisReply *r, er_task_rec_t **out, er_rec_why_t *why) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
    er__store_set_error(&rd->base, "redis: a task record of an unexpected shape");
    return ER_ECORRUPT;
  }
  er_task_rec_t *t = er_task_rec_new();
  if (!t) return ER_ENOMEM;
  bool oom = false;
  er_rec_why_t local = {{0}}, *w = why ? why : &local;
  w->why[0] = 0;
  t->state = ER_STATE_UNKNOWN; /* a record without one is noted */
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *k = r->element[i], *v = r->element[i + 1];
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    const char *f = k->str, *s = v->str;
    size_t n = v->len;
#define IS(name) (strcmp(f, name) == 0)
#define NUM(name) num(s, n, name, w)
    if (IS("id")) snprintf(t->id, sizeof t->id, "%s", s);
    else if (IS("task")) put_str(&t->task, dup_n(s, n, &oom));
    else if (IS("queue")) put_str(&t->queue, dup_n(s, n, &oom));
    else if (IS("priority")) t->priority = (int)NUM("priority");
    else if (IS("state")) t->state = (er_task_state_t)NUM("state");
    else if (IS("args")) put_json(&t->args, er__rec_json(s, n, "args", w));
    else if (IS("kwargs")) put_json(&t->kwargs, er__rec_json(s, n, "kwargs", w));
    else if (IS("context")) put_json(&t->context, er__rec_json(s, n, "context", w));
    else if (IS("name")) put_str(&t->name, dup_n(s, n, &oom));
    else if (IS("key")) put_str(&t->key, dup_n(s, n, &oom));
    else if (IS("created_ms")) t->created_ms = NUM("created_ms");
    else if (IS("eta_ms")) t->eta_ms = NUM("eta_ms");
    else if (IS("expires_ms")) t->expires_ms = NUM("expires_ms");
    else if (IS("started_ms")) t->started_ms = NUM("started_ms");
    else if (IS("finished_ms")) t->finished_ms = NUM("finished_ms");
    else if (IS("attempt")) t->attempt = (int)NUM("attempt");
    else if (IS("retries")) t->retries = (int)NUM("retries");
    else if (IS("max_retries")) t->max_retries = (int)NUM("max_retries");
    else if (IS("soft_limit_ms")) t->soft_limit_ms = NUM("soft_limit_ms");
    else if (IS("hard_limit_ms")) t->hard_limit_ms = NUM("hard_limit_ms");
    else if (IS("result_ttl_ms")) t->result_ttl_ms = NUM("result_ttl_ms");
    else if (IS("ignore_result")) t->ignore_result = NUM("ignore_result") != 0;
    else if (IS("revoke_requested")) t->revoke_requested = NUM("revoke_requested") != 0;
    else if (IS("progress")) t->progress = strtod(s, NULL);
    else if (IS("progress_msg")) put_str(&t->progress_msg, dup_n(s, n, &oom));
    else if (IS("result")) put_json(&t->result, er__rec_json(s, n, "result", w));
    else if (IS("error")) put_json(&t->error, er__rec_json(s, n, "error", w));
    else if (IS("worker")) put_str(&t->worker, dup_n(s, n, &oom));
    else if (IS("lease_until_ms")) t->lease_until_ms = NUM("lease_until_ms");
#undef NUM
#undef IS
  }
  if (!oom) er__rec_check(t, w);
  if (oom || !t->id[0] || (!why && w->why[0])) {
    int rc = oom ? ER_ENOMEM : ER_ECORRUPT;
    if (rc == ER_ECORRUPT)
      er__store_set_error(&rd->base, "task %s: task record cannot be decoded%s%s",
                          t->id[0] ? t->id : "?", w->why[0] ? ": " : "", w->why);
    er_task_rec_free(t);
    return rc;
  }
  *out = t;
  return 0;
}
