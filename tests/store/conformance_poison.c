/* Stored tasks that cannot be decoded (an older writer, a corrupted row, a
 * foreign script) fail alone: a reserve ends each FAILURE saying why, never
 * leases it again, and hands out the decodable tasks of the same batch; the
 * counts stay right, the finished wake-up is sent, and a get shows the rest
 * of the record with the reason. Run against every backend by URL; the
 * corruption itself goes behind the store's back, per backend. */
#include "conformance.h"

#ifdef ER_HAVE_REDIS
#include <hiredis/hiredis.h>

#include "store/redis_internal.h"
#endif

/* ---- corrupting a stored field ------------------------------------------------ */

/* The SQLite file of f: its URL without "sqlite:" and the query. */
static void sqlite_path(const fx_t *f, char *out, size_t size) {
  snprintf(out, size, "%s", f->base + strlen("sqlite:"));
  char *q = strchr(out, '?');
  if (q) *q = 0;
}

static void corrupt_sqlite(fx_t *f, const char *id, const char *field, const char *v, size_t n) {
  char path[512], sql[128];
  sqlite_path(f, path, sizeof path);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  snprintf(sql, sizeof sql, "UPDATE tasks SET %s = ?1 WHERE id = ?2", field);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
  sqlite3_bind_text(st, 1, v, (int)n, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_DONE) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

#ifdef ER_HAVE_REDIS
static void corrupt_redis(fx_t *f, const char *id, const char *field, const char *v, size_t n) {
  er_rd_t *rd = (er_rd_t *)f->s;
  redisContext *c = redisConnect(rd->host, rd->port);
  assert_true(c && !c->err);
  redisReply *r;
  if (rd->password) {
    r = rd->user ? redisCommand(c, "AUTH %s %s", rd->user, rd->password)
                 : redisCommand(c, "AUTH %s", rd->password);
    freeReplyObject(r);
  }
  freeReplyObject(redisCommand(c, "SELECT %d", rd->db));
  char key[512];
  snprintf(key, sizeof key, "%stask:%s", rd->base_key, id);
  r = redisCommand(c, "HSET %s %s %b", key, field, v, n);
  assert_non_null(r);
  if (r->type == REDIS_REPLY_ERROR) fail_msg("HSET: %s", r->str);
  freeReplyObject(r);
  redisFree(c);
}
#endif

/* Overwrites field of task id with the n bytes at v, as a foreign writer
 * would. */
static void corrupt(fx_t *f, const char *id, const char *field, const char *v, size_t n) {
  if (is_sqlite(f)) return corrupt_sqlite(f, id, field, v, n);
#ifdef ER_HAVE_REDIS
  if (strcmp(f->s->ops->scheme, "redis") == 0) return corrupt_redis(f, id, field, v, n);
#endif
  fail_msg("no way to corrupt a record of %s", f->base);
}

/* ---- checks ---------------------------------------------------------------------- */

static int64_t stat_of(fx_t *f, const char *state) {
  json_t *st = NULL;
  assert_int_equal(er_store_stats(f->s, &st), 0);
  json_t *q = json_object_get(json_object_get(st, "queues"), f->queue);
  int64_t n = q ? json_integer_value(json_object_get(q, state)) : 0;
  json_decref(st);
  return n;
}

/* The queue's counts by state (RETRY and REVOKED: none). */
static void assert_counts(fx_t *f, int64_t started, int64_t success, int64_t failure) {
  assert_int_equal(stat_of(f, "PENDING"), 0);
  assert_int_equal(stat_of(f, "STARTED"), started);
  assert_int_equal(stat_of(f, "SUCCESS"), success);
  assert_int_equal(stat_of(f, "FAILURE"), failure);
  assert_int_equal(stat_of(f, "RETRY"), 0);
  assert_int_equal(stat_of(f, "REVOKED"), 0);
}

/* Task id is FAILURE with a "cannot be decoded" error naming field. */
static void assert_poisoned(fx_t *f, const char *id, const char *field) {
  er_task_rec_t *r = get(f, id);
  assert_int_equal(r->state, ER_STATE_FAILURE);
  assert_true(r->finished_ms > 0);
  assert_non_null(r->error);
  assert_int_equal(json_integer_value(json_object_get(r->error, "code")), ER_ECORRUPT);
  const char *msg = json_string_value(json_object_get(r->error, "message"));
  assert_non_null(msg);
  char want[128];
  snprintf(want, sizeof want, "task record cannot be decoded: %s:", field);
  if (!strstr(msg, want)) fail_msg("error message '%s' lacks '%s'", msg, want);
  er_task_rec_free(r);
}

/* Waits (up to 5 s) until a read of wake-ups lists id as finished. */
static void assert_fin_announced(fx_t *f, const char *id) {
  int64_t until = now_ms() + 5000;
  while (now_ms() < until) {
    er_wakeups_t w = {0};
    assert_int_equal(er_store_read_wakeups(f->s, &w), 0);
    bool seen = w.finished_overflow;
    for (size_t i = 0; i < w.nfinished; i++) seen |= strcmp(w.finished[i], id) == 0;
    er_wakeups_clear(&w);
    if (seen) return;
    er_store_wait_change(f->s, 200);
  }
  fail_msg("no finished wake-up for %s", id);
}

/* ---- tests ------------------------------------------------------------------------ */

typedef struct kind {
  const char *field, *value;
  size_t len;         /* 0: strlen(value) */
  bool sqlite, redis; /* where this corruption reaches a reserve */
} kind_t;

static const kind_t g_kinds[] = {
    {"args", "[1,", 0, true, true},
    {"args", "{\"not\": \"an array\"}", 0, true, true},
    {"kwargs", "{\"a\": \"\xff\xfe\"}", 0, true, true},  /* invalid UTF-8 */
    {"context", "[]", 0, true, true},
    {"task", "", 0, true, true},
    {"max_retries", "three", 0, true, true},
    {"eta_ms", "soon", 0, false, true},
    {"attempt", "x", 0, false, true},
    {"state", "9", 0, false, true},
    {"result_ttl_ms", "forever", 0, false, true},
};

static bool kind_applies(const fx_t *f, const kind_t *k) {
  return is_sqlite(f) ? k->sqlite : k->redis;
}

/* good, bad, good in one queue for every kind of corruption: one reserve
 * takes every good task and fails every bad one; none comes back. */
static void test_poisoned_fail_alone(void **state) {
  fx_t *f = *state;
  size_t nk = sizeof g_kinds / sizeof g_kinds[0], nbad = 0;
  char good[2 * 16][ER_ID_LEN + 1], bad[16][ER_ID_LEN + 1];
  const char *field[16];
  for (size_t i = 0; i < nk; i++) {
    if (!kind_applies(f, &g_kinds[i])) continue;
    er_task_rec_t *r[3] = {mk(f, "g"), mk(f, "b"), mk(f, "g")};
    r[1]->name = tagged(f, g_kinds[i].field); /* its tombstone starts too */
    r[1]->name[0] = (char)('a' + i);
    for (int j = 0; j < 3; j++) assert_int_equal(enq(f, r[j]), 0);
    memcpy(good[2 * nbad], r[0]->id, sizeof good[0]);
    memcpy(good[2 * nbad + 1], r[2]->id, sizeof good[0]);
    memcpy(bad[nbad], r[1]->id, sizeof bad[0]);
    field[nbad++] = g_kinds[i].field;
    const kind_t *k = &g_kinds[i];
    corrupt(f, r[1]->id, k->field, k->value, k->len ? k->len : strlen(k->value));
    for (int j = 0; j < 3; j++) er_task_rec_free(r[j]);
  }
  er_watch_t w = {.finished = true};
  assert_int_equal(er_store_watch(f->s, &w), 0);

  er_task_rec_t **got = NULL;
  int64_t t = now_ms() + 10;
  size_t n = reserve_at(f, 100, t, 60000, &got);
  assert_int_equal(n, 2 * nbad);
  for (size_t i = 0; i < n; i++) {
    bool known = false;
    for (size_t j = 0; j < 2 * nbad; j++) known |= strcmp(got[i]->id, good[j]) == 0;
    assert_true(known);
    assert_false(complete1(f, got[i]->id, got[i]->attempt, ER_STATE_SUCCESS, NULL, NULL, t, 0));
  }
  er_task_rec_free_array(got, n);
  for (size_t i = 0; i < nbad; i++) assert_poisoned(f, bad[i], field[i]);
  assert_fin_announced(f, bad[0]);

  /* Never leased again, even after every lease would have ended. */
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, t + 120000, &mc), 0);
  assert_int_equal(mc.requeued, 0);
  got = NULL;
  assert_int_equal(reserve_at(f, 100, t + 120001, 60000, &got), 0);
  er_task_rec_free_array(got, 0);
  for (size_t i = 0; i < nbad; i++) assert_poisoned(f, bad[i], field[i]);

  assert_counts(f, 0, (int64_t)(2 * nbad), (int64_t)nbad);
}

/* A poisoned task behind a full batch: reserves of one task at a time reach
 * the tasks behind it, and its own reserve returns what follows it. */
static void test_poisoned_head_of_queue(void **state) {
  fx_t *f = *state;
  er_task_rec_t *bad = mk(f, "b"), *g1 = mk(f, "g"), *g2 = mk(f, "g");
  bad->priority = 9; /* first in line */
  assert_int_equal(enq(f, bad), 0);
  assert_int_equal(enq(f, g1), 0);
  assert_int_equal(enq(f, g2), 0);
  corrupt(f, bad->id, "args", "[\"cut", 5);
  int64_t t = now_ms() + 10;
  er_task_rec_t *r = reserve1(f, t, 60000);
  assert_string_equal(r->id, g1->id);
  er_task_rec_free(r);
  r = reserve1(f, t, 60000);
  assert_string_equal(r->id, g2->id);
  er_task_rec_free(r);
  assert_poisoned(f, bad->id, "args");
  assert_counts(f, 2, 0, 1);
  er_task_rec_free(bad);
  er_task_rec_free(g1);
  er_task_rec_free(g2);
}

/* A running task corrupted under its worker: when its lease ends it is not
 * queued again to fail every reserve (nor does it fail housekeeping): it ends
 * FAILURE, at the lease's end or at the next reserve. */
static void test_corrupted_while_running(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "b"), *g = mk(f, "g");
  assert_int_equal(enq(f, r), 0);
  int64_t t = now_ms() + 10;
  er_task_rec_t *run = reserve1(f, t, 1000);
  assert_string_equal(run->id, r->id);
  corrupt(f, r->id, "priority", "high", 4);
  assert_int_equal(enq(f, g), 0);
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, t + 5000, &mc), 0);
  er_task_rec_t *next = reserve1(f, t + 5001, 60000);
  assert_string_equal(next->id, g->id);
  assert_poisoned(f, r->id, "priority");
  /* the attempt that ran it is fenced */
  assert_true(complete1(f, r->id, run->attempt, ER_STATE_SUCCESS, NULL, NULL, t + 5002, 0));
  assert_poisoned(f, r->id, "priority");
  assert_counts(f, 1, 0, 1);
  er_task_rec_free(next);
  er_task_rec_free(run);
  er_task_rec_free(g);
  er_task_rec_free(r);
}

/* Valid JSON of unusual shapes is no poison: "\u0000" and non-ASCII inside
 * strings, huge and negative numbers, nulls. */
static void test_odd_but_valid(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "odd");
  json_decref(r->args);
  r->args = json_pack("[s#, s, f, i, n]", "a\0b", 3, "\xc3\xa9\xe2\x80\xa8", 1e300, (json_int_t)-1);
  json_object_set_new(r->kwargs, "k", json_null());
  r->context = json_pack("{s:s}", "user", "\xf0\x9f\x98\x80");
  assert_int_equal(enq(f, r), 0);
  er_task_rec_t *got = reserve1(f, now_ms() + 10, 60000);
  assert_string_equal(got->id, r->id);
  assert_json_eq(got->args, r->args);
  assert_json_eq(got->kwargs, r->kwargs);
  assert_json_eq(got->context, r->context);
  assert_int_equal(json_string_length(json_array_get(got->args, 0)), 3);
  er_task_rec_free(got);
  er_task_rec_free(r);
}

/* A get of a queued task that cannot be decoded answers with what it can
 * read and the reason as its error, instead of failing the call. */
static void test_get_undecodable(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "b");
  r->key = tagged(f, "key");
  assert_int_equal(enq(f, r), 0);
  corrupt(f, r->id, "kwargs", "{\"a\":", 5);
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_PENDING);
  assert_string_equal(g->task, "b");
  assert_null(g->kwargs);
  const char *msg = json_string_value(json_object_get(g->error, "message"));
  assert_non_null(msg);
  assert_non_null(strstr(msg, "task record cannot be decoded: kwargs:"));
  er_task_rec_free(g);
  /* by key too */
  g = NULL;
  assert_int_equal(er_store_get(f->s, NULL, r->key, &g), 0);
  assert_string_equal(g->id, r->id);
  er_task_rec_free(g);
  er_task_rec_free(r);
}

int main(int argc, char **argv) {
  g_base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (g_base && !*g_base) g_base = NULL;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_poisoned_fail_alone), T(test_poisoned_head_of_queue), T(test_corrupted_while_running),
      T(test_get_undecodable),     T(test_odd_but_valid),
  };
  return cmocka_run_group_tests_name(g_base ? g_base : "poison (sqlite, a file per test)", tests,
                                     NULL, NULL);
}
