/* A worker's store with Celery messages beside errand's tasks: it wraps the
 * worker's Redis store handle, forwards every call to it, and adds the
 * Celery lists to reserve, renew, complete and maintain. A Celery message
 * becomes a task record (id, name, args, kwargs, retries, eta, expires, time
 * limits from its headers) that the pool runs like any other; the record's
 * id is the Celery id, and the message is remembered by it until its
 * outcome is written, so the pool and the task functions are unchanged. */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

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

static int cel_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
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

static int cel_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
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

static int cel_complete(er_store_t *s, const er_completion_t *c, size_t n, bool *fenced) {
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

static int cel_progress(er_store_t *s, const char *id, int attempt, double p, const char *msg) {
  er__cel_t *cs = cel(s);
  json_t *f = json_object_get(cs->flight, id);
  if (!f) return fwd(cs, er_store_progress(cs->inner, id, attempt, p, msg));
  /* as a task's update_state(state='PROGRESS', meta=...) writes it */
  json_t *meta = json_pack("{s:f,s:s?}", "progress", p, "message", msg);
  er_rd_args_t a = {0};
  er__cel_ops_begin(cs, &a);
  er__cel_ops_result(&a, id, "PROGRESS", meta, NULL, NULL);
  json_decref(meta);
  redisReply *r;
  int rc = er__cel_eval(cs, er__rd_lua_celery_ops, &a, &r);
  er__rd_args_free(&a);
  if (!rc) freeReplyObject(r);
  return rc;
}

#define RESTORE_EVERY_MS 1000
#define RESTORE_LIMIT 1000

static int cel_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts) {
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

/* ---- wake-ups: the inner store's, and the Celery threads' ---- */

static int cel_wakeup_fd(er_store_t *s) { return cel(s)->epfd; }

static void cel_drain(er_store_t *s) {
  er__cel_t *cs = cel(s);
  er__cel_rang(cs);
  er_store_drain_wakeups(cs->inner);
}

static int cel_wait_change(er_store_t *s, int timeout_ms) {
  er__cel_t *cs = cel(s);
  struct epoll_event ev;
  int n = epoll_wait(cs->epfd, &ev, 1, timeout_ms);
  return n > 0 ? 0 : ER_ETIMEDOUT;
}

static int cel_read_wakeups(er_store_t *s, er_wakeups_t *out) {
  er__cel_t *cs = cel(s);
  int rc = fwd(cs, er_store_read_wakeups(cs->inner, out));
  if (rc == ER_ENOTSUP) {
    memset(out, 0, sizeof *out);
    er_store_drain_wakeups(cs->inner);
    out->work = out->control = out->finished_overflow = true;
    rc = 0;
  }
  if (er__cel_rang(cs)) {
    out->work = true;
    pthread_mutex_lock(&cs->mu);
    out->control |= cs->revoke_news;
    cs->revoke_news = false;
    pthread_mutex_unlock(&cs->mu);
  }
  return rc;
}

static int cel_next_due(er_store_t *s, const char *const *queues, size_t nq, int64_t *due) {
  er__cel_t *cs = cel(s);
  /* a delayed Celery message falling due rings the watcher */
  return fwd(cs, er_store_next_due(cs->inner, queues, nq, due));
}

/* ---- everything else goes to the inner store ---- */

#define IN (cel(s)->inner)
static int cel_enqueue(er_store_t *s, er_task_rec_t *const *r, size_t n, int f, bool *e) {
  return fwd(cel(s), er_store_enqueue(IN, r, n, f, e));
}
static int cel_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  return fwd(cel(s), er_store_get(IN, id, key, out));
}
static int cel_revoke(er_store_t *s, const char *id, er_task_state_t *st) {
  return fwd(cel(s), er_store_revoke(IN, id, st));
}
static int cel_purge(er_store_t *s, const char *q, size_t *n) {
  return fwd(cel(s), er_store_purge(IN, q, n));
}
static int cel_heartbeat(er_store_t *s, json_t *info, int64_t now, int64_t ttl) {
  return fwd(cel(s), er_store_heartbeat(IN, info, now, ttl));
}
static int cel_worker_gone(er_store_t *s, const char *id) {
  return fwd(cel(s), er_store_worker_gone(IN, id));
}
static int cel_workers(er_store_t *s, int64_t now, json_t **out) {
  return fwd(cel(s), er_store_workers(IN, now, out));
}
static int cel_stats(er_store_t *s, json_t **out) { return fwd(cel(s), er_store_stats(IN, out)); }
static int cel_apply(er_store_t *s, const er_mut_t *m, size_t n, er_mut_result_t *r,
                     size_t *failed) {
  return fwd(cel(s), er_store_apply(IN, m, n, r, failed));
}
static int cel_doc_get(er_store_t *s, const char *c, const char *k, json_t **v, int64_t *ver) {
  return fwd(cel(s), er_store_doc_get(IN, c, k, v, ver));
}
static int cel_doc_list(er_store_t *s, const char *c, const char *after, size_t lim,
                        json_t **out) {
  return fwd(cel(s), er_store_doc_list(IN, c, after, lim, out));
}
static int cel_counter_get(er_store_t *s, const char *c, const char *k, int64_t *v) {
  return fwd(cel(s), er_store_counter_get(IN, c, k, v));
}
static int cel_watch(er_store_t *s, const er_watch_t *w) {
  return fwd(cel(s), er_store_watch(IN, w));
}
#undef IN

static void cel_close(er_store_t *s) {
  er__cel_t *cs = cel(s);
  er__cel_wake_stop(cs);
  if (cs->c) redisFree(cs->c);
  er_store_close(cs->inner);
  for (size_t i = 0; i < cs->nlists; i++) er_free(cs->lists[i]);
  er_free(cs->lists);
  json_decref(cs->flight);
  json_decref(cs->revoked);
  pthread_mutex_destroy(&cs->mu);
  pthread_cond_destroy(&cs->cv);
  er_free(cs);
}

static const er_store_ops_t cel_ops = {
    .version = ER_STORE_OPS_VERSION, .scheme = "redis+celery", .open = NULL,
    .close = cel_close, .enqueue = cel_enqueue, .reserve = cel_reserve, .renew = cel_renew,
    .complete = cel_complete, .progress = cel_progress, .get = cel_get, .revoke = cel_revoke,
    .purge = cel_purge, .maintain = cel_maintain, .heartbeat = cel_heartbeat,
    .worker_gone = cel_worker_gone, .workers = cel_workers, .stats = cel_stats,
    .wakeup_fd = cel_wakeup_fd, .drain_wakeups = cel_drain, .wait_change = cel_wait_change,
    .apply = cel_apply, .doc_get = cel_doc_get, .doc_list = cel_doc_list,
    .counter_get = cel_counter_get, .watch = cel_watch, .read_wakeups = cel_read_wakeups,
    .next_due = cel_next_due};

int er__celery_wrap(er_store_t *inner, const char *const *queues, size_t nqueues,
                    int64_t visibility_ms, er_store_t **out, char *errmsg, size_t size) {
  *out = NULL;
  if (strcmp(inner->ops->scheme, "redis") != 0) {
    snprintf(errmsg, size, "--celery needs a redis:// store (Celery's Redis transport), not %s",
             inner->ops->scheme);
    return ER_EINVAL;
  }
  er__cel_t *cs = er_calloc(1, sizeof *cs);
  if (!cs) return ER_ENOMEM;
  cs->evfd = cs->epfd = -1;
  pthread_mutex_init(&cs->mu, NULL);
  pthread_cond_init(&cs->cv, NULL);
  cs->base = *inner;
  cs->base.ops = &cel_ops;
  cs->base.url = er_strdup(inner->url);
  cs->inner = inner;
  cs->visibility_ms = visibility_ms;
  cs->flight = json_object();
  cs->revoked = json_object();
  cs->lists = er_calloc(nqueues * 4 + 1, sizeof *cs->lists);
  int rc = cs->base.url && cs->flight && cs->revoked && cs->lists ? 0 : ER_ENOMEM;
  /* each queue's priority sub-lists in kombu's order: 0 first, 9 last */
  for (size_t i = 0; !rc && i < nqueues; i++)
    for (int pri = 0; !rc && pri <= 9; pri += 3) {
      char name[600];
      er__cel_list_name(queues[i], pri, name, sizeof name);
      if (!(cs->lists[cs->nlists++] = er_strdup(name))) rc = ER_ENOMEM;
    }
  if (!rc) rc = er__cel_wake_start(cs, errmsg, size);
  if (rc) {
    char *url = cs->base.url;
    cs->inner = NULL; /* the caller's still */
    cel_close(&cs->base);
    er_free(url);
    return rc;
  }
  *out = &cs->base;
  return 0;
}
