/*
 * due_bench: what one call costs the SQLite store, and whether it stays flat
 * with many tasks scheduled for later.
 *
 *   due_bench --path FILE [-n N] [--later L] [--no-counts]
 *       errand through the public API, on a new store at FILE:
 *       1. L tasks scheduled a day ahead, priority 9 (batches of 1000);
 *       2. N single-record er_store_enqueue calls, due now: enqueue_rate,
 *          and the CPU time each took (enqueue_cpu_us: steadier than rates on
 *          a shared machine);
 *       3. N reserve(max 1) + complete(SUCCESS) pairs: drain_rate,
 *          drain_cpu_us, and the reserve's latency (claim_*);
 *       4. with nothing due: the due check of a reserve (due_check_us) and
 *          next_due (next_due_us), 2000 calls each; stats once (stats_ms).
 *       --no-counts drops the triggers that keep the per-(queue, state)
 *       counts first, to measure what they cost (stats is then wrong).
 *   due_bench --raw --path FILE [-n N]
 *       the floor under those, on the same file system with the store's
 *       settings: one-row INSERT commits (raw_insert_rate), and a claim and
 *       a completion as two bare UPDATE commits on an indexed table
 *       (raw_pair_rate).
 *
 * Prints "R<TAB>key<TAB>value" lines (qbench_util.h).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errand/store.h"
#include "qbench_util.h"

static void unlink_store(const char *path) {
  static const char *const sfx[] = {"", "-wal", "-shm", "-bell"};
  char p[1024];
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) qb_die("%s: %s", sql, err);
}

static sqlite3 *raw_open(const char *path) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) qb_die("cannot open %s", path);
  exec(db, "PRAGMA journal_mode = WAL");
  exec(db, "PRAGMA synchronous = NORMAL");
  exec(db, "PRAGMA journal_size_limit = 67108864");
  return db;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    qb_die("prepare %s: %s", sql, sqlite3_errmsg(db));
  return st;
}

static void step_done(sqlite3 *db, sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) qb_die("step: %s", sqlite3_errmsg(db));
  sqlite3_reset(st);
}

static void raw(const char *path, long n) {
  unlink_store(path);
  sqlite3 *db = raw_open(path);
  exec(db, "CREATE TABLE t(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, queue TEXT, prio INTEGER, "
           "state INTEGER, args TEXT, created_ms INTEGER)");
  exec(db, "CREATE INDEX t_ready ON t(queue, prio DESC) WHERE state = 0");
  sqlite3_stmt *ins = prep(db, "INSERT INTO t(id, queue, prio, state, args, created_ms) "
                               "VALUES(?1, 'default', 0, 0, '[]', 0)");
  double t0 = qb_now();
  for (long i = 0; i < n; i++) {
    char id[64];
    snprintf(id, sizeof id, "0190f000-0000-7000-8000-%012ld", i);
    sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
    step_done(db, ins);
  }
  qb_result(NULL, "raw_insert_rate", (double)n / (qb_now() - t0));
  sqlite3_stmt *claim = prep(db, "UPDATE t SET state = 1 WHERE seq = (SELECT seq FROM t WHERE "
                                 "state = 0 AND queue = 'default' ORDER BY prio DESC, seq "
                                 "LIMIT 1) RETURNING seq");
  sqlite3_stmt *done = prep(db, "UPDATE t SET state = 3 WHERE seq = ?1 AND state = 1");
  t0 = qb_now();
  for (long i = 0; i < n; i++) {
    if (sqlite3_step(claim) != SQLITE_ROW) qb_die("raw claim: nothing");
    sqlite3_int64 seq = sqlite3_column_int64(claim, 0);
    step_done(db, claim);
    sqlite3_bind_int64(done, 1, seq);
    step_done(db, done);
  }
  qb_result(NULL, "raw_pair_rate", (double)n / (qb_now() - t0));
  sqlite3_finalize(ins);
  sqlite3_finalize(claim);
  sqlite3_finalize(done);
  sqlite3_close(db);
  unlink_store(path);
}

static er_task_rec_t *mk(long i, int64_t eta, int prio) {
  er_task_rec_t *r = er_task_rec_new();
  /* 12 digits: the id's last group (i stays far below 10^12) */
  snprintf(r->id, sizeof r->id, "0190f000-0000-7000-%04x-%012llu", (unsigned)prio % 0x10000,
           (unsigned long long)i % 1000000000000ULL);
  r->task = strdup("noop");
  r->queue = strdup("default");
  r->priority = prio;
  r->args = json_array();
  r->kwargs = json_object();
  r->created_ms = er_now_wall_ms();
  r->eta_ms = eta;
  return r;
}

static void fill_later(er_store_t *s, long later) {
  int64_t eta = er_now_wall_ms() + 86400000;
  double t0 = qb_now();
  for (long i = 0; i < later;) {
    er_task_rec_t *b[1000];
    size_t k = 0;
    for (; k < 1000 && i < later; k++, i++) b[k] = mk(i, eta + i, 9);
    int rc = er_store_enqueue(s, b, k, 0, NULL);
    if (rc) qb_die("enqueue later: %s: %s", er_err_name(rc), er_store_last_error(s));
    for (size_t j = 0; j < k; j++) er_task_rec_free(b[j]);
  }
  if (later) qb_result(NULL, "later_fill_s", qb_now() - t0);
}

static void store_bench(const char *path, long n, long later, bool no_counts) {
  unlink_store(path);
  char url[1100], err[256];
  snprintf(url, sizeof url, "sqlite:%s", path);
  er_store_t *s;
  if (er_store_open(url, &s, err, sizeof err)) qb_die("open: %s", err);
  if (no_counts) {
    sqlite3 *db = raw_open(path);
    exec(db, "DROP TRIGGER IF EXISTS tasks_count_insert; DROP TRIGGER IF EXISTS "
             "tasks_count_update; DROP TRIGGER IF EXISTS tasks_count_delete");
    sqlite3_close(db);
  }
  fill_later(s, later);
  double t0 = qb_now(), cpu0 = qb_self_cpu();
  for (long i = 0; i < n; i++) {
    er_task_rec_t *r = mk(i, er_now_wall_ms(), 0);
    int rc = er_store_enqueue(s, &r, 1, 0, NULL);
    if (rc) qb_die("enqueue: %s: %s", er_err_name(rc), er_store_last_error(s));
    er_task_rec_free(r);
  }
  qb_result(NULL, "enqueue_rate", (double)n / (qb_now() - t0));
  qb_result(NULL, "enqueue_cpu_us", (qb_self_cpu() - cpu0) * 1e6 / (double)n);
  const char *qs[] = {"default"};
  double *lat = n > 0 && n < (1L << 30) ? calloc((size_t)n, sizeof *lat) : NULL;
  if (!lat) qb_die("-n %ld: out of range", n);
  json_t *res = json_integer(1);
  t0 = qb_now();
  cpu0 = qb_self_cpu();
  for (long i = 0; i < n; i++) {
    er_reserve_req_t req = {qs, 1, "w", er_now_wall_ms(), 60000, 1};
    er_task_rec_t **got;
    size_t k;
    double c0 = qb_now();
    int rc = er_store_reserve(s, &req, &got, &k);
    lat[i] = qb_now() - c0;
    if (rc || k != 1) qb_die("reserve: %s (%zu)", er_err_name(rc), k);
    er_completion_t c = {got[0]->id, got[0]->attempt, ER_STATE_SUCCESS, res, NULL, 0,
                         er_now_wall_ms()};
    if ((rc = er_store_complete(s, &c, 1, NULL))) qb_die("complete: %s", er_err_name(rc));
    er_task_rec_free_array(got, k);
  }
  qb_result(NULL, "drain_rate", (double)n / (qb_now() - t0));
  qb_result(NULL, "drain_cpu_us", (qb_self_cpu() - cpu0) * 1e6 / (double)n);
  qb_latency_results("claim_", lat, (size_t)n);
  free(lat);
  json_decref(res);
  enum { CALLS = 2000 };
  t0 = qb_now();
  for (int i = 0; i < CALLS; i++) {
    er_reserve_req_t req = {qs, 1, "w", er_now_wall_ms(), 60000, 1};
    er_task_rec_t **got;
    size_t k;
    if (er_store_reserve(s, &req, &got, &k) || k) qb_die("reserve found work");
  }
  qb_result(NULL, "due_check_us", (qb_now() - t0) * 1e6 / CALLS);
  int64_t due;
  if (er_store_next_due(s, qs, 1, &due) == 0) {
    t0 = qb_now();
    for (int i = 0; i < CALLS; i++) er_store_next_due(s, qs, 1, &due);
    qb_result(NULL, "next_due_us", (qb_now() - t0) * 1e6 / CALLS);
  }
  json_t *st;
  t0 = qb_now();
  if (er_store_stats(s, &st) == 0) json_decref(st);
  qb_result(NULL, "stats_ms", (qb_now() - t0) * 1e3);
  er_store_close(s);
  unlink_store(path);
}

int main(int argc, char **argv) {
  const char *path = qb_opt(argc, argv, "--path", NULL);
  long n = qb_opt_long(argc, argv, "-n", 20000);
  long later = qb_opt_long(argc, argv, "--later", 0);
  bool is_raw = false, no_counts = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--raw") == 0) is_raw = true;
    if (strcmp(argv[i], "--no-counts") == 0) no_counts = true;
  }
  if (!path) qb_die("--path FILE is required");
  if (n <= 0 || later < 0) qb_die("-n must be positive and --later not negative");
  if (is_raw) raw(path, n);
  else store_bench(path, n, later, no_counts);
  return 0;
}
