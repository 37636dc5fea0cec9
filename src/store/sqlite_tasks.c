/* Tasks in and out: enqueue (with the name and key rules), get, revoke, purge. */
#include <stdio.h>
#include <string.h>

#include "store/sqlite_internal.h"

static const char SQL_INSERT[] =
    "INSERT INTO tasks(id, task, queue, priority, state, queued, args, kwargs, context, name, "
    "key, created_ms, eta_ms, expires_ms, max_retries, soft_limit_ms, hard_limit_ms, "
    "result_ttl_ms, ignore_result, ready) "
    "VALUES(?1, ?2, ?3, ?4, 0, 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
    "?11 <= ?10)";

/* A live task for a key: waiting, running, or succeeded with its result kept. */
static const char SQL_KEY_LIVE[] =
    "SELECT id FROM tasks WHERE key = ?1 AND (queued = 1 OR state = " ER__SQL_STARTED " OR "
    "(state = " ER__SQL_SUCCESS " AND ignore_result = 0 AND "
    "(result_expires_ms IS NULL OR result_expires_ms > ?2))) "
    "ORDER BY seq DESC LIMIT 1";

static const char SQL_NAME_GET[] = "SELECT finished_ms FROM names WHERE name = ?1";
static const char SQL_NAME_PUT[] =
    "INSERT OR REPLACE INTO names(name, id, finished_ms) VALUES(?1, ?2, NULL)";

/* The key rule: *found and id when a live task has r's key. */
static int key_live(er_sq_t *sq, const er_task_rec_t *r, char *id, bool *found) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_KEY_LIVE, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, r->key);
  sqlite3_bind_int64(st, 2, r->created_ms);
  rc = er__sq_step(sq, st, "enqueue (key)");
  *found = rc == SQLITE_ROW;
  if (*found) snprintf(id, ER_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

/* The name rule, App Engine's: a name is taken while its task lives and for
 * tombstone_ms after it finished. Times compare with the new task's
 * created_ms, the caller's clock. */
static int claim_name(er_sq_t *sq, const er_task_rec_t *r) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_NAME_GET, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, r->name);
  rc = er__sq_step(sq, st, "enqueue (name)");
  bool known = rc == SQLITE_ROW;
  bool live = known && sqlite3_column_type(st, 0) == SQLITE_NULL;
  int64_t finished = known ? sqlite3_column_int64(st, 0) : 0;
  er__sq_done(st);
  if (rc < 0) return rc;
  if (live) {
    er__store_set_error(&sq->base, "task name '%s' is taken by a task that has not finished",
                        r->name);
    return ER_EEXIST;
  }
  if (known && r->created_ms < finished + sq->base.tombstone_ms) {
    er__store_set_error(&sq->base,
                        "task name '%s' is tombstoned: its task finished %lld ms ago and names "
                        "stay taken for %lld ms",
                        r->name, (long long)(r->created_ms - finished),
                        (long long)sq->base.tombstone_ms);
    return ER_ETOMBSTONED;
  }
  if ((rc = er__sq_prep(sq, SQL_NAME_PUT, &st))) return rc;
  er__sq_bind_text(st, 1, r->name);
  er__sq_bind_text(st, 2, r->id);
  rc = er__sq_step(sq, st, "enqueue (name)");
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

static int insert(er_sq_t *sq, const er_task_rec_t *r) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_INSERT, &st);
  if (rc) return rc;
  int b = 0;
  b |= er__sq_bind_text(st, 1, r->id);
  b |= er__sq_bind_text(st, 2, r->task);
  b |= er__sq_bind_text(st, 3, r->queue);
  b |= sqlite3_bind_int(st, 4, r->priority);
  b |= er__sq_bind_json(st, 5, r->args);
  b |= er__sq_bind_json(st, 6, r->kwargs);
  b |= er__sq_bind_json(st, 7, r->context);
  b |= er__sq_bind_text(st, 8, r->name);
  b |= er__sq_bind_text(st, 9, r->key);
  b |= sqlite3_bind_int64(st, 10, r->created_ms);
  b |= sqlite3_bind_int64(st, 11, r->eta_ms);
  b |= sqlite3_bind_int64(st, 12, r->expires_ms);
  b |= sqlite3_bind_int(st, 13, r->max_retries);
  b |= sqlite3_bind_int64(st, 14, r->soft_limit_ms);
  b |= sqlite3_bind_int64(st, 15, r->hard_limit_ms);
  b |= sqlite3_bind_int64(st, 16, r->result_ttl_ms);
  b |= sqlite3_bind_int(st, 17, r->ignore_result);
  if (b) {
    er__sq_done(st);
    return er__sq_fail(sq, SQLITE_NOMEM, "enqueue");
  }
  rc = er__sq_step(sq, st, "enqueue");
  er__sq_done(st);
  if (rc == ER_EEXIST) er__store_set_error(&sq->base, "task id %s already exists", r->id);
  return rc < 0 ? rc : 0;
}

/* ---- counts rows ------------------------------------------------------------ */

static const char SQL_COUNTS_ENSURE[] =
    "INSERT OR IGNORE INTO counts(queue, state, n) "
    "VALUES(?1, 0, 0), (?1, 1, 0), (?1, 2, 0), (?1, 3, 0), (?1, 4, 0), (?1, 5, 0)";
static const char SQL_NAME_COUNTS_ENSURE[] =
    "INSERT OR IGNORE INTO name_counts(task, state, n) "
    "VALUES(?1, 0, 0), (?1, 1, 0), (?1, 2, 0), (?1, 3, 0), (?1, 4, 0), (?1, 5, 0)";

/* The cache holds "q" + queue and "t" + task name: one list for both kinds
 * of rows. */
static int ensure_rows(er_sq_t *sq, char kind, const char *value, const char *sql) {
  for (size_t i = 0; i < sq->nknown_q; i++)
    if (sq->known_q[i][0] == kind && strcmp(sq->known_q[i] + 1, value) == 0) return 0;
  if (sq->nknown_q == sq->capknown_q) {
    size_t cap = sq->capknown_q ? sq->capknown_q * 2 : 8;
    char **p = er_realloc(sq->known_q, cap * sizeof *p);
    if (!p) return ER_ENOMEM;
    sq->known_q = p;
    sq->capknown_q = cap;
  }
  size_t len = strlen(value);
  char *copy = er_malloc(len + 2);
  sqlite3_stmt *st;
  int rc = copy ? er__sq_prep(sq, sql, &st) : ER_ENOMEM;
  if (!rc) {
    copy[0] = kind;
    memcpy(copy + 1, value, len + 1);
    er__sq_bind_text(st, 1, value);
    rc = er__sq_step(sq, st, "enqueue (counts)");
    er__sq_done(st);
    rc = rc < 0 ? rc : 0;
  }
  if (rc) {
    er_free(copy);
    return rc;
  }
  sq->known_q[sq->nknown_q++] = copy;
  return 0;
}

int er__sq_counts_ensure(er_sq_t *sq, const char *queue, const char *task) {
  int rc = ensure_rows(sq, 'q', queue, SQL_COUNTS_ENSURE);
  return rc ? rc : ensure_rows(sq, 't', task, SQL_NAME_COUNTS_ENSURE);
}

void er__sq_counts_settle(er_sq_t *sq, bool committed) {
  if (!committed)
    while (sq->nknown_q > sq->nknown_q_committed) er_free(sq->known_q[--sq->nknown_q]);
  sq->nknown_q_committed = sq->nknown_q;
}

void er__sq_counts_free(er_sq_t *sq) {
  for (size_t i = 0; i < sq->nknown_q; i++) er_free(sq->known_q[i]);
  er_free(sq->known_q);
}

/* ---- enqueue ------------------------------------------------------------------- */

int er__sq_enqueue_one(er_sq_t *sq, const er_task_rec_t *r, int flags, bool *found,
                       char *found_id) {
  *found = false;
  int rc = 0;
  if ((flags & ER_ENQ_IF_ABSENT) && r->key) {
    rc = key_live(sq, r, found_id, found);
    if (rc || *found) return rc;
  }
  if (r->name) rc = claim_name(sq, r);
  if (!rc) rc = er__sq_counts_ensure(sq, r->queue, r->task);
  if (!rc) rc = insert(sq, r);
  if (!rc) rc = er__sq_owe_queue(sq, r->queue);
  return rc;
}

int er__sq_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                   bool *existing) {
  er_sq_t *sq = er__sq(s);
  /* Ids found by the key rule are copied out only once the batch commits. */
  bool *found = er_calloc(n, sizeof *found);
  char(*found_ids)[ER_ID_LEN + 1] = er_calloc(n, sizeof *found_ids);
  int rc = found && found_ids ? er__sq_begin(sq) : ER_ENOMEM;
  if (rc) goto out;
  for (size_t i = 0; !rc && i < n; i++)
    rc = er__sq_enqueue_one(sq, recs[i], flags, &found[i], found_ids[i]);
  rc = er__sq_end(sq, rc);
  for (size_t i = 0; !rc && i < n; i++) {
    if (found[i]) memcpy(recs[i]->id, found_ids[i], sizeof found_ids[i]);
    else recs[i]->state = ER_STATE_PENDING;
    if (existing) existing[i] = found[i];
  }
out:
  er_free(found_ids);
  er_free(found);
  return rc;
}

/* ---- get ------------------------------------------------------------------- */

/* A finished task whose result expired reads as gone even before maintain
 * deletes it. */
static const char SQL_GET_ID[] =
    "SELECT " ER_SQ_TASK_COLS " FROM tasks WHERE id = ?1 "
    "AND (result_expires_ms IS NULL OR result_expires_ms > ?2)";
static const char SQL_GET_KEY[] =
    "SELECT " ER_SQ_TASK_COLS " FROM tasks WHERE key = ?1 "
    "AND (result_expires_ms IS NULL OR result_expires_ms > ?2) ORDER BY seq DESC LIMIT 1";

int er__sq_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, id ? SQL_GET_ID : SQL_GET_KEY, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, id ? id : key);
  sqlite3_bind_int64(st, 2, er_now_wall_ms());
  rc = er__sq_step(sq, st, "get");
  if (rc == SQLITE_ROW) {
    /* An undecodable record is still shown, with the reason as its error:
     * the caller asked about this one task and can tell it apart. */
    er_rec_why_t why;
    rc = er__sq_read_rec(sq, st, 0, out, NULL, &why);
    if (!rc) er__rec_lenient(*out, &why);
  } else if (rc == SQLITE_DONE) {
    er__store_set_error(s, "no task with %s '%s'", id ? "id" : "key", id ? id : key);
    rc = ER_ENOENT;
  }
  er__sq_done(st);
  return rc;
}

/* ---- revoke ------------------------------------------------------------------ */

static const char SQL_STATE[] = "SELECT state, name FROM tasks WHERE id = ?1";
static const char SQL_REVOKE_QUEUED[] =
    "UPDATE tasks SET state = " ER__SQL_REVOKED ", queued = 0, ready = 0, finished_ms = ?2, "
    "error = ?3, "
    "result_expires_ms = " ER_SQ_RESULT_EXPIRES("?2") " WHERE id = ?1";
static const char SQL_REVOKE_RUNNING[] = "UPDATE tasks SET revoke_requested = 1 WHERE id = ?1";

static int revoke_in_tx(er_sq_t *sq, const char *id, er_task_state_t *state) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_STATE, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, id);
  rc = er__sq_step(sq, st, "revoke");
  er_task_state_t was = rc == SQLITE_ROW ? (er_task_state_t)sqlite3_column_int(st, 0)
                                         : ER_STATE_UNKNOWN;
  char *name = rc == SQLITE_ROW ? er_strdup((const char *)sqlite3_column_text(st, 1)) : NULL;
  er__sq_done(st);
  if (rc < 0) return rc;
  if (rc == SQLITE_DONE) {
    er__store_set_error(&sq->base, "no task with id '%s'", id);
    return ER_ENOENT;
  }
  if (state) *state = was;
  rc = 0;
  if (was == ER_STATE_PENDING || was == ER_STATE_RETRY) {
    int64_t now = er_now_wall_ms();
    json_t *err = er__store_error_json(ER_EREVOKED, "revoked");
    if (!err) rc = ER_ENOMEM;
    else if (!(rc = er__sq_prep(sq, SQL_REVOKE_QUEUED, &st))) {
      er__sq_bind_text(st, 1, id);
      sqlite3_bind_int64(st, 2, now);
      if (er__sq_bind_json(st, 3, err)) rc = ER_ENOMEM;
      else rc = er__sq_step(sq, st, "revoke");
      er__sq_done(st);
    }
    json_decref(err);
    if (rc >= 0) rc = er__sq_finished(sq, name, id, now);
  } else if (was == ER_STATE_STARTED) {
    if (!(rc = er__sq_prep(sq, SQL_REVOKE_RUNNING, &st))) {
      er__sq_bind_text(st, 1, id);
      rc = er__sq_step(sq, st, "revoke");
      er__sq_done(st);
    }
    er__sq_owe_ctl(sq);
  }
  er_free(name);
  return rc < 0 ? rc : 0;
}

int er__sq_revoke(er_store_t *s, const char *id, er_task_state_t *state) {
  er_sq_t *sq = er__sq(s);
  int rc = er__sq_begin(sq);
  if (rc) return rc;
  return er__sq_end(sq, revoke_in_tx(sq, id, state));
}

/* ---- purge ---------------------------------------------------------------------- */

/* Purged named tasks leave tombstones, as deleted ones do in App Engine. The
 * queued tasks are the ready ones and the delayed ones, each by its index. */
#define QUEUED_OF(Q)                                                           \
  "SELECT seq FROM tasks WHERE ready = 1" Q " UNION ALL "                      \
  "SELECT seq FROM tasks WHERE queued = 1 AND ready = 0" Q
static const char SQL_PURGE_NAMES_Q[] =
    "UPDATE names SET finished_ms = ?2 WHERE finished_ms IS NULL AND name IN "
    "(SELECT name FROM tasks WHERE seq IN (" QUEUED_OF(" AND queue = ?1") ") AND name IS NOT NULL)";
static const char SQL_PURGE_Q[] =
    "DELETE FROM tasks WHERE seq IN (" QUEUED_OF(" AND queue = ?1") ")";
static const char SQL_PURGE_NAMES_ALL[] =
    "UPDATE names SET finished_ms = ?2 WHERE finished_ms IS NULL AND name IN "
    "(SELECT name FROM tasks WHERE seq IN (" QUEUED_OF("") ") AND name IS NOT NULL)";
static const char SQL_PURGE_ALL[] = "DELETE FROM tasks WHERE seq IN (" QUEUED_OF("") ")";
/* Result waiters of a purged task learn it is gone (as on Redis). */
static const char SQL_PURGE_LOG_Q[] =
    "INSERT INTO finished(id) SELECT id FROM tasks WHERE seq IN (" QUEUED_OF(" AND queue = ?1") ")";
static const char SQL_PURGE_LOG_ALL[] =
    "INSERT INTO finished(id) SELECT id FROM tasks WHERE seq IN (" QUEUED_OF("") ")";

static int purge_in_tx(er_sq_t *sq, const char *queue, size_t *count) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, queue ? SQL_PURGE_NAMES_Q : SQL_PURGE_NAMES_ALL, &st);
  if (rc) return rc;
  if (queue) er__sq_bind_text(st, 1, queue);
  sqlite3_bind_int64(st, 2, er_now_wall_ms());
  rc = er__sq_step(sq, st, "purge");
  er__sq_done(st);
  if (rc < 0) return rc;
  if ((rc = er__sq_prep(sq, queue ? SQL_PURGE_LOG_Q : SQL_PURGE_LOG_ALL, &st))) return rc;
  if (queue) er__sq_bind_text(st, 1, queue);
  rc = er__sq_step(sq, st, "purge");
  er__sq_done(st);
  if (rc < 0) return rc;
  if (sqlite3_changes64(sq->db)) er__sq_owe_done(sq);
  if ((rc = er__sq_prep(sq, queue ? SQL_PURGE_Q : SQL_PURGE_ALL, &st))) return rc;
  if (queue) er__sq_bind_text(st, 1, queue);
  rc = er__sq_step(sq, st, "purge");
  er__sq_done(st);
  if (rc < 0) return rc;
  if (count) *count = (size_t)sqlite3_changes64(sq->db);
  return 0;
}

int er__sq_purge(er_store_t *s, const char *queue, size_t *count) {
  er_sq_t *sq = er__sq(s);
  int rc = er__sq_begin(sq);
  if (rc) return rc;
  size_t c = 0;
  rc = er__sq_end(sq, purge_in_tx(sq, queue, &c));
  if (!rc && count) *count = c;
  return rc;
}
