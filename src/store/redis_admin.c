/* Workers' heartbeats and the store's counts. Heartbeats are the hash
 * workers (id -> info JSON with heartbeat_ms) and the sorted set
 * workers:expiry (id by the time its beat ends). The counts are the hash
 * counts ("<state>:<queue>" -> tasks), kept by every script that adds,
 * moves or deletes a task, so stats reads one hash instead of every task. */
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

/* lua/heartbeat.lua, lua/worker_gone.lua, lua/workers.lua */

int er__rd_heartbeat(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms) {
  er_rd_t *rd = er__rd(s);
  json_t *copy = json_copy(info);
  if (!copy) return ER_ENOMEM;
  json_object_set_new(copy, "heartbeat_ms", json_integer(now_ms));
  er_rd_args_t a = {0};
  er__rd_args_str(&a, json_string_value(json_object_get(info, "id")));
  er__rd_args_json(&a, copy, false);
  er__rd_args_i64(&a, now_ms + ttl_ms);
  json_decref(copy);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_HEARTBEAT, true, &a, &r);
  er__rd_args_free(&a);
  if (!rc) freeReplyObject(r);
  return rc;
}

int er__rd_worker_gone(er_store_t *s, const char *worker_id) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_str(&a, worker_id);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_WORKER_GONE, true, &a, &r);
  er__rd_args_free(&a);
  if (!rc) freeReplyObject(r);
  return rc;
}

int er__rd_workers(er_store_t *s, int64_t now_ms, json_t **out) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, now_ms);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_WORKERS, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  json_t *arr = json_array();
  if (!arr) {
    freeReplyObject(r);
    return ER_ENOMEM;
  }
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    const redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_STRING) continue;
    json_t *info = json_loadb(e->str, e->len, 0, NULL);
    if (json_is_object(info)) json_array_append_new(arr, info);
    else json_decref(info); /* not ours to fail on: skip it */
  }
  freeReplyObject(r);
  *out = arr;
  return 0;
}


/* The hash base_key + name (fields "<state>:<what>") into by[what][state],
 * and into total when not NULL. */
static int read_counts(er_rd_t *rd, const char *name, json_t *by, json_t *total) {
  size_t n = strlen(rd->base_key), m = strlen(name);
  char *key = er_malloc(n + m + 1);
  if (!key) return ER_ENOMEM;
  memcpy(key, rd->base_key, n);
  memcpy(key + n, name, m + 1);
  const char *argv[] = {"HGETALL", key};
  redisReply *r;
  int rc = er__rd_command(rd, 2, argv, NULL, &r, "stats");
  er_free(key);
  if (rc) return rc;
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || f->len < 3 || f->str[1] != ':') continue;
    int st = f->str[0] - '0';
    if (st < ER_STATE_PENDING || st > ER_STATE_REVOKED) continue;
    json_int_t c = v->type == REDIS_REPLY_STRING ? strtoll(v->str, NULL, 10) : 0;
    if (c <= 0) continue;
    const char *what = f->str + 2;
    json_t *wc = json_object_get(by, what);
    if (!wc) json_object_set_new(by, what, wc = er__stats_zero_counts());
    er__stats_add(wc, er_state_name((er_task_state_t)st), c);
    if (total) er__stats_add(total, er_state_name((er_task_state_t)st), c);
  }
  freeReplyObject(r);
  return 0;
}

int er__rd_stats(er_store_t *s, json_t **out) {
  er_rd_t *rd = er__rd(s);
  json_t *queues = json_object(), *total = er__stats_zero_counts(), *names = json_object();
  json_t *res = json_pack("{s:o, s:o, s:o}", "queues", queues, "total", total, "names", names);
  if (!res) return ER_ENOMEM;
  int rc = read_counts(rd, "counts", queues, total);
  if (!rc) rc = read_counts(rd, "ncounts", names, NULL);
  if (rc) {
    json_decref(res);
    return rc;
  }
  *out = res;
  return 0;
}
