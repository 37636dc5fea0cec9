/* The worker's side: reserve under a lease, renew, complete and progress,
 * each fenced by the attempt number (maintain is in sqlite_maint.c). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

/* ---- reserve ----------------------------------------------------------------
 * A queued task is ready (claimed by priority) or delayed (waiting for its
 * eta). A reserve first promotes the queue's delayed tasks that fell due,
 * found by the partial index tasks_delayed (queue, eta_ms) ranged on the eta,
 * so tasks scheduled for later are never visited. Then one UPDATE claims the
 * best ready tasks: the inner SELECT walks the partial index tasks_ready
 * (queue, priority DESC, eta_ms, seq) and stops at the limit, so a claim costs
 * the same at a million queued tasks, due or scheduled, as at ten. Tasks past
 * their expiry are moved to REVOKED by the same statement. */
#define EXPIRED "(expires_ms > 0 AND expires_ms <= ?2)"
static const char SQL_CLAIM[] =
    "UPDATE tasks SET "
    "state = CASE WHEN " EXPIRED " THEN 5 ELSE 1 END, "
    "queued = 0, "
    "attempt = attempt + CASE WHEN " EXPIRED " THEN 0 ELSE 1 END, "
    "started_ms = CASE WHEN " EXPIRED " THEN started_ms ELSE ?2 END, "
    "finished_ms = CASE WHEN " EXPIRED " THEN ?2 ELSE NULL END, "
    "worker = CASE WHEN " EXPIRED " THEN NULL ELSE ?4 END, "
    "lease_until_ms = CASE WHEN " EXPIRED " THEN NULL ELSE ?5 END, "
    "error = CASE WHEN " EXPIRED " THEN ?6 ELSE error END, "
    "result_expires_ms = CASE WHEN " EXPIRED " THEN " ER_SQ_RESULT_EXPIRES("?2") " ELSE NULL END, "
    "revoke_requested = 0, progress = -1, progress_msg = NULL, ready = 0 "
    "WHERE seq IN (SELECT seq FROM tasks WHERE ready = 1 AND queue = ?1 AND eta_ms <= ?2 "
    "ORDER BY priority DESC, eta_ms, seq LIMIT ?3) "
    "RETURNING " ER_SQ_TASK_COLS;

typedef struct claimed {
  er_task_rec_t *rec;
  int64_t seq;
} claimed_t;

static int by_order(const void *a, const void *b) {
  const claimed_t *x = a, *y = b;
  if (x->rec->priority != y->rec->priority) return x->rec->priority > y->rec->priority ? -1 : 1;
  if (x->rec->eta_ms != y->rec->eta_ms) return x->rec->eta_ms < y->rec->eta_ms ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A claimed task whose record cannot be decoded ends FAILURE in the claim's
 * transaction, so it is never leased again and never holds up the tasks
 * behind it; its error says why (er_status shows it), the finished log wakes
 * whoever waits on its result, and the counts triggers move it. */
static const char SQL_POISON[] =
    "UPDATE tasks SET state = " ER__SQL_FAILURE ", finished_ms = ?2, worker = NULL, "
    "lease_until_ms = NULL, error = ?3, result = NULL, "
    "result_expires_ms = " ER_SQ_RESULT_EXPIRES("?2") " "
    "WHERE id = ?1 AND state = " ER__SQL_STARTED;

static int poison(er_sq_t *sq, const er_task_rec_t *r, const er_rec_why_t *why, int64_t now) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_POISON, &st);
  if (rc) return rc;
  json_t *err = er__rec_poison_error(why);
  er__sq_bind_text(st, 1, r->id);
  sqlite3_bind_int64(st, 2, now);
  rc = err && !er__sq_bind_json(st, 3, err) ? 0 : ER_ENOMEM;
  json_decref(err);
  if (!rc) rc = er__sq_step(sq, st, "reserve (failing an undecodable task)");
  er__sq_done(st);
  if (rc < 0) return rc;
  er_log(ER_LOG_WARN, "task %s: %s; failed", r->id, why->why);
  return er__sq_finished(sq, r->name, r->id, now);
}

/* Claims up to want tasks of one queue into got[*ngot...]. *rows gets how
 * many rows the claim touched (claimed, expired or failed). */
static int claim(er_sq_t *sq, const er_reserve_req_t *req, const char *queue, size_t want,
                 const json_t *expired_err, claimed_t *got, size_t *ngot, size_t *rows) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_CLAIM, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, queue);
  sqlite3_bind_int64(st, 2, req->now_ms);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)want);
  er__sq_bind_text(st, 4, req->worker);
  sqlite3_bind_int64(st, 5, req->now_ms + req->lease_ms);
  er__sq_bind_json(st, 6, expired_err);
  size_t first = *ngot;
  *rows = 0;
  while ((rc = er__sq_step(sq, st, "reserve")) == SQLITE_ROW) {
    claimed_t c;
    er_rec_why_t why;
    if ((rc = er__sq_read_rec(sq, st, 0, &c.rec, &c.seq, &why))) break;
    ++*rows;
    if (c.rec->state != ER_STATE_REVOKED && why.why[0]) {
      /* Safe while stepping, as below. */
      rc = poison(sq, c.rec, &why, req->now_ms);
      er_task_rec_free(c.rec);
      if (rc) break;
      continue;
    }
    if (c.rec->state == ER_STATE_REVOKED) {
      /* Expired: finished now; its name starts its tombstone. Safe while
       * stepping: RETURNING rows are computed before the first one. */
      rc = er__sq_finished(sq, c.rec->name, c.rec->id, req->now_ms);
      er_task_rec_free(c.rec);
      if (rc) break;
      continue;
    }
    got[(*ngot)++] = c;
  }
  er__sq_done(st);
  if (rc != SQLITE_DONE) return rc; /* a negative ER_E* code */
  /* RETURNING gives rows in no particular order. */
  qsort(got + first, *ngot - first, sizeof *got, by_order);
  return 0;
}

/* Delayed tasks that fell due become ready, earliest first; bounded so that
 * one reserve never holds the lock for long (the rest follow next time). */
static const char SQL_PROMOTE[] =
    "UPDATE tasks SET ready = 1 WHERE seq IN (SELECT seq FROM tasks WHERE queued = 1 AND "
    "ready = 0 AND queue = ?1 AND eta_ms <= ?2 ORDER BY eta_ms LIMIT 10000)";

static int promote(er_sq_t *sq, const char *queue, int64_t now) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_PROMOTE, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, queue);
  sqlite3_bind_int64(st, 2, now);
  rc = er__sq_step(sq, st, "reserve (promote)");
  er__sq_done(st);
  if (rc < 0) return rc;
  /* Other workers of the queue may take what this reserve leaves. */
  return sqlite3_changes(sq->db) ? er__sq_owe_queue(sq, queue) : 0;
}

static int reserve_in_tx(er_sq_t *sq, const er_reserve_req_t *req, claimed_t *got,
                         size_t *ngot) {
  json_t *expired_err = er__store_error_json(ER_EREVOKED, "expired");
  if (!expired_err) return ER_ENOMEM;
  int rc = 0;
  for (size_t q = 0; !rc && q < req->nqueues; q++) rc = promote(sq, req->queues[q], req->now_ms);
  for (size_t q = 0; !rc && q < req->nqueues && *ngot < req->max; q++) {
    /* Expired tasks use up rows of a claim: claim again until full or dry. */
    for (;;) {
      size_t want = req->max - *ngot, rows;
      rc = claim(sq, req, req->queues[q], want, expired_err, got, ngot, &rows);
      if (rc || rows < want || *ngot == req->max) break;
    }
  }
  json_decref(expired_err);
  return rc;
}

/* Is anything due in the given queues? A plain read, which in WAL mode waits
 * for no writer: most reserves of an idle worker find nothing and then need
 * no write lock at all (the lock would delay every sender meanwhile). */
static const char SQL_ANY_DUE[] =
    "SELECT 1 FROM tasks WHERE ready = 1 AND queue = ?1 AND eta_ms <= ?2 UNION ALL "
    "SELECT 1 FROM tasks WHERE queued = 1 AND ready = 0 AND queue = ?1 AND eta_ms <= ?2 "
    "LIMIT 1";

static int any_due(er_sq_t *sq, const er_reserve_req_t *req, bool *due) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_ANY_DUE, &st);
  *due = false;
  for (size_t q = 0; !rc && q < req->nqueues && !*due; q++) {
    er__sq_bind_text(st, 1, req->queues[q]);
    sqlite3_bind_int64(st, 2, req->now_ms);
    rc = er__sq_step(sq, st, "reserve");
    *due = rc == SQLITE_ROW;
    er__sq_done(st);
    rc = rc < 0 ? rc : 0;
  }
  return rc;
}

int er__sq_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
                   size_t *n) {
  er_sq_t *sq = er__sq(s);
  bool due;
  int drc = any_due(sq, req, &due);
  if (drc) return drc;
  if (!due) {
    *out = NULL;
    *n = 0;
    return 0;
  }
  size_t cap = req->max < 4096 ? req->max : 4096;
  er_reserve_req_t r = *req;
  r.max = cap;
  claimed_t *got = er_calloc(cap, sizeof *got);
  if (!got) return ER_ENOMEM;
  size_t ngot = 0;
  int rc = er__sq_begin(sq);
  if (!rc) rc = er__sq_end(sq, reserve_in_tx(sq, &r, got, &ngot));
  er_task_rec_t **recs = NULL;
  if (!rc && ngot && !(recs = er_calloc(ngot, sizeof *recs))) rc = ER_ENOMEM;
  for (size_t i = 0; i < ngot; i++) {
    if (rc) er_task_rec_free(got[i].rec);
    else recs[i] = got[i].rec;
  }
  er_free(got);
  if (rc) return rc;
  *out = recs;
  *n = ngot;
  return 0;
}

/* ---- renew ------------------------------------------------------------------- */

static const char SQL_RENEW[] =
    "UPDATE tasks SET lease_until_ms = ?3 "
    "WHERE id = ?1 AND attempt = ?2 AND state = " ER__SQL_STARTED " "
    "RETURNING revoke_requested";

static int renew_in_tx(er_sq_t *sq, const char *const *ids, const int *attempts, size_t n,
                       int64_t until, bool *revoked, bool *fenced) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_RENEW, &st);
  for (size_t i = 0; !rc && i < n; i++) {
    er__sq_bind_text(st, 1, ids[i]);
    sqlite3_bind_int(st, 2, attempts[i]);
    sqlite3_bind_int64(st, 3, until);
    rc = er__sq_step(sq, st, "renew");
    if (revoked) revoked[i] = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    if (fenced) fenced[i] = rc == SQLITE_DONE;
    er__sq_done(st);
    rc = rc < 0 ? rc : 0;
  }
  return rc;
}

int er__sq_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                 int64_t lease_until_ms, bool *revoked, bool *fenced) {
  er_sq_t *sq = er__sq(s);
  int rc = er__sq_begin(sq);
  if (rc) return rc;
  return er__sq_end(sq, renew_in_tx(sq, ids, attempts, n, lease_until_ms, revoked, fenced));
}

/* ---- complete ---------------------------------------------------------------------- */

/* SUCCESS, FAILURE, REVOKED. The worker that ran it stays on the record. */
static const char SQL_FINISH[] =
    "UPDATE tasks SET state = ?3, queued = 0, finished_ms = ?4, "
    "result = CASE WHEN ignore_result THEN NULL ELSE ?5 END, error = ?6, lease_until_ms = NULL, "
    "result_expires_ms = " ER_SQ_RESULT_EXPIRES("?4") " "
    "WHERE id = ?1 AND attempt = ?2 AND state = " ER__SQL_STARTED " RETURNING name, queue";
/* RETRY: queued again for retry_eta_ms (ready at once when that is due),
 * counting a retry. */
static const char SQL_RETRY[] =
    "UPDATE tasks SET state = " ER__SQL_RETRY ", queued = 1, ready = ?3 <= ?4, eta_ms = ?3, "
    "retries = retries + 1, error = ?6, worker = NULL, lease_until_ms = NULL "
    "WHERE id = ?1 AND attempt = ?2 AND state = " ER__SQL_STARTED " RETURNING name, queue";
/* PENDING: a worker gives the task back (shutdown, or a task it lacks); no
 * retry is counted. A retry_eta_ms later than the task's eta delays it until
 * then (ready at once when that is due). */
static const char SQL_GIVE_BACK[] =
    "UPDATE tasks SET state = " ER__SQL_PENDING ", queued = 1, ready = max(eta_ms, ?3) <= ?4, "
    "eta_ms = max(eta_ms, ?3), worker = NULL, lease_until_ms = NULL "
    "WHERE id = ?1 AND attempt = ?2 AND state = " ER__SQL_STARTED " RETURNING name, queue";

/* One outcome; the three statements share their parameters: ?1 id, ?2
 * attempt, ?3 state or retry eta, ?4 now, ?5 result, ?6 error. */
int er__sq_complete_one(er_sq_t *sq, const er_completion_t *c, bool *fenced) {
  bool retry = c->state == ER_STATE_RETRY, back = c->state == ER_STATE_PENDING;
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, retry ? SQL_RETRY : back ? SQL_GIVE_BACK : SQL_FINISH, &st);
  if (rc) return rc;
  json_t *err = c->error ? json_incref(c->error)
                : c->state == ER_STATE_REVOKED ? er__store_error_json(ER_EREVOKED, "revoked")
                                               : NULL;
  int b = 0;
  b |= er__sq_bind_text(st, 1, c->id);
  b |= sqlite3_bind_int(st, 2, c->attempt);
  b |= sqlite3_bind_int64(st, 3, retry || back ? c->retry_eta_ms : (int64_t)c->state);
  b |= sqlite3_bind_int64(st, 4, c->now_ms);
  if (!back) {
    if (c->state == ER_STATE_SUCCESS) b |= er__sq_bind_json(st, 5, c->result);
    if (c->state == ER_STATE_REVOKED && !err) b = SQLITE_NOMEM;
    b |= er__sq_bind_json(st, 6, err);
  }
  json_decref(err);
  /* A value that cannot be encoded fails the call: recording the outcome
   * without it would lose the result for good. */
  if (b) {
    er__sq_done(st);
    return er__sq_fail(sq, SQLITE_NOMEM, "complete (encoding the outcome)");
  }
  rc = er__sq_step(sq, st, "complete");
  *fenced = rc == SQLITE_DONE;
  bool finished = rc == SQLITE_ROW && !retry && !back;
  char *name = NULL;
  if (rc == SQLITE_ROW && !finished) {
    rc = er__sq_owe_queue(sq, (const char *)sqlite3_column_text(st, 1));
  } else if (finished && sqlite3_column_type(st, 0) != SQLITE_NULL &&
             !(name = er_strdup((const char *)sqlite3_column_text(st, 0)))) {
    rc = ER_ENOMEM;
  }
  er__sq_done(st);
  if (rc >= 0 && finished) rc = er__sq_finished(sq, name, c->id, c->now_ms);
  er_free(name);
  return rc < 0 ? rc : 0;
}

static int complete_in_tx(er_sq_t *sq, const er_completion_t *cs, size_t n, bool *fenced) {
  int rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    bool f = false;
    rc = er__sq_complete_one(sq, &cs[i], &f);
    if (fenced) fenced[i] = f;
  }
  return rc;
}

int er__sq_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced) {
  er_sq_t *sq = er__sq(s);
  int rc = er__sq_begin(sq);
  if (rc) return rc;
  return er__sq_end(sq, complete_in_tx(sq, cs, n, fenced));
}

/* ---- progress ------------------------------------------------------------------------ */

static const char SQL_PROGRESS[] =
    "UPDATE tasks SET progress = ?3, progress_msg = ?4 "
    "WHERE id = ?1 AND attempt = ?2 AND state = " ER__SQL_STARTED;

int er__sq_progress(er_store_t *s, const char *id, int attempt, double progress,
                    const char *msg) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = er__sq_begin(sq);
  if (!rc) rc = er__sq_prep(sq, SQL_PROGRESS, &st);
  if (!rc) {
    er__sq_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_double(st, 3, progress);
    er__sq_bind_text(st, 4, msg);
    rc = er__sq_step(sq, st, "progress");
    er__sq_done(st);
    if (rc >= 0 && !sqlite3_changes(sq->db)) {
      er__store_set_error(s, "task %s attempt %d no longer owns its lease", id, attempt);
      rc = ER_EFENCED;
    }
    rc = rc < 0 ? rc : 0;
  }
  return er__sq_end(sq, rc);
}
