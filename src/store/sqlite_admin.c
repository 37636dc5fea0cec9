/* Workers' heartbeats and the store's counts (from the counts table). */
#include <string.h>

#include "store/sqlite_internal.h"

static const char SQL_BEAT[] =
    "INSERT INTO workers(id, info, beat_ms, expires_ms) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(id) DO UPDATE SET info = excluded.info, beat_ms = excluded.beat_ms, "
    "expires_ms = excluded.expires_ms";
static const char SQL_GONE[] = "DELETE FROM workers WHERE id = ?1";
static const char SQL_LIVE[] =
    "SELECT info, beat_ms FROM workers WHERE expires_ms > ?1 ORDER BY id";
/* Kept by triggers on tasks (schema version 2): a few rows, never a scan. */
static const char SQL_COUNTS[] = "SELECT queue, state, n FROM counts WHERE n > 0";
static const char SQL_NAME_COUNTS[] = "SELECT task, state, n FROM name_counts WHERE n > 0";

int er__sq_heartbeat(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_begin(sq);
  if (!rc) rc = er__sq_prep(sq, SQL_BEAT, &st);
  if (!rc) {
    er__sq_bind_text(st, 1, json_string_value(json_object_get(info, "id")));
    er__sq_bind_json(st, 2, info);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, now_ms + ttl_ms);
    rc = er__sq_step(sq, st, "heartbeat");
    er__sq_done(st);
    rc = rc < 0 ? rc : 0;
  }
  return er__sq_end(sq, rc);
}

int er__sq_worker_gone(er_store_t *s, const char *worker_id) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_begin(sq);
  if (!rc) rc = er__sq_prep(sq, SQL_GONE, &st);
  if (!rc) {
    er__sq_bind_text(st, 1, worker_id);
    rc = er__sq_step(sq, st, "worker_gone");
    er__sq_done(st);
    rc = rc < 0 ? rc : 0;
  }
  return er__sq_end(sq, rc);
}

int er__sq_workers(er_store_t *s, int64_t now_ms, json_t **out) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_LIVE, &st);
  if (rc) return rc;
  json_t *arr = json_array();
  if (!arr) return ER_ENOMEM;
  sqlite3_bind_int64(st, 1, now_ms);
  while ((rc = er__sq_step(sq, st, "workers")) == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(st, 0);
    json_t *info = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(info)) {
      json_decref(info);
      continue; /* not ours to fail on: skip it */
    }
    json_object_set_new(info, "heartbeat_ms", json_integer(sqlite3_column_int64(st, 1)));
    json_array_append_new(arr, info);
  }
  er__sq_done(st);
  if (rc != SQLITE_DONE) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return 0;
}


/* Rows of (name, state, n) into by[name][state], and into total when not
 * NULL. */
static int read_counts(er_sq_t *sq, const char *sql, json_t *by, json_t *total) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, sql, &st);
  if (rc) return rc;
  while ((rc = er__sq_step(sq, st, "stats")) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(st, 0);
    const char *state = er_state_name((er_task_state_t)sqlite3_column_int(st, 1));
    json_int_t n = sqlite3_column_int64(st, 2);
    json_t *c = json_object_get(by, k);
    if (!c) json_object_set_new(by, k, c = er__stats_zero_counts());
    er__stats_add(c, state, n);
    if (total) er__stats_add(total, state, n);
  }
  er__sq_done(st);
  return rc == SQLITE_DONE ? 0 : rc;
}

int er__sq_stats(er_store_t *s, json_t **out) {
  er_sq_t *sq = er__sq(s);
  json_t *queues = json_object(), *total = er__stats_zero_counts(), *names = json_object();
  json_t *res = json_pack("{s:o, s:o, s:o}", "queues", queues, "total", total, "names", names);
  if (!res) return ER_ENOMEM;
  /* One read transaction, so that both sets of counts are of one instant. */
  int rc = er__sq_exec(sq, "BEGIN", "stats");
  if (!rc) {
    rc = read_counts(sq, SQL_COUNTS, queues, total);
    if (!rc) rc = read_counts(sq, SQL_NAME_COUNTS, names, NULL);
    if (er__sq_exec(sq, "COMMIT", "stats")) sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
  }
  if (rc) {
    json_decref(res);
    return rc;
  }
  *out = res;
  return 0;
}
