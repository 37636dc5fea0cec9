/* Housekeeping: tasks whose lease ended go back to the queue (or end REVOKED
 * when a revoke was asked for), expired results and their tasks are deleted,
 * expired tombstones, workers and old finished-log entries are dropped; one
 * transaction, each part bounded. */
#include "store/sqlite_internal.h"

/* ---- maintain -------------------------------------------------------------------------- */

/* A running task revoked while its worker vanished ends REVOKED... */
static const char SQL_LEASE_REVOKED[] =
    "UPDATE tasks SET state = " ER__SQL_REVOKED ", finished_ms = ?1, lease_until_ms = NULL, "
    "error = ?2, "
    "result_expires_ms = " ER_SQ_RESULT_EXPIRES("?1") " "
    "WHERE state = " ER__SQL_STARTED " AND lease_until_ms < ?1 AND revoke_requested = 1 "
    "RETURNING name, id";
/* ...any other goes back to the queue, without counting a retry. */
static const char SQL_LEASE_REQUEUE[] =
    "UPDATE tasks SET state = " ER__SQL_PENDING ", queued = 1, ready = 1, worker = NULL, "
    "lease_until_ms = NULL "
    "WHERE state = " ER__SQL_STARTED " AND lease_until_ms < ?1 RETURNING queue";
/* Bounded, so that one call never holds the write lock for long. */
static const char SQL_RESULTS_EXPIRE[] =
    "DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE result_expires_ms <= ?1 "
    "LIMIT 10000)";
static const char SQL_TOMBSTONES_EXPIRE[] =
    "DELETE FROM names WHERE finished_ms IS NOT NULL AND finished_ms <= ?1";
static const char SQL_WORKERS_EXPIRE[] = "DELETE FROM workers WHERE expires_ms <= ?1";
/* The finished log keeps its newest entries (a rowid range: no scan). */
static const char SQL_FINISHED_PRUNE[] =
    "DELETE FROM finished WHERE seq <= (SELECT max(seq) FROM finished) - ?1";

/* Runs sql with ?1 = a; returns changes in *changes. */
static int run1(er_sq_t *sq, const char *sql, int64_t a, size_t *changes) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, sql, &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, a);
  rc = er__sq_step(sq, st, "maintain");
  er__sq_done(st);
  if (rc < 0) return rc;
  if (changes) *changes = (size_t)sqlite3_changes64(sq->db);
  return 0;
}

static int revoke_lost(er_sq_t *sq, int64_t now) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_LEASE_REVOKED, &st);
  if (rc) return rc;
  json_t *err = er__store_error_json(ER_EREVOKED, "revoked");
  sqlite3_bind_int64(st, 1, now);
  rc = err && !er__sq_bind_json(st, 2, err) ? 0 : ER_ENOMEM;
  json_decref(err);
  while (!rc && (rc = er__sq_step(sq, st, "maintain")) == SQLITE_ROW)
    rc = er__sq_finished(sq, (const char *)sqlite3_column_text(st, 0),
                         (const char *)sqlite3_column_text(st, 1), now);
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

/* Tasks whose worker vanished go back to their queues, whose watchers wake. */
static int requeue_lost(er_sq_t *sq, int64_t now, size_t *count) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_LEASE_REQUEUE, &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, now);
  while (!rc && (rc = er__sq_step(sq, st, "maintain")) == SQLITE_ROW) {
    ++*count;
    rc = er__sq_owe_queue(sq, (const char *)sqlite3_column_text(st, 0));
  }
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

static int maintain_in_tx(er_sq_t *sq, int64_t now, er_maint_counts_t *c) {
  int rc = revoke_lost(sq, now);
  if (!rc) rc = requeue_lost(sq, now, &c->requeued);
  if (!rc) rc = run1(sq, SQL_RESULTS_EXPIRE, now, &c->expired_results);
  if (!rc) rc = run1(sq, SQL_TOMBSTONES_EXPIRE, now - sq->base.tombstone_ms, NULL);
  if (!rc) rc = run1(sq, SQL_WORKERS_EXPIRE, now, NULL);
  if (!rc) rc = run1(sq, SQL_FINISHED_PRUNE, ER_SQ_FINISHED_KEEP, NULL);
  return rc;
}

int er__sq_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts) {
  er_sq_t *sq = er__sq(s);
  er_maint_counts_t c = {0, 0};
  int rc = er__sq_begin(sq);
  if (!rc) rc = er__sq_end(sq, maintain_in_tx(sq, now_ms, &c));
  if (!rc && counts) *counts = c;
  return rc;
}
