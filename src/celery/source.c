/* A worker's store with Celery messages beside errand's tasks: it wraps the
 * worker's Redis store handle, forwards every call to it, and adds the
 * Celery lists to reserve, renew, complete and maintain. A Celery message
 * becomes a task record (id, name, args, kwargs, retries, eta, expires, time
 * limits from its headers) that the pool runs like any other; the record's
 * id is the Celery id, and the message is remembered by it until its
 * outcome is written, so the pool and the task functions are unchanged. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "celery/celery_internal.h"
#include "errand/task.h"
#include "store/store_internal.h"

static er__cel_t *cel(er_store_t *s) { return (er__cel_t *)s; }

/* The inner store's message, when a forwarded call failed. */
static int fwd(er__cel_t *cs, int rc) {
  if (rc) memcpy(cs->base.last_error, cs->inner->last_error, sizeof cs->base.last_error);
  return rc;
}

/* ---- reserve ---- */

static er_task_rec_t *to_rec(const er__cel_msg_t *m, const char *list,
                             const er_reserve_req_t *req) {
  er_task_rec_t *r = er_task_rec_new();
  if (!r) return NULL;
  snprintf(r->id, sizeof r->id, "%s", m->id);
  r->task = er_strdup(m->task);
  const char *q = m->routing_key ? m->routing_key : list;
  r->queue = er_strdup(q);
  r->priority = m->priority;
  r->state = ER_STATE_STARTED;
  r->args = json_incref(m->args);
  r->kwargs = json_incref(m->kwargs);
  /* marks it Celery-borne (er__celery_borne), and tells the task its canvas */
  r->context = json_pack("{s:{s:s?,s:s?,s:s?}}", "celery", "root_id", m->root_id, "parent_id",
                         m->parent_id, "group", m->group);
  r->created_ms = r->started_ms = req->now_ms;
  r->eta_ms = m->eta_ms;
  r->expires_ms = m->expires_ms;
  r->attempt = 1;
  r->retries = m->retries;
  r->max_retries = -1;
  r->soft_limit_ms = m->soft_ms;
  r->hard_limit_ms = m->hard_ms;
  r->ignore_result = m->ignore_result;
  r->progress = -1;
  r->worker = er_strdup(req->worker ? req->worker : "");
  r->lease_until_ms = req->now_ms + req->lease_ms;
  if (!r->task || !r->queue || !r->worker || !r->context) {
    er_task_rec_free(r);
    return NULL;
  }
  return r;
}

/* A message that will not run: its failure or revocation written, the
 * message acked or set aside, in the batch a. */
static void refuse(er_rd_args_t *a, size_t *nops, const er__cel_msg_t *m, const char *tag,
                   const char *raw, const char *status, int code, const char *why, bool aside) {
  json_t *exc = er__cel_exception(code, why);
  er__cel_ops_result(a, m->id, status, exc, m->group, m->parent_id);
  json_decref(exc);
  er__rd_args_str(a, aside ? "aside" : "ack");
  er__rd_args_str(a, tag);
  if (aside) er__rd_args_str(a, raw);
  *nops += 2;
}

static int cel_take(er__cel_t *cs, const er_reserve_req_t *req, size_t max, er_task_rec_t **recs,
                    size_t *got) {
  er_rd_args_t a = {0};
  er__rd_args_fmt(&a, "%.6f", (double)req->now_ms / 1000.0);
  er__rd_args_i64(&a, (int64_t)max);
  er__rd_args_str(&a, "unacked");
  er__rd_args_str(&a, "unacked_index");
  er__rd_args_str(&a, "errand.celery.delayed");
  er__rd_args_str(&a, "errand.celery.delayed_index");
  er__rd_args_str(&a, "errand.celery.rejected");
  for (size_t i = 0; i < cs->nlists; i++) er__rd_args_str(&a, cs->lists[i]);
  redisReply *r;
  int rc = er__cel_eval(cs, er__rd_lua_celery_reserve, &a, &r);
  er__rd_args_free(&a);
  er__cel_arm(cs);
  if (rc) return rc;
  er_rd_args_t ops = {0};
  size_t nops = 0;
  er__cel_ops_begin(cs, &ops);
  for (size_t i = 0; i + 2 < r->elements; i += 3) {
    const char *list = r->element[i]->str, *tag = r->element[i + 1]->str;
    const char *raw = r->element[i + 2]->str;
    er__cel_msg_t m;
    char why[200];
    if (er__cel_decode(raw, r->element[i + 2]->len, &m, why, sizeof why)) {
      er_log(ER_LOG_WARN, "celery: a message on %s is not protocol v2 (%s): set aside in "
             "errand.celery.rejected", list, why);
      if (*tag) {
        er__rd_args_str(&ops, "aside");
        er__rd_args_str(&ops, tag);
        er__rd_args_str(&ops, raw);
        nops++;
      }
      continue;
    }
    char msg[300];
    if (!er_task_lookup(m.task)) {
      snprintf(msg, sizeof msg, "'%s'", m.task);
      er_log(ER_LOG_ERROR, "celery: received unregistered task of type '%s' (id %s): failed "
             "NotRegistered, the message set aside in errand.celery.rejected", m.task, m.id);
      refuse(&ops, &nops, &m, tag, raw, "FAILURE", ER_EUNKNOWN_TASK, msg, true);
    } else if (m.expires_ms && m.expires_ms <= req->now_ms) {
      refuse(&ops, &nops, &m, tag, raw, "REVOKED", ER_EREVOKED, "expired", false);
    } else if (er__cel_is_revoked(cs, m.id)) {
      refuse(&ops, &nops, &m, tag, raw, "REVOKED", ER_EREVOKED, "revoked", false);
    } else if (m.eta_ms > req->now_ms) {
      /* kept in Redis until due, not in this worker's memory */
      er__rd_args_str(&ops, "defer");
      er__rd_args_str(&ops, tag);
      er__rd_args_str(&ops, list);
      er__rd_args_fmt(&ops, "%.3f", (double)m.eta_ms / 1000.0);
      er__rd_args_str(&ops, raw);
      nops++;
    } else {
      er_task_rec_t *rec = to_rec(&m, list, req);
      json_t *f = rec ? json_pack("{s:s,s:s,s:s}", "tag", tag, "list", list, "raw", raw) : NULL;
      if (f && !json_object_set_new(cs->flight, m.id, f)) {
        recs[(*got)++] = rec;
        /* stats' total, by task name: a Python worker counts what it takes */
        json_int_t taken = json_integer_value(json_object_get(cs->totals, m.task));
        json_object_set_new(cs->totals, m.task, json_integer(taken + 1));
      } else {
        json_decref(f);
        er_task_rec_free(rec); /* out of memory: restored after the visibility timeout */
      }
    }
    er__cel_msg_clear(&m);
  }
  freeReplyObject(r);
  if (nops) {
    rc = er__cel_eval(cs, er__rd_lua_celery_ops, &ops, &r);
    if (!rc) freeReplyObject(r);
    else er_log(ER_LOG_WARN, "celery: %s (the messages come back after the visibility timeout)",
                cs->base.last_error);
  }
  er__rd_args_free(&ops);
  return 0;
}

int er__cel_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
                       size_t *n) {
  er__cel_t *cs = cel(s);
  *out = NULL;
  *n = 0;
  size_t max = req->max ? req->max : 1;
  er_task_rec_t **recs = er_calloc(max, sizeof *recs);
  if (!recs) return ER_ENOMEM;
  size_t got = 0;
  int rc = cel_take(cs, req, max, recs, &got);
  if (!rc && got < max) {
    er_reserve_req_t more = *req;
    more.max = max - got;
    er_task_rec_t **recs2 = NULL;
    size_t n2 = 0;
    rc = fwd(cs, er_store_reserve(cs->inner, &more, &recs2, &n2));
    for (size_t i = 0; i < n2; i++) recs[got++] = recs2[i];
    er_free(recs2);
    if (rc && got) rc = 0; /* the Celery ones are held: hand them out */
  }
  if (rc || !got) {
    er_task_rec_free_array(recs, got);
    return rc;
  }
  *out = recs;
  *n = got;
  return 0;
}

/* ---- renew ---- */

int er__cel_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                     int64_t until, bool *revoked, bool *fenced) {
  er__cel_t *cs = cel(s);
  const char **mine = er_calloc(n + 1, sizeof *mine);
  const char **theirs = er_calloc(n + 1, sizeof *theirs);
  int *tatt = er_calloc(n + 1, sizeof *tatt);
  size_t *ti = er_calloc(n + 1, sizeof *ti), *mi = er_calloc(n + 1, sizeof *mi);
  bool *trev = er_calloc(n + 1, sizeof *trev), *tfen = er_calloc(n + 1, sizeof *tfen);
  int rc = ER_ENOMEM;
  if (!mine || !theirs || !tatt || !ti || !mi || !trev || !tfen) goto out;
  size_t nm = 0, nt = 0;
  for (size_t i = 0; i < n; i++) {
    if (json_object_get(cs->flight, ids[i])) {
      mi[nm] = i;
      mine[nm++] = ids[i];
    } else {
      ti[nt] = i;
      tatt[nt] = attempts[i];
      theirs[nt++] = ids[i];
    }
  }
  rc = 0;
  if (nt) rc = fwd(cs, er_store_renew(cs->inner, theirs, tatt, nt, until, trev, tfen));
  for (size_t k = 0; !rc && k < nt; k++) {
    if (revoked) revoked[ti[k]] = trev[k];
    if (fenced) fenced[ti[k]] = tfen[k];
  }
  if (rc || !nm) goto out;
  er_rd_args_t a = {0};
  er__cel_ops_begin(cs, &a);
  for (size_t k = 0; k < nm; k++) {
    er__rd_args_str(&a, "touch");
    er__rd_args_str(&a, json_string_value(json_object_get(json_object_get(cs->flight, mine[k]),
                                                          "tag")));
  }
  redisReply *r;
  rc = er__cel_eval(cs, er__rd_lua_celery_ops, &a, &r);
  er__rd_args_free(&a);
  if (rc) goto out;
  for (size_t k = 0; k < nm && k < r->elements; k++) {
    /* restored by another consumer (its visibility timeout passed): the
     * message is someone else's now */
    if (fenced) fenced[mi[k]] = r->element[k]->integer == 0;
    if (revoked) revoked[mi[k]] = er__cel_is_revoked(cs, mine[k]);
  }
  freeReplyObject(r);
out:
  er_free(mine);
  er_free(theirs);
  er_free(tatt);
  er_free(ti);
  er_free(mi);
  er_free(trev);
  er_free(tfen);
  return rc;
}

/* ---- complete ---- */

int er__cel_complete(er_store_t *s, const er_completion_t *c, size_t n, bool *fenced) {
  er__cel_t *cs = cel(s);
  er_completion_t *theirs = er_calloc(n + 1, sizeof *theirs);
  size_t *ti = er_calloc(n + 1, sizeof *ti), *mi = er_calloc(n + 1, sizeof *mi);
  size_t *first = er_calloc(n + 1, sizeof *first);
  bool *tfen = er_calloc(n + 1, sizeof *tfen);
  json_t **joins = er_calloc(n + 1, sizeof *joins);
  int rc = ER_ENOMEM;
  er_rd_args_t a = {0};
  if (!theirs || !ti || !mi || !tfen || !first || !joins) goto out;
  size_t nt = 0, nm = 0, nops = 0;
  er__cel_ops_begin(cs, &a);
  rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    json_t *f = json_object_get(cs->flight, c[i].id);
    if (!f) {
      ti[nt] = i;
      theirs[nt++] = c[i];
      continue;
    }
    mi[nm] = i;
    rc = er__cel_outcome_ops(cs, &c[i], f, &a, &nops, &joins[nm]);
    first[nm] = nops - 1; /* a join is the last of its operations */
    nm++;
  }
  if (!rc && nt) rc = fwd(cs, er_store_complete(cs->inner, theirs, nt, tfen));
  for (size_t k = 0; !rc && k < nt; k++)
    if (fenced) fenced[ti[k]] = tfen[k];
  if (rc || !nm) goto out;
  redisReply *r;
  rc = er__cel_eval(cs, er__rd_lua_celery_ops, &a, &r);
  if (rc) goto out;
  for (size_t k = 0; k < nm; k++) {
    if (fenced) fenced[mi[k]] = false; /* its result is written either way */
    if (joins[k]) {
      redisReply *jr = first[k] < r->elements ? r->element[first[k]] : NULL;
      if (jr && jr->type == REDIS_REPLY_ARRAY) er__cel_chord_ready(cs, joins[k], jr);
    }
    json_object_del(cs->flight, c[mi[k]].id);
  }
  freeReplyObject(r);
out:
  er__rd_args_free(&a);
  for (size_t k = 0; joins && k < n; k++) json_decref(joins[k]);
  er_free(joins);
  er_free(theirs);
  er_free(ti);
  er_free(mi);
  er_free(first);
  er_free(tfen);
  return rc;
}

/* ---- progress, housekeeping ---- */

/* Writes the state of message id while it runs (result: taken). */
static int write_state(er__cel_t *cs, const char *id, const char *status, json_t *result) {
  er_rd_args_t a = {0};
  er__cel_ops_begin(cs, &a);
  er__cel_ops_result(&a, id, status, result, NULL, NULL);
  json_decref(result);
  redisReply *r;
  int rc = er__cel_eval(cs, er__rd_lua_celery_ops, &a, &r);
  er__rd_args_free(&a);
  if (!rc) freeReplyObject(r);
  return rc;
}

int er__cel_progress(er_store_t *s, const char *id, int attempt, double p, const char *msg) {
  er__cel_t *cs = cel(s);
  json_t *f = json_object_get(cs->flight, id);
  if (!f) return fwd(cs, er_store_progress(cs->inner, id, attempt, p, msg));
  /* as a task's update_state(state='PROGRESS', meta=...) writes it */
  return write_state(cs, id, "PROGRESS", json_pack("{s:f,s:s?}", "progress", p, "message", msg));
}

int er__cel_started(er_store_t *s, const char *id, const char *worker) {
  er__cel_t *cs = cel(s);
  if (!json_object_get(cs->flight, id)) return 0;
  return write_state(cs, id, "STARTED",
                     json_pack("{s:I,s:s}", "pid", (json_int_t)getpid(), "hostname", worker));
}

#define RESTORE_EVERY_MS 1000
#define RESTORE_LIMIT 1000

int er__cel_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts) {
  er__cel_t *cs = cel(s);
  int rc = fwd(cs, er_store_maintain(cs->inner, now_ms, counts));
  if (rc || now_ms - cs->restore_ms < RESTORE_EVERY_MS) return rc;
  cs->restore_ms = now_ms;
  er_rd_args_t a = {0};
  er__rd_args_str(&a, "unacked");
  er__rd_args_str(&a, "unacked_index");
  er__rd_args_fmt(&a, "%.6f", (double)now_ms / 1000.0);
  er__rd_args_fmt(&a, "%.3f", (double)cs->visibility_ms / 1000.0);
  er__rd_args_i64(&a, RESTORE_LIMIT);
  redisReply *r;
  rc = er__cel_eval(cs, er__rd_lua_celery_restore, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
    er_log(ER_LOG_INFO, "celery: %lld unacknowledged messages past the visibility timeout went "
           "back to their queues", r->integer);
    if (counts) counts->requeued += (size_t)r->integer;
  }
  freeReplyObject(r);
  return 0;
}
