/* Listing tasks newest first, filtered, a page at a time. The walk goes down
 * the id index (ids are UUIDv7: creation order) from the cursor, or down the
 * (state, id) index when a state is asked for, and filters rows as it goes;
 * a rare name or queue on a large store reads many rows, which a local file
 * affords (Redis bounds its walk instead: redis_list.c). */
#include <string.h>

#include "store/sqlite_internal.h"

/* ER_SQ_TASK_COLS with NULL for the result: pages stay small. */
#define LIST_COLS                                                                              \
  "id, task, queue, priority, state, args, kwargs, context, name, key, created_ms, eta_ms, "   \
  "expires_ms, started_ms, finished_ms, attempt, retries, max_retries, soft_limit_ms, "        \
  "hard_limit_ms, result_ttl_ms, ignore_result, revoke_requested, progress, progress_msg, "     \
  "NULL, error, worker, lease_until_ms, seq"
#define LIST_FILTER                                                                         \
  "(?3 IS NULL OR task = ?3) AND (?4 IS NULL OR queue = ?4) "                                 \
  "AND (result_expires_ms IS NULL OR result_expires_ms > ?5) ORDER BY id DESC LIMIT ?6"
/* A state is a literal in its own statement: the planner uses a partial
 * index (tasks_retry, tasks_failed, tasks_revoked) only for a query whose
 * WHERE holds its condition as written, not for "state = ?". */
#define LIST(where) "SELECT " LIST_COLS " FROM tasks WHERE " where " AND " LIST_FILTER
#define LIST_STATES(cursor)                                                                \
  {LIST(cursor), LIST(cursor " AND state = 0"), LIST(cursor " AND state = 1"),             \
   LIST(cursor " AND state = 2"), LIST(cursor " AND state = 3"),                           \
   LIST(cursor " AND state = 4"), LIST(cursor " AND state = 5")}
static const char *const g_sql[2][7] = {LIST_STATES("?1 IS NULL"), LIST_STATES("id < ?1")};
_Static_assert(ER_STATE_REVOKED == 5, "a statement for each state");

const char *er__sq_list_sql(bool after, int state) {
  return g_sql[after][state >= ER_STATE_PENDING && state <= ER_STATE_REVOKED ? state + 1 : 0];
}

int er__sq_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                      size_t *n, char *next_cursor) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_prep(
      sq, er__sq_list_sql(req->cursor != NULL, req->by_state ? (int)req->state : -1), &st);
  if (rc) return rc;
  er_task_rec_t **recs = er_calloc(req->limit, sizeof *recs);
  if (!recs) {
    er__sq_done(st);
    return ER_ENOMEM;
  }
  er__sq_bind_text(st, 1, req->cursor);
  er__sq_bind_text(st, 3, req->task);
  er__sq_bind_text(st, 4, req->queue);
  sqlite3_bind_int64(st, 5, er_now_wall_ms());
  /* One more than asked: whether a next page exists. */
  sqlite3_bind_int64(st, 6, (sqlite3_int64)req->limit + 1);
  size_t got = 0;
  bool more = false;
  while ((rc = er__sq_step(sq, st, "list_tasks")) == SQLITE_ROW) {
    if (got == req->limit) {
      more = true;
      break;
    }
    /* An undecodable record is listed with the reason as its error, as a
     * get shows it. */
    er_rec_why_t why;
    rc = er__sq_read_rec(sq, st, 0, &recs[got], NULL, &why);
    if (rc) break;
    er__rec_lenient(recs[got++], &why);
  }
  er__sq_done(st);
  if (rc < 0) {
    er_task_rec_free_array(recs, got);
    return rc;
  }
  if (more) memcpy(next_cursor, recs[got - 1]->id, sizeof recs[got - 1]->id);
  *out = recs;
  *n = got;
  return 0;
}
