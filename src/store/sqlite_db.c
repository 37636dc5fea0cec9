/* SQLite plumbing shared by the backend: the per-handle statement cache,
 * error mapping, write transactions with busy retry, binding and reading rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite_internal.h"

int er__sq_code(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK: return 0;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return ER_EBUSY;
  case SQLITE_NOMEM: return ER_ENOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return ER_ECORRUPT;
  case SQLITE_CANTOPEN: return ER_EUNAVAILABLE;
  case SQLITE_CONSTRAINT: return ER_EEXIST;
  case SQLITE_TOOBIG: return ER_ETOOBIG;
  default: return ER_EIO;
  }
}

int er__sq_fail(er_sq_t *sq, int rc, const char *what) {
  er__store_set_error(&sq->base, "sqlite %s: %s (%s)", what, sqlite3_errmsg(sq->db),
                      sqlite3_errstr(rc));
  return er__sq_code(rc);
}

int er__sq_prep(er_sq_t *sq, const char *sql, sqlite3_stmt **out) {
  for (size_t i = 0; i < sq->nstmts; i++)
    if (sq->stmts[i].sql == sql) {
      *out = sq->stmts[i].st;
      return 0;
    }
  if (sq->nstmts == sq->capstmts) {
    size_t cap = sq->capstmts ? sq->capstmts * 2 : 32;
    er_sq_stmt_t *p = er_realloc(sq->stmts, cap * sizeof *p);
    if (!p) return ER_ENOMEM;
    sq->stmts = p;
    sq->capstmts = cap;
  }
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK) return er__sq_fail(sq, rc, "prepare");
  sq->stmts[sq->nstmts++] = (er_sq_stmt_t){sql, st};
  *out = st;
  return 0;
}

void er__sq_done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

int er__sq_step(er_sq_t *sq, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc;
  rc = er__sq_fail(sq, rc, what);
  sqlite3_reset(st);
  return rc;
}

int er__sq_query_i64(er_sq_t *sq, const char *sql, const char *what, int64_t *out) {
  sqlite3_stmt *st = NULL;
  int rc = er__sq_prep(sq, sql, &st);
  if (rc) return rc;
  rc = er__sq_step(sq, st, what);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

int er__sq_exec(er_sq_t *sq, const char *sql, const char *what) {
  int rc = sqlite3_exec(sq->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : er__sq_fail(sq, rc, what);
}

/* ---- Transactions ---------------------------------------------------------- */

void er__sq_nap(unsigned *us) {
  /* Exponential backoff with jitter, up to 10 ms. */
  unsigned d = *us + (unsigned)(rand() % (int)(*us + 1));
  struct timespec ts = {0, (long)d * 1000};
  nanosleep(&ts, NULL);
  *us = *us < 5000 ? *us * 2 : 10000;
}

/* Runs a cached statement that returns no rows, retrying SQLITE_BUSY until
 * busy_ms has passed (SQLite's busy handler does not cover every case, for
 * example a database being recovered by another process). */
static int run_retrying(er_sq_t *sq, const char *sql, const char *what) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, sql, &st);
  if (rc) return rc;
  uint64_t deadline = er_now_mono_ms() + (uint64_t)sq->busy_ms;
  unsigned delay = 100;
  for (;;) {
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return 0;
    if ((rc & 0xff) != SQLITE_BUSY || er_now_mono_ms() >= deadline)
      return er__sq_fail(sq, rc, what);
    er__sq_nap(&delay);
  }
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* SQLite's own handler (sqlite3_busy_timeout) sleeps a whole millisecond at
 * the first conflict, then longer: every send that meets a worker's short
 * claim would wait that long. Ours naps 50 us, doubling up to 1 ms, until
 * busy_ms has passed. */
int er__sq_busy_handler(void *ud, int count) {
  er_sq_t *sq = ud;
  uint64_t now = er_now_mono_ms();
  if (count == 0) sq->busy_since_ms = now;
  if (now - sq->busy_since_ms >= (uint64_t)sq->busy_ms) return 0;
  unsigned us = count < 5 ? 50u << count : 1000;
  struct timespec ts = {0, (long)us * 1000};
  nanosleep(&ts, NULL);
  return 1;
}

int er__sq_begin(er_sq_t *sq) {
  int rc = run_retrying(sq, SQL_BEGIN, "begin");
  er__sq_owe_clear(sq);
  sq->changes_at_begin = sqlite3_total_changes64(sq->db);
  return rc;
}

int er__sq_commit(er_sq_t *sq) {
  bool changed = sqlite3_total_changes64(sq->db) != sq->changes_at_begin;
  int rc = run_retrying(sq, SQL_COMMIT, "commit");
  if (rc)
    er__sq_rollback(sq);
  else if (changed)
    er__sq_ring(sq);
  if (!rc) er__sq_counts_settle(sq, true);
  er__sq_owe_clear(sq);
  return rc;
}

void er__sq_rollback(er_sq_t *sq) {
  er__sq_owe_clear(sq);
  er__sq_counts_settle(sq, false);
  if (sqlite3_get_autocommit(sq->db)) return; /* SQLite rolled back already */
  sqlite3_stmt *st;
  if (er__sq_prep(sq, SQL_ROLLBACK, &st) == 0) {
    sqlite3_step(st);
    sqlite3_reset(st);
  }
}

int er__sq_end(er_sq_t *sq, int rc) {
  if (rc == 0) return er__sq_commit(sq);
  er__sq_rollback(sq);
  return rc;
}

/* ---- Binding ----------------------------------------------------------------- */

int er__sq_bind_json(sqlite3_stmt *st, int idx, const json_t *v) {
  if (!v) return sqlite3_bind_null(st, idx);
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  /* jansson answers 0 when it runs out of memory (its own allocator, while
   * encoding): compact JSON is never empty, so 0 is a failure to report, not
   * an empty value to store. */
  size_t n = json_dumpb(v, NULL, 0, flags);
  char *buf = n ? er_malloc(n) : NULL;
  if (!buf) return SQLITE_NOMEM;
  if (json_dumpb(v, buf, n, flags) != n) {
    er_free(buf);
    return SQLITE_NOMEM;
  }
  return sqlite3_bind_text64(st, idx, buf, n, er_free, SQLITE_UTF8);
}

int er__sq_bind_text(sqlite3_stmt *st, int idx, const char *s) {
  return s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
}

int er__sq_bind_opt_ms(sqlite3_stmt *st, int idx, int64_t ms) {
  return ms ? sqlite3_bind_int64(st, idx, ms) : sqlite3_bind_null(st, idx);
}

/* ---- Reading ------------------------------------------------------------------- */

static char *col_str(sqlite3_stmt *st, int c, bool *oom) {
  const unsigned char *t = sqlite3_column_text(st, c);
  if (!t) return NULL;
  char *s = er_strdup((const char *)t);
  if (!s) *oom = true;
  return s;
}

static json_t *col_json(sqlite3_stmt *st, int c, bool *bad) {
  const char *t = (const char *)sqlite3_column_text(st, c);
  if (!t) return NULL;
  /* JSON allows \u0000 inside a string: a sender's "a\u0000b" reads back. */
  json_t *v = json_loadb(t, (size_t)sqlite3_column_bytes(st, c), JSON_DECODE_ANY | JSON_ALLOW_NUL,
                         NULL);
  if (!v) *bad = true;
  return v;
}

int er__sq_read_rec(er_sq_t *sq, sqlite3_stmt *st, int c, er_task_rec_t **out, int64_t *seq) {
  er_task_rec_t *r = er_task_rec_new();
  if (!r) return ER_ENOMEM;
  bool oom = false, bad = false;
  const unsigned char *id = sqlite3_column_text(st, c + 0);
  snprintf(r->id, sizeof r->id, "%s", id ? (const char *)id : "");
  r->task = col_str(st, c + 1, &oom);
  r->queue = col_str(st, c + 2, &oom);
  r->priority = sqlite3_column_int(st, c + 3);
  r->state = (er_task_state_t)sqlite3_column_int(st, c + 4);
  r->args = col_json(st, c + 5, &bad);
  r->kwargs = col_json(st, c + 6, &bad);
  r->context = col_json(st, c + 7, &bad);
  r->name = col_str(st, c + 8, &oom);
  r->key = col_str(st, c + 9, &oom);
  r->created_ms = sqlite3_column_int64(st, c + 10);
  r->eta_ms = sqlite3_column_int64(st, c + 11);
  r->expires_ms = sqlite3_column_int64(st, c + 12);
  r->started_ms = sqlite3_column_int64(st, c + 13);
  r->finished_ms = sqlite3_column_int64(st, c + 14);
  r->attempt = sqlite3_column_int(st, c + 15);
  r->retries = sqlite3_column_int(st, c + 16);
  r->max_retries = sqlite3_column_int(st, c + 17);
  r->soft_limit_ms = sqlite3_column_int64(st, c + 18);
  r->hard_limit_ms = sqlite3_column_int64(st, c + 19);
  r->result_ttl_ms = sqlite3_column_int64(st, c + 20);
  r->ignore_result = sqlite3_column_int(st, c + 21) != 0;
  r->revoke_requested = sqlite3_column_int(st, c + 22) != 0;
  r->progress = sqlite3_column_double(st, c + 23);
  r->progress_msg = col_str(st, c + 24, &oom);
  r->result = col_json(st, c + 25, &bad);
  r->error = col_json(st, c + 26, &bad);
  r->worker = col_str(st, c + 27, &oom);
  r->lease_until_ms = sqlite3_column_int64(st, c + 28);
  if (seq) *seq = sqlite3_column_int64(st, c + 29);
  if (oom || bad) {
    er_task_rec_free(r);
    if (oom) return ER_ENOMEM;
    er__store_set_error(&sq->base, "task %s: a stored JSON value does not parse",
                        id ? (const char *)id : "?");
    return ER_ECORRUPT;
  }
  *out = r;
  return 0;
}

/* ---- Finishing ----------------------------------------------------------------- */

static const char SQL_TOMBSTONE[] =
    "UPDATE names SET finished_ms = ?3 WHERE name = ?1 AND id = ?2 AND finished_ms IS NULL";
/* In C, not a trigger: an AFTER UPDATE trigger here cost every claim and
 * completion about 35 us of CPU, half again a drained task's cost. */
static const char SQL_FINISHED_LOG[] = "INSERT INTO finished(id) VALUES(?1)";

int er__sq_finished(er_sq_t *sq, const char *name, const char *id, int64_t now_ms) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_FINISHED_LOG, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, id);
  rc = er__sq_step(sq, st, "finished log");
  er__sq_done(st);
  if (rc < 0) return rc;
  er__sq_owe_done(sq);
  if (!name) return 0;
  if ((rc = er__sq_prep(sq, SQL_TOMBSTONE, &st))) return rc;
  er__sq_bind_text(st, 1, name);
  er__sq_bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, now_ms);
  rc = er__sq_step(sq, st, "tombstone");
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}
