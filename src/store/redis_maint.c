/* Housekeeping: tasks whose lease ended go back to the queue (or end REVOKED
 * when a revoke was asked for), expired results and their tasks are deleted,
 * expired tombstones and workers are dropped. One script, each part bounded
 * by the leases, results, tombstones and workers:expiry sorted sets, so a
 * call touches only what is due. */
#include <string.h>

#include "store/redis_internal.h"

/* lua/maintain.lua; each part takes up to MAINT_LIMIT. */

#define MAINT_LIMIT 10000

int er__rd_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  json_t *rerr = er__store_error_json(ER_EREVOKED, "revoked");
  json_t *baderr = er__rec_poison_error(NULL);
  er__rd_args_i64(&a, now_ms);
  er__rd_args_i64(&a, s->tombstone_ms);
  er__rd_args_i64(&a, MAINT_LIMIT);
  er__rd_args_json(&a, rerr, false);
  er__rd_args_json(&a, baderr, false);
  json_decref(rerr);
  json_decref(baderr);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_MAINTAIN, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
    freeReplyObject(r);
    er__store_set_error(s, "redis maintain: an unexpected reply");
    return ER_EIO;
  }
  if (counts) {
    counts->requeued = (size_t)r->element[0]->integer;
    counts->expired_results = (size_t)r->element[1]->integer;
  }
  freeReplyObject(r);
  return 0;
}
