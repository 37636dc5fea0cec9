/* The store conformance suite, continued: results, purge, stats, heartbeats,
 * SQLite files, wake-ups and many processes. */
#include "conformance.h"
#include "store/sqlite_internal.h"

/* ---- results, purge, stats, heartbeats ---------------------------------------------- */

void test_result_ttl(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t"), *keep = mk(f, "t"), *dflt = mk(f, "t");
  r->result_ttl_ms = 200;
  keep->result_ttl_ms = -1;
  er_task_rec_t *rs[] = {r, keep, dflt};
  assert_int_equal(er_store_enqueue(f->s, rs, 3, 0, NULL), 0);
  er_task_rec_t **got;
  size_t n = reserve_at(f, 3, now_ms(), 10000, &got);
  assert_int_equal(n, 3);
  int64_t t = now_ms();
  json_t *res = json_integer(5);
  for (size_t i = 0; i < n; i++)
    assert_false(complete1(f, got[i]->id, got[i]->attempt, ER_STATE_SUCCESS, res, NULL, t, 0));
  er_task_rec_free_array(got, n);
  er_task_rec_t *g = get(f, r->id);
  assert_json_eq(g->result, res);
  er_task_rec_free(g);
  sleep_ms(300);
  /* past its TTL it reads as gone, and maintain deletes it */
  assert_int_equal(get_rc(f, r->id), ER_ENOENT);
  /* A store shared by the tests (a URL given) also holds the other tests'
   * results, which the far-future times below expire too: there, the counts
   * are at least ours, and get tells whether ours went or stayed. */
  bool alone = f->dir[0] != 0;
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, now_ms(), &mc), 0);
  if (alone) assert_int_equal(mc.expired_results, 1);
  else assert_true(mc.expired_results >= 1);
  assert_int_equal(get_rc(f, keep->id), 0);
  assert_int_equal(get_rc(f, dflt->id), 0);
  /* the default keeps a result a day; -1 keeps it forever */
  assert_int_equal(er_store_maintain(f->s, t + 86400000 - 1, &mc), 0);
  if (alone) assert_int_equal(mc.expired_results, 0);
  assert_int_equal(get_rc(f, dflt->id), 0);
  assert_int_equal(er_store_maintain(f->s, t + 86400000, &mc), 0);
  if (alone) assert_int_equal(mc.expired_results, 1);
  else assert_true(mc.expired_results >= 1);
  assert_int_equal(get_rc(f, dflt->id), ER_ENOENT);
  assert_int_equal(er_store_maintain(f->s, t + 100LL * 365 * 86400000, &mc), 0);
  if (alone) assert_int_equal(mc.expired_results, 0);
  assert_int_equal(get_rc(f, keep->id), 0);
  json_decref(res);
  for (int i = 0; i < 3; i++) er_task_rec_free(rs[i]);
}

void test_purge(void **state) {
  fx_t *f = *state;
  er_task_rec_t *rs[4];
  for (int i = 0; i < 4; i++) rs[i] = mk(f, "t");
  rs[3]->name = tagged(f, "purged");
  rs[2]->eta_ms += 3600000; /* scheduled tasks are purged too */
  assert_int_equal(er_store_enqueue(f->s, rs, 4, 0, NULL), 0);
  er_task_rec_t *run = reserve1(f, now_ms(), 60000);
  size_t count = 0;
  assert_int_equal(er_store_purge(f->s, f->queue, &count), 0);
  assert_int_equal(count, 3);
  assert_int_equal(get_rc(f, run->id), 0); /* the running one stays */
  for (int i = 0; i < 4; i++)
    if (strcmp(rs[i]->id, run->id) != 0) assert_int_equal(get_rc(f, rs[i]->id), ER_ENOENT);
  er_task_rec_t **got;
  assert_int_equal(reserve_at(f, 5, now_ms() + 7200000, 100, &got), 0);
  er_task_rec_free_array(got, 0);
  assert_int_equal(er_store_purge(f->s, f->queue, &count), 0);
  assert_int_equal(count, 0);
  er_task_rec_free(run);
  for (int i = 0; i < 4; i++) er_task_rec_free(rs[i]);
}

static json_int_t count_of(json_t *stats, const char *queue, const char *state) {
  json_t *q = queue ? json_object_get(json_object_get(stats, "queues"), queue)
                    : json_object_get(stats, "total");
  return json_integer_value(json_object_get(q, state));
}

void test_stats(void **state) {
  fx_t *f = *state;
  er_task_rec_t *rs[4];
  for (int i = 0; i < 4; i++) rs[i] = mk(f, "t");
  assert_int_equal(er_store_enqueue(f->s, rs, 4, 0, NULL), 0);
  er_task_rec_t *a = reserve1(f, now_ms(), 60000), *b = reserve1(f, now_ms(), 60000);
  json_t *res = json_null();
  complete1(f, b->id, b->attempt, ER_STATE_SUCCESS, res, NULL, now_ms(), 0);
  json_t *st = NULL;
  assert_int_equal(er_store_stats(f->s, &st), 0);
  assert_int_equal(count_of(st, f->queue, "PENDING"), 2);
  assert_int_equal(count_of(st, f->queue, "STARTED"), 1);
  assert_int_equal(count_of(st, f->queue, "SUCCESS"), 1);
  assert_int_equal(count_of(st, f->queue, "FAILURE"), 0);
  assert_non_null(json_object_get(json_object_get(json_object_get(st, "queues"), f->queue),
                                  "REVOKED"));
  assert_true(count_of(st, NULL, "PENDING") >= 2);
  assert_true(count_of(st, NULL, "SUCCESS") >= 1);
  json_decref(st);
  json_decref(res);
  er_task_rec_free(a);
  er_task_rec_free(b);
  for (int i = 0; i < 4; i++) er_task_rec_free(rs[i]);
}

static json_t *find_worker(json_t *arr, const char *id) {
  size_t i;
  json_t *w;
  json_array_foreach(arr, i, w) {
    if (strcmp(json_string_value(json_object_get(w, "id")), id) == 0) return w;
  }
  return NULL;
}

void test_heartbeats(void **state) {
  fx_t *f = *state;
  char *w1 = tagged(f, "w1"), *w2 = tagged(f, "w2");
  int64_t t = now_ms();
  json_t *i1 = json_pack("{s:s, s:i}", "id", w1, "slots", 4);
  json_t *i2 = json_pack("{s:s}", "id", w2);
  assert_int_equal(er_store_heartbeat(f->s, i1, t, 100), 0);
  assert_int_equal(er_store_heartbeat(f->s, i2, t, 1000), 0);
  json_t *bad = json_pack("{s:i}", "slots", 1);
  assert_int_equal(er_store_heartbeat(f->s, bad, t, 100), ER_EINVAL);
  json_decref(bad);
  json_t *ws = NULL;
  assert_int_equal(er_store_workers(f->s, t + 50, &ws), 0);
  json_t *w = find_worker(ws, w1);
  assert_non_null(w);
  assert_int_equal(json_integer_value(json_object_get(w, "slots")), 4);
  assert_int_equal(json_integer_value(json_object_get(w, "heartbeat_ms")), t);
  assert_non_null(find_worker(ws, w2));
  json_decref(ws);
  /* w1's beat expires */
  assert_int_equal(er_store_workers(f->s, t + 100, &ws), 0);
  assert_null(find_worker(ws, w1));
  assert_non_null(find_worker(ws, w2));
  json_decref(ws);
  /* a new beat brings it back; gone removes it */
  assert_int_equal(er_store_heartbeat(f->s, i1, t + 200, 100), 0);
  assert_int_equal(er_store_worker_gone(f->s, w2), 0);
  assert_int_equal(er_store_workers(f->s, t + 250, &ws), 0);
  assert_non_null(find_worker(ws, w1));
  assert_null(find_worker(ws, w2));
  json_decref(ws);
  assert_int_equal(er_store_maintain(f->s, t + 400, NULL), 0);
  json_decref(i1);
  json_decref(i2);
  er_free(w1);
  er_free(w2);
}

void test_too_big(void **state) {
  fx_t *f = *state;
  er_store_t *s = open_with(f, "max_payload=100");
  er_task_rec_t *ok = mk(f, "t"), *big = mk(f, "t");
  char blob[200];
  memset(blob, 'x', sizeof blob - 1);
  blob[sizeof blob - 1] = 0;
  json_array_append_new(big->args, json_string(blob));
  er_task_rec_t *rs[] = {ok, big};
  assert_int_equal(er_store_enqueue(s, rs, 2, 0, NULL), ER_ETOOBIG);
  assert_non_null(strstr(er_store_last_error(s), "max_payload"));
  assert_int_equal(get_rc(f, ok->id), ER_ENOENT);
  assert_int_equal(get_rc(f, big->id), ER_ENOENT);
  /* the limit counts args + kwargs + context together */
  json_array_clear(big->args);
  const char *s45 = "012345678901234567890123456789012345678901234";
  json_object_set_new(big->kwargs, "a", json_string(s45));
  big->context = json_pack("{s:s}", "b", s45);
  assert_int_equal(er_store_enqueue(s, &big, 1, 0, NULL), ER_ETOOBIG);
  json_object_del(big->context, "b");
  assert_int_equal(er_store_enqueue(s, rs, 2, 0, NULL), 0);
  er_store_close(s);
  er_task_rec_free(ok);
  er_task_rec_free(big);
}

/* ---- SQLite files ------------------------------------------------------------------- */

void test_corrupt_file(void **state) {
  fx_t *f = *state;
  if (!is_sqlite(f) || !f->dir[0]) skip();
  char path[256], url[300], err[256];
  er_store_t *s = NULL;
  /* not SQLite at all */
  snprintf(path, sizeof path, "%s/garbage.db", f->dir);
  FILE *fp = fopen(path, "w");
  for (int i = 0; i < 300; i++) fputs("this is not a database, just some text. ", fp);
  fclose(fp);
  snprintf(url, sizeof url, "sqlite:%s", path);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_ECORRUPT);
  assert_null(s);
  assert_non_null(strstr(err, "not an SQLite database"));
  /* SQLite, but someone else's */
  snprintf(path, sizeof path, "%s/other.db", f->dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE photos(id INTEGER)", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  snprintf(url, sizeof url, "sqlite:%s", path);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_ECORRUPT);
  assert_non_null(strstr(err, "not an errand store"));
  /* made by a newer errand */
  snprintf(path, sizeof path, "%s/store.db", f->dir);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  snprintf(url, sizeof url, "sqlite:%s", path);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_ECORRUPT);
  assert_non_null(strstr(err, "newer errand"));
}

void test_schema_version(void **state) {
  fx_t *f = *state;
  if (!is_sqlite(f) || !f->dir[0]) skip();
  char path[256];
  snprintf(path, sizeof path, "%s/store.db", f->dir);
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT (SELECT value FROM meta WHERE key = "
                                      "'schema_version'), (SELECT count(*) FROM migrations), "
                                      "(SELECT journal_mode FROM pragma_journal_mode)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "4");
  assert_int_equal(sqlite3_column_int(st, 1), 4);
  assert_string_equal((const char *)sqlite3_column_text(st, 2), "wal");
  sqlite3_finalize(st);
  /* the claim walks the partial index of ready tasks, without sorting */
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "EXPLAIN QUERY PLAN SELECT seq FROM tasks WHERE ready = 1 "
                                      "AND queue = 'q' AND eta_ms <= 5 ORDER BY priority DESC, "
                                      "eta_ms, seq LIMIT 3",
                                      -1, &st, NULL),
                   SQLITE_OK);
  bool uses_index = false, sorts = false;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(st, 3);
    if (strstr(d, "tasks_ready")) uses_index = true;
    if (strstr(d, "TEMP B-TREE")) sorts = true;
  }
  sqlite3_finalize(st);
  assert_true(uses_index);
  assert_false(sorts);
  /* listing by a rare state walks its partial index newest first, from a
   * cursor too */
  static const char *const idx[] = {"tasks_retry", "tasks_failed", "tasks_revoked"};
  static const int states[] = {ER_STATE_RETRY, ER_STATE_FAILURE, ER_STATE_REVOKED};
  for (int k = 0; k < 6; k++) {
    char sql[2048];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", er__sq_list_sql(k % 2, states[k / 2]));
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    uses_index = sorts = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *d = (const char *)sqlite3_column_text(st, 3);
      if (strstr(d, idx[k / 2])) uses_index = true;
      if (strstr(d, "TEMP B-TREE")) sorts = true;
    }
    sqlite3_finalize(st);
    assert_true(uses_index);
    assert_false(sorts);
  }
  sqlite3_close(db);
}

/* Another process holds the write lock: a call waits for it (busy_ms), and
 * past busy_ms fails with ER_EBUSY having written nothing. */
void test_busy(void **state) {
  fx_t *f = *state;
  if (!is_sqlite(f) || !f->dir[0]) skip();
  char path[256];
  snprintf(path, sizeof path, "%s/store.db", f->dir);
  for (int round = 0; round < 2; round++) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
      sqlite3 *db;
      if (sqlite3_open(path, &db) ||
          sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE key = 'app'",
                       NULL, NULL, NULL))
        _exit(2);
      char c = 1;
      if (write(p[1], &c, 1) != 1) _exit(3);
      sleep_ms(300);
      sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
      sqlite3_close(db);
      _exit(0);
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    er_store_t *s = round == 0 ? f->s : open_with(f, "busy_ms=50");
    er_task_rec_t *r = mk(f, "t");
    uint64_t t0 = er_now_mono_ms();
    int rc = er_store_enqueue(s, &r, 1, 0, NULL);
    uint64_t el = er_now_mono_ms() - t0;
    if (round == 0) {
      assert_int_equal(rc, 0); /* waited for the lock */
      assert_true(el >= 200);
    } else {
      assert_int_equal(rc, ER_EBUSY);
      assert_true(el < 250);
      assert_true(strlen(er_store_last_error(s)) > 0);
      er_store_close(s);
    }
    reap(pid);
    assert_int_equal(get_rc(f, r->id), round == 0 ? 0 : ER_ENOENT);
    er_task_rec_free(r);
    close(p[0]);
    close(p[1]);
  }
}

/* Several processes open one new file at once: one creates the schema. */
void test_concurrent_create(void **state) {
  fx_t *f = *state;
  if (!is_sqlite(f) || !f->dir[0]) skip();
  char url[300];
  snprintf(url, sizeof url, "sqlite:%s/fresh.db", f->dir);
  pid_t kids[4];
  for (int i = 0; i < 4; i++) {
    if ((kids[i] = fork()) == 0) {
      er_store_t *s;
      if (er_store_open(url, &s, NULL, 0)) _exit(2);
      er_task_rec_t *r = mk(f, "t");
      int rc = er_store_enqueue(s, &r, 1, 0, NULL);
      er_task_rec_free(r);
      er_store_close(s);
      _exit(rc ? 3 : 0);
    }
  }
  for (int i = 0; i < 4; i++) {
    int st;
    waitpid(kids[i], &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  er_store_t *s;
  assert_int_equal(er_store_open(url, &s, NULL, 0), 0);
  json_t *stats;
  assert_int_equal(er_store_stats(s, &stats), 0);
  assert_int_equal(count_of(stats, f->queue, "PENDING"), 4);
  json_decref(stats);
  er_store_close(s);
}

/* ---- wake-ups ----------------------------------------------------------------------- */

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A child that waits delay_ms, opens its own handle, enqueues r, and writes
 * the monotonic time of its commit to fd. */
static pid_t child_enqueue(fx_t *f, er_task_rec_t *r, int delay_ms, int fd) {
  char url[700];
  url_with(f, "", url, sizeof url);
  pid_t pid = fork();
  if (pid == 0) {
    er_store_t *s;
    if (er_store_open(url, &s, NULL, 0)) _exit(2);
    sleep_ms(delay_ms);
    int rc = er_store_enqueue(s, &r, 1, 0, NULL);
    uint64_t t = mono_us();
    if (fd >= 0 && write(fd, &t, sizeof t) != sizeof t) rc = 1;
    er_store_close(s);
    _exit(rc ? 3 : 0);
  }
  return pid;
}

void test_wake_other_process(void **state) {
  fx_t *f = *state;
  int fd = er_store_wakeup_fd(f->s);
  if (is_sqlite(f)) assert_true(fd >= 0);
  /* quiet first */
  while (er_store_wait_change(f->s, 0) == 0) {
  }
  er_store_drain_wakeups(f->s);
  int p[2];
  assert_int_equal(pipe(p), 0);
  er_task_rec_t *r = mk(f, "t");
  pid_t pid = child_enqueue(f, r, 100, p[1]);
  uint64_t t0 = mono_us();
  int rc = er_store_wait_change(f->s, 10000);
  uint64_t woke = mono_us();
  assert_int_equal(rc, 0);
  uint64_t committed = 0;
  assert_int_equal(read(p[0], &committed, sizeof committed), sizeof committed);
  reap(pid);
  /* what woke us is visible */
  assert_int_equal(get_rc(f, r->id), 0);
  assert_true(woke - t0 >= 50000); /* it did wait for the child */
  uint64_t lag = woke > committed ? woke - committed : 0;
  print_message("wake-up %.3f ms after the other process's commit\n", lag / 1000.0);
  assert_true(lag < 200000);
  er_task_rec_free(r);

  /* the fd itself becomes readable */
  if (fd >= 0) {
    er_store_drain_wakeups(f->s);
    r = mk(f, "t");
    pid = child_enqueue(f, r, 50, -1);
    struct pollfd pfd = {fd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    reap(pid);
    er_store_drain_wakeups(f->s);
    er_task_rec_free(r);
  }
  close(p[0]);
  close(p[1]);
}

void test_wait_timeout(void **state) {
  fx_t *f = *state;
  while (er_store_wait_change(f->s, 0) == 0) {
  }
  /* our own writes do not count as another's change */
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  uint64_t t0 = mono_us();
  assert_int_equal(er_store_wait_change(f->s, 150), ER_ETIMEDOUT);
  uint64_t el = mono_us() - t0;
  assert_true(el >= 140000);
  assert_true(el < 2000000);
  assert_int_equal(er_store_wait_change(f->s, 0), ER_ETIMEDOUT);
  er_task_rec_free(r);
}

/* ---- many processes ----------------------------------------------------------------- */

#define MP_TASKS 2000
#define MP_PROCS 4

typedef struct mp_count {
  int ok, fenced, stalled;
} mp_count_t;

/* A worker process: reserve, (now and then outlive the lease), complete;
 * until nothing of the queue is left unfinished. */
static void mp_child(fx_t *f, int idx, int fd) {
  char url[700];
  url_with(f, "", url, sizeof url);
  er_store_t *s;
  if (er_store_open(url, &s, NULL, 0)) _exit(2);
  mp_count_t c = {0, 0, 0};
  const char *qs[] = {f->queue};
  char wid[32];
  snprintf(wid, sizeof wid, "w%d", idx);
  unsigned n_seen = 0;
  for (;;) {
    int64_t now = er_now_wall_ms();
    if (er_store_maintain(s, now, NULL)) _exit(4);
    er_reserve_req_t req = {qs, 1, wid, now, 300, 8};
    er_task_rec_t **got = NULL;
    size_t n = 0;
    if (er_store_reserve(s, &req, &got, &n)) _exit(5);
    if (!n) {
      er_free(got);
      json_t *st;
      if (er_store_stats(s, &st)) _exit(6);
      json_int_t left = count_of(st, f->queue, "PENDING") + count_of(st, f->queue, "STARTED") +
                        count_of(st, f->queue, "RETRY");
      json_decref(st);
      if (!left) break;
      er_store_wait_change(s, 20);
      continue;
    }
    er_completion_t cs[8];
    json_t *res = json_integer(idx);
    for (size_t i = 0; i < n; i++) {
      cs[i] = (er_completion_t){got[i]->id, got[i]->attempt, ER_STATE_SUCCESS, res, NULL, 0, 0};
      /* now and then, stall past the lease so that another takes the task */
      if (++n_seen % 97 == (unsigned)idx * 13 % 97) {
        sleep_ms(350);
        c.stalled++;
      }
    }
    int64_t done = er_now_wall_ms();
    for (size_t i = 0; i < n; i++) cs[i].now_ms = done;
    bool fenced[8];
    if (er_store_complete(s, cs, n, fenced)) _exit(7);
    for (size_t i = 0; i < n; i++) fenced[i] ? c.fenced++ : c.ok++;
    json_decref(res);
    er_task_rec_free_array(got, n);
  }
  er_store_close(s);
  _exit(write(fd, &c, sizeof c) == sizeof c ? 0 : 8);
}

void test_multi_process(void **state) {
  fx_t *f = *state;
  er_task_rec_t **rs = calloc(MP_TASKS, sizeof *rs);
  for (int i = 0; i < MP_TASKS; i++) {
    rs[i] = mk(f, "t");
    json_array_append_new(rs[i]->args, json_integer(i));
  }
  assert_int_equal(er_store_enqueue(f->s, rs, MP_TASKS, 0, NULL), 0);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t kids[MP_PROCS];
  for (int i = 0; i < MP_PROCS; i++)
    if ((kids[i] = fork()) == 0) mp_child(f, i, p[1]);
  mp_count_t total = {0, 0, 0};
  for (int i = 0; i < MP_PROCS; i++) {
    reap(kids[i]);
    mp_count_t c;
    assert_int_equal(read(p[0], &c, sizeof c), sizeof c);
    print_message("worker %d: %d completed, %d fenced, %d stalls\n", i, c.ok, c.fenced,
                  c.stalled);
    total.ok += c.ok;
    total.fenced += c.fenced;
    total.stalled += c.stalled;
  }
  close(p[0]);
  close(p[1]);
  /* every task completed exactly once; a stalled attempt was fenced */
  assert_int_equal(total.ok, MP_TASKS);
  for (int i = 0; i < MP_TASKS; i++) {
    er_task_rec_t *g = get(f, rs[i]->id);
    assert_int_equal(g->state, ER_STATE_SUCCESS);
    assert_int_equal(g->retries, 0);
    assert_true(json_is_integer(g->result));
    er_task_rec_free(g);
  }
  for (int i = 0; i < MP_TASKS; i++) er_task_rec_free(rs[i]);
  free(rs);
}
