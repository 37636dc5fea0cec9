/* Transition batches, documents and counters on the Redis store: one script
 * that checks every guard (against what the batch's earlier mutations will
 * have done) before it writes anything. Run against a private redis-server:
 *
 *   redis_server.sh run test_store_redis_apply   (ERRAND_TEST_STORE=redis://...)
 *
 * Each test uses its own prefix, so each starts from an empty store. */
#include "conformance.h"

/* The fixture of conformance_util.c on a prefix of the test's own. */
static int setup_own(void **state) {
  static char url[600];
  static const char *base;
  if (!base) base = g_base;
  er_id_t id;
  er_id_new(&id);
  snprintf(url, sizeof url, "%.*s?prefix=apply-%s", (int)strcspn(base, "?"), base, id.text);
  g_base = url;
  return setup(state);
}

static er_task_state_t state_of(er_store_t *s, const char *id) {
  er_task_rec_t *r = NULL;
  if (er_store_get(s, id, NULL, &r) == ER_ENOENT) return ER_STATE_UNKNOWN;
  er_task_state_t st = r->state;
  er_task_rec_free(r);
  return st;
}

static int64_t counter(er_store_t *s, const char *coll, const char *key) {
  int64_t v = -1;
  assert_int_equal(er_store_counter_get(s, coll, key, &v), 0);
  return v;
}

/* A guard that fails at the end leaves everything before it unwritten. */
static void test_all_or_nothing(void **state) {
  fx_t *f = *state;
  er_store_t *s = f->s;
  er_task_rec_t *run = running_on(s, f, "q");
  er_task_rec_t *e = mk_on(f, "q");
  e->name = er_strdup("n1");
  json_t *v = json_pack("{s:i}", "a", 1);
  json_t *res = json_integer(7);
  er_mut_t m[] = {
      {.kind = ER_MUT_ENQUEUE, .rec = e},
      {.kind = ER_MUT_COMPLETE,
       .completion = {run->id, run->attempt, ER_STATE_SUCCESS, res, NULL, 0, er_now_wall_ms()}},
      mut_doc_put("c", "d1", v, ER_VERSION_ABSENT),
      mut_counter_add("c", "n", 5, ER_COUNTER_ANY),
      {.kind = ER_MUT_TASK_GUARD, .id = "no-such-task", .state = ER_STATE_UNKNOWN},
  };
  size_t failed = 99;
  assert_int_equal(er_store_apply(s, m, 5, NULL, &failed), ER_ENOENT);
  assert_int_equal(failed, 4);
  assert_non_null(strstr(er_store_last_error(s), "no-such-task"));
  assert_int_equal(state_of(s, e->id), ER_STATE_UNKNOWN);
  assert_int_equal(state_of(s, run->id), ER_STATE_STARTED);
  assert_int_equal(er_store_doc_get(s, "c", "d1", NULL, NULL), ER_ENOENT);
  assert_int_equal(counter(s, "c", "n"), 0);
  json_t *stats;
  assert_int_equal(er_store_stats(s, &stats), 0);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "total"),
                                                      "PENDING")), 0);
  json_decref(stats);

  /* the same batch with a guard that holds writes everything */
  m[4] = (er_mut_t){.kind = ER_MUT_TASK_GUARD, .id = run->id, .state = ER_STATE_SUCCESS,
                    .attempt = run->attempt};
  er_mut_result_t r[5];
  assert_int_equal(er_store_apply(s, m, 5, r, &failed), 0);
  assert_int_equal(failed, 5);
  assert_false(r[0].existing);
  assert_int_equal(r[2].version, 1);
  assert_int_equal(r[3].value, 5);
  assert_int_equal(state_of(s, e->id), ER_STATE_PENDING);
  assert_int_equal(state_of(s, run->id), ER_STATE_SUCCESS);

  /* the name is now taken, and a second outcome for the attempt is fenced */
  er_task_rec_t *e2 = mk_on(f, "q");
  e2->name = er_strdup("n1");
  er_mut_t again[] = {{.kind = ER_MUT_ENQUEUE, .rec = e2}};
  assert_int_equal(er_store_apply(s, again, 1, NULL, &failed), ER_EEXIST);
  assert_int_equal(failed, 0);
  er_mut_t twice[] = {m[1]};
  assert_int_equal(er_store_apply(s, twice, 1, NULL, &failed), ER_EFENCED);
  json_decref(v);
  json_decref(res);
  er_task_rec_free(e);
  er_task_rec_free(e2);
  er_task_rec_free(run);
}

/* Document versions: created at 1, one more at each change; guards on
 * absence and on a version, also against the batch's own earlier writes. */
static void test_documents(void **state) {
  fx_t *f = *state;
  er_store_t *s = f->s;
  json_t *v1 = json_loads("{\"a\":1,\"arr\":[],\"big\":9007199254740993,\"f\":0.1}", 0, NULL);
  json_t *patch = json_loads("{\"b\":\"x:y\",\"a\":{\"n\":[1,{}]}}", 0, NULL);
  er_mut_result_t r[3];
  size_t failed;
  er_mut_t put = mut_doc_put("c", "k", v1, ER_VERSION_ABSENT);
  assert_int_equal(er_store_apply(s, &put, 1, r, &failed), 0);
  assert_int_equal(r[0].version, 1);
  assert_int_equal(er_store_apply(s, &put, 1, r, &failed), ER_EEXIST);
  put.if_version = 2;
  assert_int_equal(er_store_apply(s, &put, 1, r, &failed), ER_ESTATE);
  er_mut_t merge = {.kind = ER_MUT_DOC_MERGE, .coll = "c", .key = "k", .value = patch,
                    .if_version = 1};
  assert_int_equal(er_store_apply(s, &merge, 1, r, &failed), 0);
  assert_int_equal(r[0].version, 2);
  json_t *got = NULL;
  int64_t ver = 0;
  assert_int_equal(er_store_doc_get(s, "c", "k", &got, &ver), 0);
  assert_int_equal(ver, 2);
  json_t *want = json_deep_copy(v1);
  json_object_update(want, patch);
  if (!json_equal(got, want)) fail_msg("merged: %s", json_dumps(got, JSON_COMPACT));
  json_decref(got);
  json_decref(want);

  /* within one batch: a later guard sees the earlier writes */
  er_mut_t seq[] = {mut_doc_put("c", "new", v1, ER_VERSION_ABSENT), mut_doc_put("c", "new", v1, 1),
                    {.kind = ER_MUT_DOC_MERGE, .coll = "c", .key = "new", .value = patch,
                     .if_version = 2}};
  assert_int_equal(er_store_apply(s, seq, 3, r, &failed), 0);
  assert_int_equal(r[0].version, 1);
  assert_int_equal(r[1].version, 2);
  assert_int_equal(r[2].version, 3);
  er_mut_t dup[] = {mut_doc_put("c", "dup", v1, ER_VERSION_ABSENT),
                    mut_doc_put("c", "dup", v1, ER_VERSION_ABSENT)};
  assert_int_equal(er_store_apply(s, dup, 2, r, &failed), ER_EEXIST);
  assert_int_equal(failed, 1);
  assert_int_equal(er_store_doc_get(s, "c", "dup", NULL, NULL), ER_ENOENT);

  /* merging into a value that is not an object is refused */
  json_t *arr = json_array();
  er_mut_t not_obj[] = {mut_doc_put("c", "arr", arr, ER_VERSION_ANY),
                        {.kind = ER_MUT_DOC_MERGE, .coll = "c", .key = "arr", .value = patch,
                         .if_version = ER_VERSION_ANY}};
  assert_int_equal(er_store_apply(s, not_obj, 2, r, &failed), ER_ESTATE);
  assert_int_equal(failed, 1);

  /* deleting: guarded, and absent with ANY is fine */
  er_mut_t del = {.kind = ER_MUT_DOC_DEL, .coll = "c", .key = "k", .if_version = 1};
  assert_int_equal(er_store_apply(s, &del, 1, NULL, &failed), ER_ESTATE);
  del.if_version = 2;
  assert_int_equal(er_store_apply(s, &del, 1, NULL, &failed), 0);
  assert_int_equal(er_store_doc_get(s, "c", "k", NULL, NULL), ER_ENOENT);
  assert_int_equal(er_store_apply(s, &del, 1, NULL, &failed), ER_ENOENT);
  del.if_version = ER_VERSION_ANY;
  assert_int_equal(er_store_apply(s, &del, 1, NULL, &failed), 0);
  json_decref(arr);
  json_decref(v1);
  json_decref(patch);
}

static void list_keys(er_store_t *s, const char *coll, const char *after, size_t limit,
                      const char *want) {
  json_t *out = NULL;
  assert_int_equal(er_store_doc_list(s, coll, after, limit, &out), 0);
  char got[256] = "";
  size_t i;
  json_t *d;
  json_array_foreach(out, i, d) {
    if (i) strcat(got, " ");
    strcat(got, json_string_value(json_object_get(d, "key")));
    assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
    assert_true(json_is_integer(json_object_get(d, "value")));
  }
  json_decref(out);
  assert_string_equal(got, want);
}

/* doc_list walks a collection in key order with a cursor; collections whose
 * names hold ':' stay apart. */
static void test_doc_list(void **state) {
  fx_t *f = *state;
  er_store_t *s = f->s;
  json_t *one = json_integer(1);
  er_mut_t m[] = {mut_doc_put("L", "b", one, ER_VERSION_ANY), mut_doc_put("L", "a", one, ER_VERSION_ANY),
                  mut_doc_put("L", "c", one, ER_VERSION_ANY), mut_doc_put("L", "a:b", one, ER_VERSION_ANY),
                  mut_doc_put("x:y", "z", one, ER_VERSION_ANY), mut_doc_put("x", "y:z", one, ER_VERSION_ANY)};
  assert_int_equal(er_store_apply(s, m, 6, NULL, NULL), 0);
  list_keys(s, "L", NULL, 2, "a a:b");
  list_keys(s, "L", "a:b", 2, "b c");
  list_keys(s, "L", "c", 10, "");
  list_keys(s, "x:y", "", 10, "z");
  list_keys(s, "x", "", 10, "y:z");
  er_mut_t del = {.kind = ER_MUT_DOC_DEL, .coll = "x", .key = "y:z", .if_version = 1};
  assert_int_equal(er_store_apply(s, &del, 1, NULL, NULL), 0);
  list_keys(s, "x", "", 10, "");
  assert_int_equal(er_store_doc_get(s, "x:y", "z", NULL, NULL), 0);
  json_decref(one);
}

/* Counters add exactly; a guard compares the value before the add, also
 * one an earlier mutation of the batch changed. */
static void test_counters(void **state) {
  fx_t *f = *state;
  er_store_t *s = f->s;
  er_mut_result_t r[2];
  size_t failed;
  er_mut_t a = mut_counter_add("k", "n", 5, ER_COUNTER_ANY);
  assert_int_equal(er_store_apply(s, &a, 1, r, &failed), 0);
  assert_int_equal(r[0].value, 5);
  a = mut_counter_add("k", "n", 3, 4);
  assert_int_equal(er_store_apply(s, &a, 1, r, &failed), ER_ESTATE);
  assert_int_equal(counter(s, "k", "n"), 5);
  er_mut_t two[] = {mut_counter_add("k", "n", 2, 5), mut_counter_add("k", "n", -7, 7)};
  assert_int_equal(er_store_apply(s, two, 2, r, &failed), 0);
  assert_int_equal(r[0].value, 7);
  assert_int_equal(r[1].value, 0);
  assert_int_equal(counter(s, "k", "n"), 0);
  er_mut_t bad[] = {mut_counter_add("k", "n", 2, 0), mut_counter_add("k", "n", 1, 0)};
  assert_int_equal(er_store_apply(s, bad, 2, r, &failed), ER_ESTATE);
  assert_int_equal(failed, 1);
  assert_int_equal(counter(s, "k", "n"), 0);
  /* exact beyond a double's 53 bits */
  const int64_t big = ((int64_t)1 << 62) + 1;
  a = mut_counter_add("k", "big", big, ER_COUNTER_ANY);
  assert_int_equal(er_store_apply(s, &a, 1, r, &failed), 0);
  assert_int_equal(r[0].value, big);
  assert_int_equal(counter(s, "k", "big"), big);
  a = mut_counter_add("k", "big", 2, big);
  assert_int_equal(er_store_apply(s, &a, 1, r, &failed), 0);
  assert_int_equal(r[0].value, big + 2);
  /* past the limit: refused before anything is written */
  er_mut_t over[] = {mut_counter_add("k", "other", 1, ER_COUNTER_ANY),
                     mut_counter_add("k", "big", INT64_MAX / 2 + 1, ER_COUNTER_ANY)};
  assert_int_equal(er_store_apply(s, over, 2, r, &failed), ER_EINVAL);
  assert_int_equal(failed, 1);
  assert_int_equal(counter(s, "k", "other"), 0);
  assert_int_equal(counter(s, "k", "big"), big + 2);
}

/* A stage's completion and the task it releases commit together, and wake
 * watchers as the single calls would; the key rule answers inside a batch. */
static void test_complete_and_enqueue(void **state) {
  fx_t *f = *state;
  er_store_t *s = f->s;
  const char *qs[] = {"next"};
  er_watch_t w = {qs, 1, true, false};
  assert_int_equal(er_store_watch(s, &w), 0);
  er_wakeups_t wk;
  assert_int_equal(er_store_read_wakeups(s, &wk), 0);
  er_wakeups_clear(&wk);

  er_task_rec_t *a = running_on(s, f, "stage");
  er_task_rec_t *b = mk_on(f, "next"), *c = mk_on(f, "next"), *k2 = mk_on(f, "next");
  b->key = er_strdup("key-b");
  k2->key = er_strdup("key-b");
  json_t *res = json_string("done");
  er_mut_t m[] = {
      {.kind = ER_MUT_COMPLETE,
       .completion = {a->id, a->attempt, ER_STATE_SUCCESS, res, NULL, 0, er_now_wall_ms()}},
      {.kind = ER_MUT_ENQUEUE, .rec = b},
      {.kind = ER_MUT_TASK_GUARD, .id = b->id, .state = ER_STATE_PENDING},
      {.kind = ER_MUT_ENQUEUE, .rec = c},
      {.kind = ER_MUT_ENQUEUE, .rec = k2, .flags = ER_ENQ_IF_ABSENT},
  };
  er_mut_result_t r[5];
  size_t failed;
  assert_int_equal(er_store_apply(s, m, 5, r, &failed), 0);
  assert_true(r[4].existing);
  assert_string_equal(k2->id, b->id);
  assert_int_equal(state_of(s, a->id), ER_STATE_SUCCESS);
  assert_int_equal(state_of(s, b->id), ER_STATE_PENDING);
  const char *nq[] = {"next"};
  er_reserve_req_t req = {nq, 1, "w", er_now_wall_ms() + 1, 60000, 10};
  er_task_rec_t **got = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(s, &req, &got, &n), 0);
  assert_int_equal(n, 2);
  er_task_rec_free_array(got, n);

  /* the watcher hears of the finished task by id, and of work on "next" */
  int fd = er_store_wakeup_fd(s);
  struct pollfd p = {fd, POLLIN, 0};
  bool work = false, fin = false;
  for (int i = 0; i < 50 && !(work && fin); i++) {
    poll(&p, 1, 200);
    assert_int_equal(er_store_read_wakeups(s, &wk), 0);
    work |= wk.work;
    for (size_t j = 0; j < wk.nfinished; j++) fin |= strcmp(wk.finished[j], a->id) == 0;
    er_wakeups_clear(&wk);
  }
  assert_true(work);
  assert_true(fin);
  json_decref(res);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(c);
  er_task_rec_free(k2);
}

/* Reads f->s's wake-ups until one says finished_overflow (fails after 10 s);
 * returns how many finished ids were listed meanwhile. */
static size_t until_overflow(fx_t *f) {
  size_t ids = 0;
  struct pollfd p = {er_store_wakeup_fd(f->s), POLLIN, 0};
  for (int i = 0; i < 50; i++) {
    poll(&p, 1, 200);
    er_wakeups_t wk;
    assert_int_equal(er_store_read_wakeups(f->s, &wk), 0);
    ids += wk.nfinished;
    bool over = wk.finished_overflow;
    er_wakeups_clear(&wk);
    if (over) return ids;
  }
  fail_msg("no finished_overflow");
  return ids;
}

/* More finished tasks than a message lists, or an id that cannot be listed,
 * say "look at every waiter" instead. */
static void test_finished_overflow(void **state) {
  fx_t *f = *state;
  er_watch_t w = {NULL, 0, true, false};
  assert_int_equal(er_store_watch(f->s, &w), 0);
  er_wakeups_t wk;
  assert_int_equal(er_store_read_wakeups(f->s, &wk), 0);
  er_wakeups_clear(&wk);
  er_store_t *o = open_with(f, "");
  enum { MANY = 1200 };
  er_task_rec_t *rs[MANY];
  for (int i = 0; i < MANY; i++) rs[i] = mk_on(f, "many");
  assert_int_equal(er_store_enqueue(o, rs, MANY, 0, NULL), 0);
  size_t purged = 0;
  assert_int_equal(er_store_purge(o, "many", &purged), 0);
  assert_int_equal(purged, MANY);
  assert_int_equal(until_overflow(f), 0);

  er_task_rec_t *odd = mk_on(f, "odd");
  snprintf(odd->id, sizeof odd->id, "odd\nid-%.20s", f->tag);
  assert_int_equal(er_store_enqueue(o, &odd, 1, 0, NULL), 0);
  er_task_state_t was;
  assert_int_equal(er_store_revoke(o, odd->id, &was), 0);
  assert_int_equal(until_overflow(f), 0);
  for (int i = 0; i < MANY; i++) er_task_rec_free(rs[i]);
  er_task_rec_free(odd);
  er_store_close(o);
}

int main(int argc, char **argv) {
  g_base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (!g_base || strncmp(g_base, "redis://", 8) != 0) {
    fprintf(stderr, "usage: test_store_redis_apply redis://HOST:PORT (or ERRAND_TEST_STORE)\n");
    return 2;
  }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_own, teardown)
  const struct CMUnitTest tests[] = {
      T(test_all_or_nothing), T(test_documents), T(test_doc_list), T(test_counters),
      T(test_complete_and_enqueue), T(test_finished_overflow),
  };
  return cmocka_run_group_tests_name("redis store: apply", tests, NULL, NULL);
}
