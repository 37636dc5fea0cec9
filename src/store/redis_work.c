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

int er__rd_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
                   size_t *n) {
  er_rd_t *rd = er__rd(s);
  size_t max = req->max < ER__RESERVE_MAX ? req->max : ER__RESERVE_MAX;
  er_rd_args_t a = {0};
  json_t *experr = er__store_error_json(ER_EREVOKED, "expired");
  er__rd_args_i64(&a, req->now_ms);
  er__rd_args_str(&a, req->worker ? req->worker : "");
  er__rd_args_i64(&a, req->now_ms + req->lease_ms);
  er__rd_args_i64(&a, (int64_t)max);
  er__rd_args_json(&a, experr, false);
  json_decref(experr);
  for (size_t i = 0; i < req->nqueues; i++) er__rd_args_str(&a, req->queues[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_RESERVE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY) {
    freeReplyObject(r);
    er__store_set_error(s, "redis reserve: an unexpected reply");
    return ER_EIO;
  }
  er_task_rec_t **recs = r->elements ? er_calloc(r->elements, sizeof *recs) : NULL;
  if (r->elements && !recs) rc = ER_ENOMEM;
  size_t got = 0;
  for (size_t i = 0; !rc && i < r->elements; i++) {
    rc = er__rd_read_rec(rd, r->element[i], &recs[got]);
    if (!rc) got++;
  }
  freeReplyObject(r);
  if (rc) {
    /* The tasks stay STARTED under this worker's lease and come back when it
     * ends. */
    er_task_rec_free_array(recs, got);
    return rc;
  }
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
