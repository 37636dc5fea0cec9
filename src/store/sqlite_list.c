/* Listing tasks newest first, filtered, a page at a time. The walk goes down
 * the id index (ids are UUIDv7: creation order) from the cursor and filters
 * rows as it goes; a rare filter on a large store reads many rows, which a
 * local file affords (Redis bounds its walk instead: redis_list.c). */
#include <string.h>

#include "store/sqlite_internal.h"

/* ER_SQ_TASK_COLS with NULL for the result: pages stay small. */
#define LIST_COLS                                                                              \
  "id, task, queue, priority, state, args, kwargs, context, name, key, created_ms, eta_ms, "   \
  "expires_ms, started_ms, finished_ms, attempt, retries, max_retries, soft_limit_ms, "        \
  "hard_limit_ms, result_ttl_ms, ignore_result, revoke_requested, progress, progress_msg, "     \
  "NULL, error, worker, lease_until_ms, seq"
#define LIST_FILTER                                                                    \
  "(?2 IS NULL OR state = ?2) AND (?3 IS NULL OR task = ?3) AND (?4 IS NULL OR queue = ?4) " \
  "AND (result_expires_ms IS NULL OR result_expires_ms > ?5) ORDER BY id DESC LIMIT ?6"
static const char SQL_LIST_FIRST[] =
    "SELECT " LIST_COLS " FROM tasks WHERE ?1 IS NULL AND " LIST_FILTER;
static const char SQL_LIST_AFTER[] = "SELECT " LIST_COLS " FROM tasks WHERE id < ?1 AND " LIST_FILTER;

int er__sq_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                      size_t *n, char *next_cursor) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, req->cursor ? SQL_LIST_AFTER : SQL_LIST_FIRST, &st);
  if (rc) return rc;
  er_task_rec_t **recs = er_calloc(req->limit, sizeof *recs);
  if (!recs) {
    er__sq_done(st);
    return ER_ENOMEM;
  }
  er__sq_bind_text(st, 1, req->cursor);
  if (req->by_state) sqlite3_bind_int(st, 2, (int)req->state);
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
