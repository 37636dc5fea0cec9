/* The SQLite store's schema and its migrations.
 *
 * meta(key, value) holds app=errand and schema_version; migrations records
 * each step applied. A new version adds a step to g_migrations (never edits
 * an old one); opening an older file applies the missing steps in order, in
 * one transaction. The schema itself is described in docs/store.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

typedef struct er_sq_migration {
  int version;
  const char *description;
  const char *sql;
} er_sq_migration_t;

/* "ERND": the file's application_id, so that tools such as file(1) can tell. */
#define ER_SQ_APPLICATION_ID 0x45524e44

static const er_sq_migration_t g_migrations[] = {
    {1, "tasks, names, workers",
     "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
     "CREATE TABLE migrations(version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
     "  applied_ms INTEGER NOT NULL);"
     "CREATE TABLE tasks("
     "  seq INTEGER PRIMARY KEY,"          /* enqueue order; FIFO ties break on it */
     "  id TEXT NOT NULL UNIQUE,"
     "  task TEXT NOT NULL,"
     "  queue TEXT NOT NULL,"
     "  priority INTEGER NOT NULL DEFAULT 0,"
     "  state INTEGER NOT NULL,"          /* er_task_state_t */
     "  queued INTEGER NOT NULL,"         /* 1 while PENDING or RETRY */
     "  args TEXT NOT NULL, kwargs TEXT NOT NULL, context TEXT,"
     "  name TEXT, key TEXT,"
     "  created_ms INTEGER NOT NULL, eta_ms INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL DEFAULT 0,"
     "  started_ms INTEGER, finished_ms INTEGER,"
     "  attempt INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0,"
     "  max_retries INTEGER NOT NULL DEFAULT -1,"
     "  soft_limit_ms INTEGER NOT NULL DEFAULT 0, hard_limit_ms INTEGER NOT NULL DEFAULT 0,"
     "  result_ttl_ms INTEGER NOT NULL DEFAULT 0,"
     "  ignore_result INTEGER NOT NULL DEFAULT 0,"
     "  revoke_requested INTEGER NOT NULL DEFAULT 0,"
     "  progress REAL NOT NULL DEFAULT -1, progress_msg TEXT,"
     "  result TEXT, error TEXT, worker TEXT, lease_until_ms INTEGER,"
     "  result_expires_ms INTEGER,"
     "  CHECK (queued = (state IN (0, 2))));"
     "CREATE INDEX tasks_queued ON tasks(queue, priority DESC, eta_ms) WHERE queued = 1;"
     "CREATE INDEX tasks_lease ON tasks(lease_until_ms) WHERE state = 1;"
     "CREATE INDEX tasks_key ON tasks(key) WHERE key IS NOT NULL;"
     "CREATE INDEX tasks_result_expires ON tasks(result_expires_ms)"
     "  WHERE result_expires_ms IS NOT NULL;"
     "CREATE TABLE names(name TEXT PRIMARY KEY, id TEXT NOT NULL, finished_ms INTEGER)"
     "  WITHOUT ROWID;"
     "CREATE INDEX names_finished ON names(finished_ms) WHERE finished_ms IS NOT NULL;"
     "CREATE TABLE workers(id TEXT PRIMARY KEY, info TEXT NOT NULL, beat_ms INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
     "INSERT INTO meta(key, value) VALUES('app', 'errand');"},
    {2, "documents, counters, ready and delayed tasks, counts, finished log",
     "CREATE TABLE docs(coll TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
     "  version INTEGER NOT NULL, PRIMARY KEY(coll, key)) WITHOUT ROWID;"
     "CREATE TABLE counters(coll TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,"
     "  PRIMARY KEY(coll, key)) WITHOUT ROWID;"
     /* A queued task is either ready (due when it was queued or promoted since:
      * claimed by priority) or delayed (waiting for its eta: found by eta).
      * Claims then never walk tasks scheduled for later. */
     "ALTER TABLE tasks ADD COLUMN ready INTEGER NOT NULL DEFAULT 0;"
     "UPDATE tasks SET ready = 1 WHERE queued = 1 AND eta_ms <= "
     "  CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);"
     "DROP INDEX tasks_queued;"
     "CREATE INDEX tasks_ready ON tasks(queue, priority DESC, eta_ms) WHERE ready = 1;"
     "CREATE INDEX tasks_delayed ON tasks(queue, eta_ms) WHERE queued = 1 AND ready = 0;"
     /* Tasks by queue and state, kept by triggers in the same transactions, so
      * that stats reads a few rows instead of every task. A queue has its six
      * rows from its first task on (er__sq_counts_ensure), so the triggers are
      * plain UPDATEs: an upsert per transition costs twice as much. */
     "CREATE TABLE counts(queue TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL,"
     "  PRIMARY KEY(queue, state)) WITHOUT ROWID;"
     "INSERT INTO counts(queue, state, n) SELECT queue, state, count(*) FROM tasks"
     "  GROUP BY queue, state;"
     "INSERT OR IGNORE INTO counts(queue, state, n) SELECT q.queue, s.state, 0"
     "  FROM (SELECT DISTINCT queue FROM counts) AS q, (SELECT 0 AS state UNION ALL SELECT 1"
     "  UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5) AS s;"
     /* Finished tasks in order, for result waiters' wake-ups (written by
      * er__sq_finished); maintain keeps the newest ER_SQ_FINISHED_KEEP. */
     "CREATE TABLE finished(seq INTEGER PRIMARY KEY, id TEXT NOT NULL);"
     "CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN"
     "  UPDATE counts SET n = n + 1 WHERE queue = new.queue AND state = new.state;"
     "END;"
     "CREATE TRIGGER tasks_count_update AFTER UPDATE OF state ON tasks"
     "  WHEN old.state != new.state BEGIN"
     "  UPDATE counts SET n = n - 1 WHERE queue = old.queue AND state = old.state;"
     "  UPDATE counts SET n = n + 1 WHERE queue = new.queue AND state = new.state;"
     "END;"
     "CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN"
     "  UPDATE counts SET n = n - 1 WHERE queue = old.queue AND state = old.state;"
     "END;"},
    {3, "counts by task name",
     /* As counts, by task name: a name has its six rows from its first task
      * on (er__sq_counts_ensure). */
     "CREATE TABLE name_counts(task TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL,"
     "  PRIMARY KEY(task, state)) WITHOUT ROWID;"
     "INSERT INTO name_counts(task, state, n) SELECT task, state, count(*) FROM tasks"
     "  GROUP BY task, state;"
     "INSERT OR IGNORE INTO name_counts(task, state, n) SELECT t.task, s.state, 0"
     "  FROM (SELECT DISTINCT task FROM name_counts) AS t, (SELECT 0 AS state UNION ALL"
     "  SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5)"
     "  AS s;"
     "CREATE TRIGGER tasks_name_count_insert AFTER INSERT ON tasks BEGIN"
     "  UPDATE name_counts SET n = n + 1 WHERE task = new.task AND state = new.state;"
     "END;"
     "CREATE TRIGGER tasks_name_count_update AFTER UPDATE OF state ON tasks"
     "  WHEN old.state != new.state BEGIN"
     "  UPDATE name_counts SET n = n - 1 WHERE task = old.task AND state = old.state;"
     "  UPDATE name_counts SET n = n + 1 WHERE task = new.task AND state = new.state;"
     "END;"
     "CREATE TRIGGER tasks_name_count_delete AFTER DELETE ON tasks BEGIN"
     "  UPDATE name_counts SET n = n - 1 WHERE task = old.task AND state = old.state;"
     "END;"},
    {4, "tasks that failed, retry or were revoked",
     /* Listing by a rare state (the dashboard's filter) walks one of these
      * newest first instead of every task: FAILURE among a million SUCCESS
      * was a walk of the whole table per page. Partial, so that the usual
      * path (PENDING, STARTED, SUCCESS) writes none of them: an index on
      * (state, id) cost a fifth of the batch enqueue rate. */
     "CREATE INDEX tasks_retry ON tasks(id) WHERE state = 2;"
     "CREATE INDEX tasks_failed ON tasks(id) WHERE state = 4;"
     "CREATE INDEX tasks_revoked ON tasks(id) WHERE state = 5;"},
};
#define N_MIGRATIONS (sizeof g_migrations / sizeof g_migrations[0])

_Static_assert(ER_SQ_SCHEMA_VERSION == 4, "add a migration step for the new version");

const char *er__sq_migration_sql(int version) {
  for (size_t i = 0; i < N_MIGRATIONS; i++)
    if (g_migrations[i].version == version) return g_migrations[i].sql;
  return NULL;
}

/* One integer from a one-off query; *found is false when it gave no row. */
static int query_int(er_sq_t *sq, const char *sql, int64_t *out, bool *found) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(sq->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(st, 0);
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK) rc = er__sq_fail(sq, rc, "schema check");
  sqlite3_finalize(st);
  return rc;
}

/* The file's schema version: 0 for an empty database. */
int er__sq_schema_read(er_sq_t *sq, int64_t *version, char *errmsg, size_t size) {
  int64_t n = 0;
  bool found;
  int rc = query_int(sq, "SELECT count(*) FROM sqlite_master", &n, &found);
  if (rc == ER_ECORRUPT) {
    er__errmsg(errmsg, size, "'%s' is not an SQLite database (so not an errand store): %s",
               sq->path, sq->base.last_error);
    return rc;
  }
  if (rc) goto fail;
  *version = 0;
  if (n == 0) return 0;
  int64_t is_errand = 0;
  rc = query_int(sq,
                 "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                 &is_errand, &found);
  if (rc) goto fail;
  if (is_errand)
    rc = query_int(sq, "SELECT count(*) FROM meta WHERE key = 'app' AND value = 'errand'",
                   &is_errand, &found);
  if (rc) goto fail;
  if (!is_errand) {
    er__errmsg(errmsg, size, "'%s' is an SQLite database but not an errand store", sq->path);
    return ER_ECORRUPT;
  }
  rc = query_int(sq, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'",
                 version, &found);
  if (rc) goto fail;
  if (!found || *version < 1) {
    er__errmsg(errmsg, size, "'%s': errand store without a schema version", sq->path);
    return ER_ECORRUPT;
  }
  if (*version > ER_SQ_SCHEMA_VERSION) {
    er__errmsg(errmsg, size,
               "'%s' was made by a newer errand (schema version %lld; this errand knows up to "
               "%d)",
               sq->path, (long long)*version, ER_SQ_SCHEMA_VERSION);
    return ER_ECORRUPT;
  }
  return 0;
fail:
  er__errmsg(errmsg, size, "'%s': %s", sq->path, sq->base.last_error);
  return rc;
}

static int apply(er_sq_t *sq, const er_sq_migration_t *m) {
  int rc = er__sq_exec(sq, m->sql, "migration");
  if (rc) return rc;
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO migrations(version, description, applied_ms) VALUES(%d, '%s', %lld);"
           "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%d');"
           "PRAGMA application_id = %d;",
           m->version, m->description, (long long)er_now_wall_ms(), m->version,
           ER_SQ_APPLICATION_ID);
  return er__sq_exec(sq, sql, "migration");
}

int er__sq_schema_upgrade(er_sq_t *sq, int64_t v, char *errmsg, size_t size) {
  if (v == ER_SQ_SCHEMA_VERSION) return 0;
  /* Create or migrate under the write lock; another process may have done it
   * meanwhile, so look again inside the transaction. */
  int rc = er__sq_begin(sq);
  if (rc) {
    er__errmsg(errmsg, size, "'%s': %s", sq->path, sq->base.last_error);
    return rc;
  }
  rc = er__sq_schema_read(sq, &v, errmsg, size);
  for (size_t i = 0; !rc && i < N_MIGRATIONS; i++) {
    if (g_migrations[i].version <= v) continue;
    rc = apply(sq, &g_migrations[i]);
    if (rc)
      er__errmsg(errmsg, size, "'%s': migrating to schema version %d: %s", sq->path,
                 g_migrations[i].version, sq->base.last_error);
  }
  rc = er__sq_end(sq, rc);
  if (rc && errmsg && !*errmsg) er__errmsg(errmsg, size, "'%s': %s", sq->path, sq->base.last_error);
  return rc;
}
