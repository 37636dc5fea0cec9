/* Transition batches in the SQLite store: one BEGIN IMMEDIATE transaction
 * applies every mutation in order, each through the same code the single
 * calls use (er__sq_enqueue_one, er__sq_complete_one, the document and
 * counter mutations), so a later mutation sees the earlier ones' writes. The
 * first guard that fails rolls everything back. */
#include <string.h>

#include "store/sqlite_internal.h"

/* The task guard: the task exists (and its result has not expired, as get
 * sees it), in the given state and attempt. */
static const char SQL_GUARD[] =
    "SELECT state, attempt FROM tasks WHERE id = ?1 "
    "AND (result_expires_ms IS NULL OR result_expires_ms > ?2)";

static int task_guard(er_sq_t *sq, const er_mut_t *m) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_GUARD, &st);
  if (rc) return rc;
  er__sq_bind_text(st, 1, m->id);
  sqlite3_bind_int64(st, 2, er_now_wall_ms());
  rc = er__sq_step(sq, st, "task guard");
  er_task_state_t state = rc == SQLITE_ROW ? (er_task_state_t)sqlite3_column_int(st, 0)
                                           : ER_STATE_UNKNOWN;
  int attempt = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 0;
  er__sq_done(st);
  if (rc < 0) return rc;
  if (rc == SQLITE_DONE) {
    er__store_set_error(&sq->base, "task guard: no task with id '%s'", m->id);
    return ER_ENOENT;
  }
  if ((m->state != ER_STATE_UNKNOWN && state != m->state) ||
      (m->attempt > 0 && attempt != m->attempt)) {
    er__store_set_error(&sq->base, "task guard: task %s is %s at attempt %d, not %s at %d",
                        m->id, er_state_name(state), attempt, er_state_name(m->state),
                        m->attempt);
    return ER_ESTATE;
  }
  return 0;
}

/* One mutation. An enqueue that the key rule answered leaves its id in
 * found_id, copied into the record only once the batch commits. */
static int apply_one(er_sq_t *sq, const er_mut_t *m, er_mut_result_t *res, char *found_id) {
  switch (m->kind) {
    case ER_MUT_ENQUEUE:
      return er__sq_enqueue_one(sq, m->rec, m->flags, &res->existing, found_id);
    case ER_MUT_COMPLETE: {
      bool fenced = false;
      int rc = er__sq_complete_one(sq, &m->completion, &fenced);
      if (!rc && fenced) {
        er__store_set_error(&sq->base, "complete: task %s attempt %d no longer owns its lease",
                            m->completion.id, m->completion.attempt);
        rc = ER_EFENCED;
      }
      return rc;
    }
    case ER_MUT_TASK_GUARD:
      return task_guard(sq, m);
    case ER_MUT_DOC_PUT:
    case ER_MUT_DOC_MERGE:
    case ER_MUT_DOC_DEL:
      return er__sq_doc_mut(sq, m, res);
    case ER_MUT_COUNTER_ADD:
      return er__sq_counter_add(sq, m, res);
  }
  return ER_EINVAL; /* store_batch.c refused it already */
}

/* A guard that failed or a mutation refused, blamed on its index; any other
 * error (busy, I/O, memory) is the store's, blamed on none. */
static bool refused(int rc) {
  return rc == ER_EEXIST || rc == ER_ETOMBSTONED || rc == ER_ETOOBIG || rc == ER_EFENCED ||
         rc == ER_ENOENT || rc == ER_ESTATE || rc == ER_EINVAL;
}

int er__sq_apply(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
                 size_t *failed) {
  er_sq_t *sq = er__sq(s);
  er_mut_result_t *res = er_calloc(n, sizeof *res);
  char(*found_ids)[ER_ID_LEN + 1] = er_calloc(n, sizeof *found_ids);
  int rc = res && found_ids ? er__sq_begin(sq) : ER_ENOMEM;
  size_t bad = n;
  if (!rc) {
    for (size_t i = 0; !rc && i < n; i++) {
      rc = apply_one(sq, &muts[i], &res[i], found_ids[i]);
      if (rc && refused(rc)) bad = i;
    }
    rc = er__sq_end(sq, rc);
  }
  if (failed) *failed = rc ? bad : n;
  if (!rc) {
    for (size_t k = 0; k < n; k++)
      if (muts[k].kind == ER_MUT_ENQUEUE) {
        if (res[k].existing) memcpy(muts[k].rec->id, found_ids[k], sizeof found_ids[k]);
        else muts[k].rec->state = ER_STATE_PENDING;
      }
    if (results) memcpy(results, res, n * sizeof *res);
  }
  er_free(found_ids);
  er_free(res);
  return rc;
}
