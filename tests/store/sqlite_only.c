/* What only the SQLite store has: migrating a schema-1 file, claims and
 * counts that stay flat however many tasks wait for later (checked by the
 * work SQLite does, not by the clock), and the finished log's overflow.
 * Each test has its own file. */
#include <jansson.h>
#include <limits.h>

#include "conformance.h"
#include "store/sqlite_internal.h"

static void db_path(const fx_t *f, const char *name, char *out, size_t size) {
  snprintf(out, size, "%s/%s", f->dir, name);
}

static void exec_ok(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
}

static int64_t query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int64_t stat_of(er_store_t *s, const char *queue, const char *state) {
  json_t *st = NULL;
  assert_int_equal(er_store_stats(s, &st), 0);
  json_t *q = json_object_get(json_object_get(st, "queues"), queue);
  int64_t n = q ? json_integer_value(json_object_get(q, state)) : 0;
  json_decref(st);
  return n;
}

/* A file as errand with schema 1 made it, holding a task of each kind; the
 * next open migrates it. */
static void test_migrate_v1(void **state) {
  fx_t *f = *state;
  char path[256], url[300];
  db_path(f, "other.db", path, sizeof path);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  exec_ok(db, "PRAGMA journal_mode = WAL");
  exec_ok(db, er__sq_migration_sql(1));
  exec_ok(db, "INSERT INTO meta VALUES('schema_version', '1');"
              "INSERT INTO migrations VALUES(1, 'tasks, names, workers', 0)");
  int64_t t = now_ms();
  char sql[1024];
  snprintf(sql, sizeof sql,
           "INSERT INTO tasks(id, task, queue, priority, state, queued, args, kwargs, "
           "created_ms, eta_ms, lease_until_ms) VALUES"
           "('due', 't', 'q', 0, 0, 1, '[]', '{}', %lld, %lld, NULL),"
           "('later', 't', 'q', 9, 2, 1, '[]', '{}', %lld, %lld, NULL),"
           "('running', 't', 'q', 0, 1, 0, '[]', '{}', %lld, %lld, %lld),"
           "('done', 't', 'q', 0, 3, 0, '[]', '{}', %lld, %lld, NULL)",
           (long long)t, (long long)t - 1000, (long long)t, (long long)t + 100000, (long long)t,
           (long long)t, (long long)t + 50000, (long long)t, (long long)t);
  exec_ok(db, sql);
  sqlite3_close(db);

  snprintf(url, sizeof url, "sqlite:%s", path);
  er_store_t *s = NULL;
  char err[256];
  assert_int_equal(er_store_open(url, &s, err, sizeof err), 0);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(query_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"), 4);
  assert_int_equal(query_int(db, "SELECT count(*) FROM migrations"), 4);
  assert_int_equal(query_int(db, "SELECT ready FROM tasks WHERE id = 'due'"), 1);
  assert_int_equal(query_int(db, "SELECT ready FROM tasks WHERE id = 'later'"), 0);
  sqlite3_close(db);
  /* counts carried over, then kept */
  assert_int_equal(stat_of(s, "q", "PENDING"), 1);
  assert_int_equal(stat_of(s, "q", "RETRY"), 1);
  assert_int_equal(stat_of(s, "q", "STARTED"), 1);
  assert_int_equal(stat_of(s, "q", "SUCCESS"), 1);
  /* and by task name (schema 3) */
  json_t *stats = NULL;
  assert_int_equal(er_store_stats(s, &stats), 0);
  json_t *by_name = json_object_get(json_object_get(stats, "names"), "t");
  assert_int_equal(json_integer_value(json_object_get(by_name, "PENDING")), 1);
  assert_int_equal(json_integer_value(json_object_get(by_name, "RETRY")), 1);
  assert_int_equal(json_integer_value(json_object_get(by_name, "SUCCESS")), 1);
  json_decref(stats);
  const char *qs[] = {"q"};
  int64_t due = 0;
  assert_int_equal(er_store_next_due(s, qs, 1, &due), 0);
  assert_int_equal(due, t + 50000); /* the lease ends before 'later' is due */
  er_reserve_req_t req = {qs, 1, "w", t, 1000, 5};
  er_task_rec_t **got = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, "due");
  er_task_rec_free_array(got, n);
  req.now_ms = t + 100000;
  assert_int_equal(er_store_reserve(s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, "later");
  er_task_rec_free_array(got, n);
  assert_int_equal(stat_of(s, "q", "STARTED"), 3);
  assert_int_equal(stat_of(s, "q", "RETRY"), 0);
  assert_int_equal(er_store_stats(s, &stats), 0);
  by_name = json_object_get(json_object_get(stats, "names"), "t");
  assert_int_equal(json_integer_value(json_object_get(by_name, "STARTED")), 3);
  assert_int_equal(json_integer_value(json_object_get(by_name, "RETRY")), 0);
  json_decref(stats);
  er_store_close(s);
}

/* ---- work done, by SQLite's own count of its virtual machine's steps ------------ */

static void steps_reset(er_store_t *s) {
  er_sq_t *sq = er__sq(s);
  for (size_t i = 0; i < sq->nstmts; i++)
    sqlite3_stmt_status(sq->stmts[i].st, SQLITE_STMTSTATUS_VM_STEP, 1);
}

static int64_t steps(er_store_t *s) {
  er_sq_t *sq = er__sq(s);
  int64_t n = 0;
  for (size_t i = 0; i < sq->nstmts; i++)
    n += sqlite3_stmt_status(sq->stmts[i].st, SQLITE_STMTSTATUS_VM_STEP, 1);
  return n;
}

/* Steps a call may take whatever the number of tasks for later: a claim is
 * a few hundred (the row, its 30 columns, the count trigger). */
#define N_LATER 200000
#define FLAT_STEPS 2000

/* 200,000 tasks scheduled for later, of a higher priority than the due one,
 * are not visited by a reserve, the due check, next_due or stats: each costs
 * the same few hundred steps as with none (a walk over them would cost
 * several per task). */
static void test_flat_with_tasks_for_later(void **state) {
  fx_t *f = *state;
  int64_t t = now_ms();
  for (int i = 0; i < N_LATER; i += 10000) {
    er_task_rec_t *recs[10000];
    for (int k = 0; k < 10000; k++) {
      recs[k] = mk(f, "later");
      recs[k]->priority = 9;
      recs[k]->eta_ms = t + 1000000 + i + k;
    }
    assert_int_equal(er_store_enqueue(f->s, recs, 10000, 0, NULL), 0);
    for (int k = 0; k < 10000; k++) er_task_rec_free(recs[k]);
  }
  er_task_rec_t *due = mk(f, "due");
  assert_int_equal(enq(f, due), 0);
  er_store_t *h = open_with(f, "");
  const char *qs[] = {f->queue};
  int64_t now = now_ms();
  /* prepare every statement once, then measure */
  int64_t d;
  json_t *st;
  assert_int_equal(er_store_next_due(h, qs, 1, &d), 0);
  assert_int_equal(er_store_stats(h, &st), 0);
  json_decref(st);
  er_reserve_req_t req = {qs, 1, "w", now, 2000000, 1}; /* leases end after the etas */
  er_task_rec_t **got = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(h, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, due->id);
  er_task_rec_free_array(got, n);
  steps_reset(h);
  assert_int_equal(er_store_reserve(h, &req, &got, &n), 0); /* the due check finds none */
  assert_int_equal(n, 0);
  int64_t check = steps(h);
  er_task_rec_free(due);
  due = mk(f, "due");
  due->eta_ms = due->created_ms = now;
  assert_int_equal(enq(f, due), 0);
  steps_reset(h);
  assert_int_equal(er_store_reserve(h, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, due->id);
  er_task_rec_free_array(got, n);
  int64_t claim = steps(h);
  assert_int_equal(er_store_next_due(h, qs, 1, &d), 0);
  assert_int_equal(d, t + 1000000);
  int64_t next = steps(h);
  assert_int_equal(er_store_stats(h, &st), 0);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(json_object_get(st, "queues"), f->queue), "PENDING")),
                   N_LATER);
  json_decref(st);
  int64_t stats = steps(h);
  /* a page of tasks walks the id index from its cursor: 10 rows, not all */
  er_task_list_req_t lreq = {.limit = 10};
  er_task_rec_t **page = NULL;
  char cursor[ER_ID_LEN + 1], after[ER_ID_LEN + 1];
  assert_int_equal(er_store_list_tasks(h, &lreq, &page, &n, cursor), 0);
  er_task_rec_free_array(page, n);
  lreq.cursor = cursor;
  assert_int_equal(er_store_list_tasks(h, &lreq, &page, &n, after), 0); /* prepared */
  er_task_rec_free_array(page, n);
  steps_reset(h);
  assert_int_equal(er_store_list_tasks(h, &lreq, &page, &n, after), 0);
  assert_int_equal(n, 10);
  er_task_rec_free_array(page, n);
  int64_t list = steps(h);
  print_message("steps: due check %lld, claim %lld, next_due %lld, stats %lld, a page of 10 "
                "tasks %lld (%d later)\n",
                (long long)check, (long long)claim, (long long)next, (long long)stats,
                (long long)list, N_LATER);
  assert_true(list < FLAT_STEPS);
  assert_true(check < FLAT_STEPS);
  assert_true(claim < FLAT_STEPS);
  assert_true(next < FLAT_STEPS);
  assert_true(stats < FLAT_STEPS);
  er_store_close(h);
  er_task_rec_free(due);
}

/* The counts the triggers keep equal a count of the tasks, through every
 * kind of transition. */
static void test_counts_match(void **state) {
  fx_t *f = *state;
  int64_t t = now_ms();
  er_task_rec_t *r[6];
  for (int i = 0; i < 6; i++) {
    r[i] = mk(f, "t");
    r[i]->eta_ms = r[i]->created_ms = t;
    assert_int_equal(enq(f, r[i]), 0);
  }
  er_task_rec_t **got = NULL;
  assert_int_equal(reserve_at(f, 4, t, 10, &got), 4);
  json_t *err = json_string("e");
  complete1(f, got[0]->id, got[0]->attempt, ER_STATE_SUCCESS, NULL, NULL, t, 0);
  complete1(f, got[1]->id, got[1]->attempt, ER_STATE_RETRY, NULL, err, t, t + 5);
  complete1(f, got[2]->id, got[2]->attempt, ER_STATE_FAILURE, NULL, err, t, 0);
  assert_int_equal(er_store_revoke(f->s, r[5]->id, NULL), 0);
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, t + 100, &mc), 0); /* got[3]'s lease ended */
  assert_int_equal(mc.requeued, 1);
  size_t purged = 0;
  assert_int_equal(er_store_purge(f->s, f->queue, &purged), 0);
  assert_int_equal(purged, 3); /* the retry, the requeued and the never reserved */
  er_task_rec_free_array(got, 4);
  char path[256];
  db_path(f, "store.db", path, sizeof path);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(query_int(db, "SELECT count(*) FROM (SELECT queue, state, count(*) AS n FROM "
                                 "tasks GROUP BY 1, 2 EXCEPT SELECT queue, state, n FROM counts "
                                 "WHERE n > 0)"),
                   0);
  assert_int_equal(query_int(db, "SELECT count(*) FROM counts WHERE n < 0"), 0);
  sqlite3_close(db);
  assert_int_equal(stat_of(f->s, f->queue, "SUCCESS"), 1);
  assert_int_equal(stat_of(f->s, f->queue, "FAILURE"), 1);
  assert_int_equal(stat_of(f->s, f->queue, "REVOKED"), 1);
  assert_int_equal(stat_of(f->s, f->queue, "PENDING"), 0);
  json_decref(err);
  for (int i = 0; i < 6; i++) er_task_rec_free(r[i]);
}

/* More finished tasks than one read lists: finished_overflow, then the
 * record goes on from the newest. */
static void test_finished_overflow(void **state) {
  fx_t *f = *state;
  er_store_t *w = open_with(f, "");
  er_watch_t ws = {NULL, 0, true, false};
  assert_int_equal(er_store_watch(w, &ws), 0);
  er_wakeups_t wk;
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  enum { N = ER_SQ_FINISHED_LIST_MAX + 1 };
  er_task_rec_t **recs = calloc(N, sizeof *recs);
  int64_t t = now_ms();
  for (int i = 0; i < N; i++) {
    recs[i] = mk(f, "t");
    recs[i]->eta_ms = recs[i]->created_ms = t;
    recs[i]->expires_ms = t + 1; /* a reserve at t + 2 finds them all expired */
  }
  assert_int_equal(er_store_enqueue(f->s, recs, N, 0, NULL), 0);
  er_task_rec_t **got = NULL;
  assert_int_equal(reserve_at(f, 1, t + 2, 1000, &got), 0);
  er_task_rec_free_array(got, 0);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_true(wk.finished_overflow);
  assert_int_equal(wk.nfinished, 0);
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  assert_int_equal(er_store_revoke(f->s, r->id, NULL), 0);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_false(wk.finished_overflow);
  assert_int_equal(wk.nfinished, 1);
  assert_string_equal(wk.finished[0], r->id);
  er_wakeups_clear(&wk);
  er_task_rec_free(r);
  for (int i = 0; i < N; i++) er_task_rec_free(recs[i]);
  free(recs);
  er_store_close(w);
}

/* Promotion (a delayed task fell due and became ready) rings its queue's bell:
 * other workers of the queue may take what the promoting reserve leaves. */
static void test_promotion_rings(void **state) {
  fx_t *f = *state;
  er_store_t *w = open_with(f, "");
  const char *qs[] = {f->queue};
  er_watch_t ws = {qs, 1, false, false};
  assert_int_equal(er_store_watch(w, &ws), 0);
  int64_t t = now_ms();
  er_task_rec_t *r[2];
  for (int i = 0; i < 2; i++) {
    r[i] = mk(f, "t");
    r[i]->eta_ms = t + 1000; /* delayed */
    assert_int_equal(enq(f, r[i]), 0);
  }
  er_wakeups_t wk;
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_true(wk.work); /* the enqueues */
  er_task_rec_t **got = NULL;
  assert_int_equal(reserve_at(f, 1, t + 999, 1000, &got), 0); /* not due: no promotion */
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_false(wk.work);
  assert_int_equal(reserve_at(f, 1, t + 1000, 1000, &got), 1); /* promotes both, takes one */
  er_task_rec_free_array(got, 1);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_true(wk.work);
  for (int i = 0; i < 2; i++) er_task_rec_free(r[i]);
  er_store_close(w);
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static void assert_file_is(const char *path, const char *text) {
  char buf[64] = {0};
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = 0;
  assert_string_equal(buf, text);
}

static unsigned mode_of(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_mode & 07777;
}

/* A symlink planted at PATH-bell would have us write through it into any file
 * we can write: the open refuses it, naming the file, and leaves the victim. */
static void test_bell_symlink_refused(void **state) {
  fx_t *f = *state;
  char path[256], url[300], victim[256], bell[300], err[256] = "";
  db_path(f, "victim", victim, sizeof victim);
  db_path(f, "planted.db", path, sizeof path);
  write_file(victim, "precious");
  snprintf(bell, sizeof bell, "%s-bell", path);
  assert_int_equal(symlink(victim, bell), 0);
  snprintf(url, sizeof url, "sqlite:%s", path);
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EINVAL);
  assert_null(s);
  assert_non_null(strstr(err, bell));
  assert_file_is(victim, "precious");
  /* a FIFO is refused too, and without blocking the open */
  assert_int_equal(unlink(bell), 0);
  assert_int_equal(mkfifo(bell, 0600), 0);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EINVAL);
  assert_int_equal(unlink(bell), 0);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), 0);
  er_store_close(s);
}

/* Planted precise bells: a ringer does not write through them (the commit
 * still succeeds), and a watcher refuses to watch them. */
static void test_precise_bell_symlink_refused(void **state) {
  fx_t *f = *state;
  char victim[256], bell[512];
  db_path(f, "victim", victim, sizeof victim);
  write_file(victim, "precious");
  er_sq_t *sq = er__sq(f->s);
  er__sq_bell_path(sq, NULL, er__sq_queue_hash(f->queue), bell, sizeof bell);
  assert_int_equal(symlink(victim, bell), 0);
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  er_task_rec_free(r);
  assert_file_is(victim, "precious");
  er_store_t *w = open_with(f, "");
  const char *qs[] = {f->queue};
  er_watch_t ws = {qs, 1, false, false};
  assert_int_equal(er_store_watch(w, &ws), ER_EINVAL);
  assert_non_null(strstr(er_store_last_error(w), bell));
  er_store_close(w);
  assert_file_is(victim, "precious");
}

/* New files are private (0600) whatever the umask allows, or ?mode=; SQLite
 * gives -wal and -shm the database's mode; an existing file keeps its own. */
static void check_modes(fx_t *f, const char *name, const char *opts, unsigned want) {
  char path[256], url[300], other[300];
  db_path(f, name, path, sizeof path);
  snprintf(url, sizeof url, "sqlite:%s%s", path, opts);
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(url, &s, NULL, 0), 0);
  const char *qs[] = {f->queue};
  er_watch_t ws = {qs, 1, true, true};
  assert_int_equal(er_store_watch(s, &ws), 0);
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
  er_task_rec_free(r);
  assert_int_equal(mode_of(path), want);
  const char *suffixes[] = {"-wal", "-shm", "-bell", "-bell-done", "-bell-ctl"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    snprintf(other, sizeof other, "%s%s", path, suffixes[i]);
    assert_int_equal(mode_of(other), want);
  }
  er__sq_bell_path(er__sq(s), NULL, er__sq_queue_hash(f->queue), other, sizeof other);
  assert_int_equal(mode_of(other), want);
  er_store_close(s);
}

static void test_file_modes(void **state) {
  fx_t *f = *state;
  mode_t old = umask(022);
  check_modes(f, "private.db", "", 0600);
  check_modes(f, "shared.db", "?mode=0640", 0640);
  /* the option is exact: the umask does not take group read away */
  umask(077);
  check_modes(f, "exact.db", "?mode=0640", 0640);
  umask(022);
  char path[256], url[300], err[256];
  db_path(f, "existing.db", path, sizeof path);
  write_file(path, "");
  assert_int_equal(chmod(path, 0604), 0);
  snprintf(url, sizeof url, "sqlite:%s", path);
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(url, &s, NULL, 0), 0);
  er_store_close(s);
  assert_int_equal(mode_of(path), 0604);
  const char *bad[] = {"8", "0644x", "", "01600", "0400", "-600", "0o600", "064000"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(url, sizeof url, "sqlite:%s?mode=%s", path, bad[i]);
    err[0] = 0;
    assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EINVAL);
    assert_non_null(strstr(err, "mode="));
    assert_null(strchr(err, '\n'));
  }
  umask(old);
}

/* Copies the first n bytes of from to to (n 0: all of it). */
static void copy_head(const char *from, const char *to, long n) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  assert_true(in && out);
  char buf[4096];
  size_t got;
  long left = n ? n : LONG_MAX;
  while (left > 0 && (got = fread(buf, 1, left < (long)sizeof buf ? (size_t)left : sizeof buf,
                                  in)) > 0) {
    assert_int_equal(fwrite(buf, 1, got, out), got);
    left -= (long)got;
  }
  fclose(in);
  fclose(out);
}

/* Opening path fails ER_ECORRUPT with a message holding want (and one line). */
static void assert_open_says(const char *path, const char *want) {
  char url[300], err[256] = "";
  snprintf(url, sizeof url, "sqlite:%s", path);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc != ER_ECORRUPT || !strstr(err, want))
    fail_msg("open %s: %s '%s', want ECORRUPT '%s'", path, er_err_name(rc), err, want);
  assert_null(s);
  assert_null(strchr(err, '\n'));
}

/* A database cut short (a copy that stopped, a full disk) is reported as
 * truncated, at a page boundary or inside a page, even where the pages that
 * open reads are whole; a file that is not SQLite's as corrupt. */
static void test_truncated_file(void **state) {
  fx_t *f = *state;
  json_t *big = json_pack("[s]", "0123456789abcdef0123456789abcdef0123456789abcdef");
  for (int i = 0; i < 300; i++) {
    er_task_rec_t *r = mk(f, "t");
    json_decref(r->args);
    r->args = json_incref(big);
    assert_int_equal(enq(f, r), 0);
    er_task_rec_free(r);
  }
  json_decref(big);
  er_store_close(f->s); /* the last close checkpoints: the file is whole */
  f->s = NULL;
  char whole[256], cut[256];
  db_path(f, "store.db", whole, sizeof whole);
  struct stat sb;
  assert_int_equal(stat(whole, &sb), 0);
  assert_true(sb.st_size > 64 * 1024);
  const long at[] = {8192, 8192 + 1000, (long)sb.st_size - 4096, (long)sb.st_size - 100, 50};
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    snprintf(cut, sizeof cut, "%s/cut-%zu.db", f->dir, i);
    copy_head(whole, cut, at[i]);
    assert_open_says(cut, "database file is truncated");
  }
  /* the whole copy opens, and its tasks are there */
  snprintf(cut, sizeof cut, "%s/copy.db", f->dir);
  copy_head(whole, cut, 0);
  char url[300];
  snprintf(url, sizeof url, "sqlite:%s", cut);
  assert_int_equal(er_store_open(url, &f->s, NULL, 0), 0);
  /* garbage, and a text file */
  snprintf(cut, sizeof cut, "%s/garbage.db", f->dir);
  FILE *fp = fopen(cut, "wb");
  for (int i = 0; i < 8192; i++) fputc((i * 7919) & 0xff, fp);
  fclose(fp);
  assert_open_says(cut, "is corrupt (not an SQLite database)");
  write_file(cut, "just some text\n");
  assert_open_says(cut, "is corrupt (not an SQLite database)");
}

/* A cut file beside a -wal (whose writer may be mid-checkpoint, so open does
 * not judge by size): the first read that meets the cut says it. */
static void test_truncated_beside_wal(void **state) {
  fx_t *f = *state;
  for (int i = 0; i < 300; i++) {
    er_task_rec_t *r = mk(f, "t");
    r->key = tagged(f, "k");
    assert_int_equal(enq(f, r), 0);
    er_task_rec_free(r);
  }
  er_store_close(f->s);
  f->s = NULL;
  char whole[256], cut[256], wal[300];
  db_path(f, "store.db", whole, sizeof whole);
  snprintf(cut, sizeof cut, "%s/cut.db", f->dir);
  copy_head(whole, cut, 3 * 4096);
  snprintf(wal, sizeof wal, "%s-wal", cut);
  write_file(wal, "not a wal, but not empty either");
  char url[300], err[256] = "";
  snprintf(url, sizeof url, "sqlite:%s", cut);
  int rc = er_store_open(url, &f->s, err, sizeof err);
  if (rc == 0) {
    json_t *st = NULL;
    rc = er_store_stats(f->s, &st);
    json_decref(st);
    if (rc == 0) {
      er_task_rec_t *r = NULL;
      rc = er_store_get(f->s, NULL, "no-such-key", &r);
      if (rc == ER_ENOENT) rc = 0;
    }
    snprintf(err, sizeof err, "%s", er_store_last_error(f->s));
  }
  assert_int_equal(rc, ER_ECORRUPT);
  if (!strstr(err, "database file is truncated")) fail_msg("message: %s", err);
}

int main(void) {
  g_base = NULL; /* a file per test */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_migrate_v1),        T(test_flat_with_tasks_for_later), T(test_counts_match),
      T(test_finished_overflow), T(test_promotion_rings),    T(test_bell_symlink_refused),
      T(test_precise_bell_symlink_refused), T(test_file_modes), T(test_truncated_file),
      T(test_truncated_beside_wal),
  };
  return cmocka_run_group_tests_name("store (sqlite only)", tests, NULL, NULL);
}
