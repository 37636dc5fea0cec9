/* The worker's side: reserve under a lease, renew, complete and progress,
 * each fenced by the attempt number, each one script. A reserved task moves
 * from its queue's set to the leases set and becomes STARTED in the same
 * script, so there is no moment at which it has left the queue without
 * being recorded as held (the BRPOP-then-record gap of Celery's Redis
 * transport). */
#include <stdio.h>
#include <string.h>

#include "store/redis_internal.h"

/* ---- reserve (lua/reserve.lua) ---------------------------------------------------------------- */

/* Tasks the script reserved whose JSON does not decode here (the script
 * checks what it computes with; JSON is checked in C, as the worker reads
 * it) end FAILURE now, fenced by the attempt just taken, so they are never
 * leased again. If that call fails they stay under this lease, which ends
 * and brings them back to a reserve that fails them then: never to a
 * worker. */
static void fail_undecodable(er_store_t *s, er_completion_t *cs, size_t n) {
  if (!n) return;
  char keep[sizeof s->last_error];
  memcpy(keep, s->last_error, sizeof keep);
  int rc = er__rd_complete(s, cs, n, NULL);
  if (rc)
    er_log(ER_LOG_WARN, "redis reserve: failing %zu undecodable task(s): %s (retried when "
           "their lease ends)", n, s->last_error);
  memcpy(s->last_error, keep, sizeof keep);
}

/* One run of the script for up to max tasks: the decodable ones are added
 * to recs[*got...], the others failed; *nbad says how many. */
static int reserve_round(er_rd_t *rd, const er_reserve_req_t *req, size_t max,
                         er_task_rec_t **recs, size_t *got, size_t *nbad) {
  er_store_t *s = &rd->base;
  er_rd_args_t a = {0};
  json_t *experr = er__store_error_json(ER_EREVOKED, "expired");
  json_t *baderr = er__rec_poison_error(NULL);
  er__rd_args_i64(&a, req->now_ms);
  er__rd_args_str(&a, req->worker ? req->worker : "");
  er__rd_args_i64(&a, req->now_ms + req->lease_ms);
  er__rd_args_i64(&a, (int64_t)max);
  er__rd_args_json(&a, experr, false);
  er__rd_args_json(&a, baderr, false);
  json_decref(experr);
  json_decref(baderr);
  for (size_t i = 0; i < req->nqueues; i++) er__rd_args_str(&a, req->queues[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_RESERVE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements > max) {
    freeReplyObject(r);
    er__store_set_error(s, "redis reserve: an unexpected reply");
    return ER_EIO;
  }
  size_t ne = r->elements;
  er_task_rec_t **bad = ne ? er_calloc(ne, sizeof *bad) : NULL;
  er_completion_t *cs = ne ? er_calloc(ne, sizeof *cs) : NULL;
  if (ne && (!bad || !cs)) rc = ER_ENOMEM;
  *nbad = 0;
  for (size_t i = 0; !rc && i < ne; i++) {
    er_task_rec_t *t = NULL;
    er_rec_why_t why;
    rc = er__rd_read_rec(rd, r->element[i], &t, &why);
    if (rc == ER_ECORRUPT) {
      /* No id to fail it by (the script checks for one: a race with a
       * foreign writer): it stays under this lease; the rest go on. */
      er_log(ER_LOG_WARN, "redis reserve: %s", s->last_error);
      rc = 0;
      continue;
    }
    if (rc) break;
    if (!why.why[0]) {
      recs[(*got)++] = t;
      continue;
    }
    er_log(ER_LOG_WARN, "task %s: %s; failed", t->id, why.why);
    cs[*nbad] = (er_completion_t){.id = t->id, .attempt = t->attempt,
                                  .state = ER_STATE_FAILURE,
                                  .error = er__rec_poison_error(&why), .now_ms = req->now_ms};
    bad[(*nbad)++] = t;
    if (!cs[*nbad - 1].error) rc = ER_ENOMEM;
  }
  freeReplyObject(r);
  if (!rc) fail_undecodable(s, cs, *nbad);
  for (size_t i = 0; i < *nbad; i++) json_decref(cs[i].error);
  er_task_rec_free_array(bad, *nbad);
  er_free(cs);
  return rc;
}

int er__rd_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
                   size_t *n) {
  er_rd_t *rd = er__rd(s);
  size_t max = req->max < ER__RESERVE_MAX ? req->max : ER__RESERVE_MAX;
  er_task_rec_t **recs = max ? er_calloc(max, sizeof *recs) : NULL;
  if (max && !recs) return ER_ENOMEM;
  size_t got = 0, nbad = 0;
  int rc;
  /* Failed tasks took places of the batch: take again for them, so that a
   * poisoned task never costs the ones behind it a turn. A later round that
   * fails leaves the tasks already taken to be handed out. */
  bool first = true;
  do {
    rc = reserve_round(rd, req, max - got, recs, &got, &nbad);
    if (rc && !first && got) rc = 0, nbad = 0;
    first = false;
  } while (!rc && nbad && got < max);
  if (rc || !got) {
    /* On an error the tasks stay STARTED under this worker's lease and come
     * back when it ends. */
    er_task_rec_free_array(recs, got);
    recs = NULL;
    got = 0;
  }
  if (rc) return rc;
  *out = recs;
  *n = got;
  return 0;
}

/* ---- renew (lua/renew.lua) ---------------------------------------------------------------- */

int er__rd_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                 int64_t lease_until_ms, bool *revoked, bool *fenced) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, lease_until_ms);
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) {
    er__rd_args_str(&a, ids[i]);
    er__rd_args_i64(&a, attempts[i]);
  }
  redisReply *r;
  /* Idempotent: setting the same lease twice is setting it once. */
  int rc = er__rd_run(rd, ER_RD_RENEW, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
    freeReplyObject(r);
    er__store_set_error(s, "redis renew: an unexpected reply");
    return ER_EIO;
  }
  for (size_t i = 0; i < n; i++) {
    long long v = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : -1;
    if (revoked) revoked[i] = v > 0;
    if (fenced) fenced[i] = v < 0;
  }
  freeReplyObject(r);
  return 0;
}

/* ---- complete (lua/complete.lua) ---------------------------------------------------------------- */

int er__rd_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) er__rd_args_done(&a, &cs[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_COMPLETE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
    freeReplyObject(r);
    er__store_set_error(s, "redis complete: an unexpected reply");
    return ER_EIO;
  }
  for (size_t i = 0; i < n; i++)
    if (fenced) fenced[i] = r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer;
  freeReplyObject(r);
  return 0;
}

/* ---- progress (lua/progress.lua) ---------------------------------------------------------------- */

int er__rd_progress(er_store_t *s, const char *id, int attempt, double progress,
                    const char *msg) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_str(&a, id);
  er__rd_args_i64(&a, attempt);
  er__rd_args_fmt(&a, "%.17g", progress);
  er__rd_args_opt(&a, msg);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_PROGRESS, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  bool ok = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  freeReplyObject(r);
  if (!ok) {
    er__store_set_error(s, "task %s attempt %d no longer owns its lease", id, attempt);
    return ER_EFENCED;
  }
  return 0;
}
