/* Tasks in and out: enqueue (with the name and key rules), get, revoke,
 * purge. Each is one script. */
#include <stdio.h>
#include <string.h>

#include "store/redis_internal.h"

/* ---- enqueue (lua/enqueue.lua) ---------------------------------------------------- */

int er__rd_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                   bool *existing) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, flags);
  er__rd_args_i64(&a, s->tombstone_ms);
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) er__rd_args_rec(&a, recs[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_ENQUEUE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
    freeReplyObject(r);
    er__store_set_error(s, "redis enqueue: an unexpected reply");
    return ER_EIO;
  }
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = r->element[i];
    bool found = e->type == REDIS_REPLY_STRING && e->len > 0;
    if (found) snprintf(recs[i]->id, sizeof recs[i]->id, "%s", e->str);
    else recs[i]->state = ER_STATE_PENDING;
    if (existing) existing[i] = found;
  }
  freeReplyObject(r);
  return 0;
}

/* ---- get (lua/get.lua) ---------------------------------------------------------------- */

int er__rd_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_str(&a, id ? "i" : "k");
  er__rd_args_str(&a, id ? id : key);
  er__rd_args_i64(&a, er_now_wall_ms());
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_GET, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type == REDIS_REPLY_ARRAY) {
    /* An undecodable record is still shown, with the reason as its error:
     * the caller asked about this one task and can tell it apart. */
    er_rec_why_t why;
    rc = er__rd_read_rec(rd, r, out, &why);
    if (!rc) er__rec_lenient(*out, &why);
  } else {
    er__store_set_error(s, "no task with %s '%s'", id ? "id" : "key", id ? id : key);
    rc = ER_ENOENT;
  }
  freeReplyObject(r);
  return rc;
}

/* ---- revoke (lua/revoke.lua) ---------------------------------------------------------------- */

int er__rd_revoke(er_store_t *s, const char *id, er_task_state_t *state) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  json_t *err = er__store_error_json(ER_EREVOKED, "revoked");
  er__rd_args_str(&a, id);
  er__rd_args_i64(&a, er_now_wall_ms());
  er__rd_args_json(&a, err, false);
  json_decref(err);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_REVOKE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  long long was = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  freeReplyObject(r);
  if (was < 0) {
    er__store_set_error(s, "no task with id '%s'", id);
    return ER_ENOENT;
  }
  if (state) *state = (er_task_state_t)was;
  return 0;
}

/* ---- purge (lua/purge.lua) ----------------------------------------------------------
 * Deletes queued tasks PURGE_CHUNK a script, so that no one script runs long. */
#define PURGE_CHUNK 5000

int er__rd_purge(er_store_t *s, const char *queue, size_t *count) {
  er_rd_t *rd = er__rd(s);
  size_t total = 0;
  for (;;) {
    er_rd_args_t a = {0};
    er__rd_args_str(&a, queue ? "0" : "1");
    er__rd_args_str(&a, queue ? queue : "");
    er__rd_args_i64(&a, er_now_wall_ms());
    er__rd_args_i64(&a, PURGE_CHUNK);
    redisReply *r;
    int rc = er__rd_run(rd, ER_RD_PURGE, false, &a, &r);
    er__rd_args_free(&a);
    if (rc) return rc;
    long long got = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    total += (size_t)got;
    if (got < PURGE_CHUNK) break;
  }
  if (count) *count = total;
  return 0;
}
