/* The SQLite backend's private header: the handle, statement cache,
 * transactions and row helpers shared by src/store/sqlite_*.c.
 *
 *   sqlite_open.c    open/close, pragmas, file checks, the vtable
 *   sqlite_schema.c  the schema and its migrations
 *   sqlite_db.c      statement cache, errors, transactions, rows
 *   sqlite_tasks.c   enqueue, get, revoke, purge
 *   sqlite_work.c    reserve, renew, complete, progress
 *   sqlite_maint.c   maintain
 *   sqlite_admin.c   heartbeats, workers, stats
 *   sqlite_list.c    listing tasks
 *   sqlite_apply.c   transition batches (through the per-task enqueue and complete)
 *   sqlite_docs.c    documents and counters
 *   sqlite_watch.c   precise wake-ups (watch, read_wakeups), next_due
 *   sqlite_wake.c    cross-process doorbells (inotify) */
#ifndef ER_SQLITE_INTERNAL_H
#define ER_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store/store_internal.h"

/* The schema this code writes; a file with a larger one is refused. */
#define ER_SQ_SCHEMA_VERSION 4

typedef struct er_sq_stmt {
  const char *sql; /* the key: a static string's address */
  sqlite3_stmt *st;
} er_sq_stmt_t;

/* A doorbell file kept open for ringing: a queue's (by name hash), or -1. */
typedef struct er_sq_bell {
  uint64_t hash;
  int fd;
} er_sq_bell_t;
#define ER_SQ_BELL_CACHE 16

/* What a watched inotify descriptor stands for. */
typedef enum er_sq_bell_kind {
  ER_SQ_BELL_QUEUE,
  ER_SQ_BELL_DONE,
  ER_SQ_BELL_CTL
} er_sq_bell_kind_t;
typedef struct er_sq_wd {
  int wd;
  er_sq_bell_kind_t kind;
} er_sq_wd_t;

typedef struct er_sq {
  er_store_t base; /* first: er_store_t * and er_sq_t * convert */
  sqlite3 *db;
  char *path;
  /* The file was deleted or replaced under the handle (sqlite_db.c): every
   * write is refused from then on. */
  bool file_gone;
  int busy_ms;
  bool sync_full;
  unsigned mode; /* permission bits for files we create: the db, the bells */
  er_sq_stmt_t *stmts;
  size_t nstmts, capstmts;
  /* wake-ups (sqlite_wake.c) */
  int ifd;           /* inotify: the directory (all changes) or the watched bells; or -1 */
  int dir_wd;        /* the directory's watch, while the handle watches everything */
  char *bell_name;   /* PATH-bell: written after every commit that changed something */
  int bell_fd;
  int done_fd, ctl_fd; /* PATH-bell-done, PATH-bell-ctl when they exist, else -1 */
  er_sq_bell_t qbells[ER_SQ_BELL_CACHE]; /* queue bells open for ringing */
  size_t nqbells;
  /* Bells the transaction in progress owes, rung after it commits. */
  uint64_t *owed_q;
  size_t nowed_q, capowed_q;
  bool owed_done, owed_ctl;
  /* precise watching (sqlite_watch.c) */
  bool watching, w_finished, w_control, fin_started;
  er_sq_wd_t *wds;
  size_t nwds;
  bool got_work, got_control; /* seen since the last read_wakeups */
  int64_t fin_seen;           /* the last finished-log entry reported */
  /* Queues whose six counts rows this handle made sure of (sqlite_tasks.c);
   * those past nknown_q_committed are in the open transaction. */
  char **known_q;
  size_t nknown_q, nknown_q_committed, capknown_q;
  int64_t changes_at_begin; /* sqlite3_total_changes64 when the transaction began */
  uint64_t busy_since_ms;   /* when the current wait for a lock began */
  int64_t dv_seen;   /* PRAGMA data_version when a change was last reported */
} er_sq_t;

static inline er_sq_t *er__sq(er_store_t *s) { return (er_sq_t *)s; }

/* ---- sqlite_db.c ---- */

/* The prepared statement for sql (a static string: cached by its address),
 * reset and unbound when last used. 0 or an ER_E* code (error recorded). */
int er__sq_prep(er_sq_t *sq, const char *sql, sqlite3_stmt **out);
/* Steps st: SQLITE_ROW, SQLITE_DONE, or a negative ER_E* code (recorded). */
int er__sq_step(er_sq_t *sq, sqlite3_stmt *st, const char *what);
/* Resets st and clears its bindings. */
void er__sq_done(sqlite3_stmt *st);
/* Records SQLite's message for rc and returns the matching ER_E* code. */
int er__sq_fail(er_sq_t *sq, int rc, const char *what);
int er__sq_code(int rc);
/* The first column of the first row of a cached statement without
 * parameters into *out (left alone when there is no row). */
int er__sq_query_i64(er_sq_t *sq, const char *sql, const char *what, int64_t *out);
/* One statement without results (not cached: for open and migrations). */
int er__sq_exec(er_sq_t *sq, const char *sql, const char *what);

/* Write transactions: BEGIN IMMEDIATE, retried while SQLITE_BUSY for up to
 * busy_ms, so that a busy database delays a call but never fails one that
 * could have waited. */
int er__sq_begin(er_sq_t *sq);
/* The busy handler: short naps until busy_ms. */
int er__sq_busy_handler(void *ud, int count);
/* Rings the doorbell: tells watchers a commit is visible. */
void er__sq_ring(er_sq_t *sq);
int er__sq_commit(er_sq_t *sq);
void er__sq_rollback(er_sq_t *sq);
/* Sleeps *us microseconds plus jitter, then doubles *us (up to 10 ms). */
void er__sq_nap(unsigned *us);
/* Ends the transaction begun by er__sq_begin: commits when rc is 0, else rolls
 * back. Returns rc, or the commit's error. */
int er__sq_end(er_sq_t *sq, int rc);

/* Binds v as compact JSON text (NULL when v is NULL). */
int er__sq_bind_json(sqlite3_stmt *st, int idx, const json_t *v);
int er__sq_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Binds 0 as NULL (for optional times). */
int er__sq_bind_opt_ms(sqlite3_stmt *st, int idx, int64_t ms);

/* The task columns, in the order er__sq_read_rec expects. */
#define ER_SQ_TASK_COLS                                                                        \
  "id, task, queue, priority, state, args, kwargs, context, name, key, created_ms, eta_ms, "   \
  "expires_ms, started_ms, finished_ms, attempt, retries, max_retries, soft_limit_ms, "        \
  "hard_limit_ms, result_ttl_ms, ignore_result, revoke_requested, progress, progress_msg, "     \
  "result, error, worker, lease_until_ms, seq"
#define ER_SQ_TASK_NCOLS 30
/* A new record from the row at st, columns from col on. *seq (may be NULL)
 * gets the row's seq. A record that cannot be decoded (store_rec.c) is
 * ER_ECORRUPT when why is NULL; else it is returned, its bad values NULL,
 * with the reason in why (why->why[0] is 0 for a good record). */
int er__sq_read_rec(er_sq_t *sq, sqlite3_stmt *st, int col, er_task_rec_t **out, int64_t *seq,
                    er_rec_why_t *why);

/* SQL for when a task finishing at time parameter NOW forgets its result. */
#define ER_SQ_RESULT_EXPIRES(NOW)                                                   \
  "(CASE WHEN result_ttl_ms < 0 THEN NULL WHEN result_ttl_ms = 0 THEN " NOW " + 86400000 " \
  "ELSE " NOW " + result_ttl_ms END)"

/* What goes with a task finishing, in its transaction: its entry in the
 * finished log, the done bell, and its name's tombstone (name may be NULL). */
int er__sq_finished(er_sq_t *sq, const char *name, const char *id, int64_t now_ms);

/* Makes sure queue has its six rows in counts and task its six in
 * name_counts, which the triggers on tasks then only update
 * (sqlite_tasks.c). Once per queue (task name) and handle. */
int er__sq_counts_ensure(er_sq_t *sq, const char *queue, const char *task);
/* At the end of a transaction: keeps (committed) or forgets what it ensured. */
void er__sq_counts_settle(er_sq_t *sq, bool committed);
void er__sq_counts_free(er_sq_t *sq);

/* ---- sqlite_open.c ---- */

/* Whether the file at path is cut short ("'PATH': database file is
 * truncated ...") or not SQLite's ("'PATH' is corrupt (not an SQLite
 * database)"), from its header and size; the message goes to out. A missing
 * or empty file is fine (false). */
bool er__sq_file_problem(const char *path, char *out, size_t size);

/* ---- sqlite_schema.c ---- */

/* The SQL of migration step version (NULL if none): lets a test make a file
 * as an older errand did. */
const char *er__sq_migration_sql(int version);
/* The listing's statement (sqlite_list.c): after a cursor or not, filtered
 * by state (an er_task_state_t; -1: any state). For the tests' query plans. */
const char *er__sq_list_sql(bool after, int state);

/* Reads the file's schema version without writing (0: an empty database).
 * ER_ECORRUPT for a file that is not SQLite, a database that is not an errand
 * store, or one made by a newer errand. */
int er__sq_schema_read(er_sq_t *sq, int64_t *version, char *errmsg, size_t size);
/* Creates or migrates the schema from version (as read) to the current one. */
int er__sq_schema_upgrade(er_sq_t *sq, int64_t version, char *errmsg, size_t size);

/* ---- operations ---- */

int er__sq_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                   bool *existing);
int er__sq_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out);
int er__sq_revoke(er_store_t *s, const char *id, er_task_state_t *state);
int er__sq_purge(er_store_t *s, const char *queue, size_t *count);

int er__sq_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out, size_t *n);
int er__sq_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                 int64_t lease_until_ms, bool *revoked, bool *fenced);
int er__sq_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced);
int er__sq_progress(er_store_t *s, const char *id, int attempt, double progress,
                    const char *msg);
int er__sq_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts);

int er__sq_heartbeat(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms);
int er__sq_worker_gone(er_store_t *s, const char *worker_id);
int er__sq_workers(er_store_t *s, int64_t now_ms, json_t **out);
int er__sq_stats(er_store_t *s, json_t **out);
int er__sq_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                      size_t *n, char *next_cursor);

/* One task mutation each, inside a transaction begun by the caller: the
 * single calls (enqueue, complete) and er_store_apply share them.
 * enqueue_one (sqlite_tasks.c): *found and found_id when the key rule
 * returned a live task instead. complete_one (sqlite_work.c): *fenced when
 * the attempt no longer owns the task (nothing written). */
int er__sq_enqueue_one(er_sq_t *sq, const er_task_rec_t *r, int flags, bool *found,
                       char *found_id);
int er__sq_complete_one(er_sq_t *sq, const er_completion_t *c, bool *fenced);
/* sqlite_apply.c */
int er__sq_apply(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
                 size_t *failed);

/* sqlite_docs.c */
int er__sq_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                   int64_t *version);
int er__sq_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                    json_t **out);
int er__sq_counter_get(er_store_t *s, const char *coll, const char *key, int64_t *value);
/* The mutations on documents and counters, for sqlite_apply.c. */
int er__sq_doc_mut(er_sq_t *sq, const er_mut_t *m, er_mut_result_t *res);
int er__sq_counter_add(er_sq_t *sq, const er_mut_t *m, er_mut_result_t *res);

/* sqlite_watch.c: precise wake-ups and the next due time */
int er__sq_watch(er_store_t *s, const er_watch_t *w);
int er__sq_read_wakeups(er_store_t *s, er_wakeups_t *out);
int er__sq_next_due(er_store_t *s, const char *const *queues, size_t nqueues, int64_t *due_ms);
/* How many finished-log entries maintain keeps. */
#define ER_SQ_FINISHED_KEEP 100000
/* At most this many finished ids per read_wakeups; more set finished_overflow. */
#define ER_SQ_FINISHED_LIST_MAX 10000

/* sqlite_wake.c */
/* Notes a bell the transaction in progress owes: work on a queue, a task
 * finished, a running task revoked. Rung by er__sq_ring after the commit;
 * forgotten on rollback. */
int er__sq_owe_queue(er_sq_t *sq, const char *queue);
void er__sq_owe_done(er_sq_t *sq);
void er__sq_owe_ctl(er_sq_t *sq);
void er__sq_owe_clear(er_sq_t *sq);
/* The bell file for a queue, for finished tasks (suffix "done") or for
 * control ("ctl"): PATH-bell-q-HASH, PATH-bell-done, PATH-bell-ctl. */
uint64_t er__sq_queue_hash(const char *queue);
void er__sq_bell_path(const er_sq_t *sq, const char *suffix, uint64_t hash, char *out,
                      size_t size);
/* Creates PATH (never through a symlink) with exactly MODE: an fd, or -1
 * with errno (EEXIST when it exists; it is then left as it is). */
int er__sq_create_new(const char *path, int flags, unsigned mode);
/* Opens a bell into *out (O_NOFOLLOW; CREATE: made with sq->mode when
 * missing). *out is -1 when it cannot be opened (0 returned: the caller
 * copes); ER_EINVAL with last_error when it is a symlink, not a regular file
 * or not owned by our euid: something planted it. */
int er__sq_open_bell(er_sq_t *sq, const char *path, int flags, bool create, int *out);
/* Reads pending inotify events into the handle's flags; true when one is for
 * a bell this handle listens to. */
bool er__sq_drain(er_sq_t *sq);
int er__sq_wake_init(er_sq_t *sq);
void er__sq_wake_close(er_sq_t *sq);
int er__sq_wakeup_fd(er_store_t *s);
void er__sq_drain_wakeups(er_store_t *s);
int er__sq_wait_change(er_store_t *s, int timeout_ms);
/* PRAGMA data_version: changes when another connection commits. */
int er__sq_data_version(er_sq_t *sq, int64_t *out);

#endif
