/* The store conformance suite, version 2 of the API: transition batches,
 * documents and counters, precise wake-ups and the next due time. Run like
 * conformance.c against one store URL (or a fresh SQLite file per test); a
 * backend that answers ER_ENOTSUP for an op has the test skipped.
 *
 *   test_store_batch [URL]      (or ERRAND_TEST_STORE=URL) */
#include "conformance.h"

/* Skips the test when the backend lacks the op. Called before the test
 * allocates anything: a skip leaves the test function at once. */
static int need(int rc) {
  if (rc == ER_ENOTSUP) skip();
  return rc;
}

static void need_apply(fx_t *f) {
  er_mut_t m = {.kind = ER_MUT_COUNTER_ADD, .coll = "probe", .key = f->tag,
                .if_value = ER_COUNTER_ANY};
  assert_int_equal(need(er_store_apply(f->s, &m, 1, NULL, NULL)), 0);
}

static void need_wakeups(fx_t *f) {
  er_wakeups_t wk;
  assert_int_equal(need(er_store_read_wakeups(f->s, &wk)), 0);
  er_wakeups_clear(&wk);
}

static int64_t counter(fx_t *f, const char *coll, const char *key) {
  int64_t v = -12345;
  assert_int_equal(er_store_counter_get(f->s, coll, key, &v), 0);
  return v;
}

/* The document's version, 0 when absent; *value (may be NULL) a new ref. */
static int64_t doc(fx_t *f, const char *coll, const char *key, json_t **value) {
  int64_t version = -1;
  int rc = er_store_doc_get(f->s, coll, key, value, &version);
  if (rc == ER_ENOENT) return 0;
  assert_int_equal(rc, 0);
  return version;
}

/* ---- documents and counters ------------------------------------------------------- */

static void test_docs(void **state) {
  fx_t *f = *state;
  need_apply(f);
  char *coll = tagged(f, "c");
  json_t *v1 = json_pack("{s:i, s:s}", "a", 1, "b", "x"), *v2 = json_pack("[i, i]", 1, 2);
  er_mut_t m = mut_doc_put(coll, "k", v1, ER_VERSION_ABSENT);
  er_mut_result_t res;
  size_t failed = 99;
  assert_int_equal(need(er_store_apply(f->s, &m, 1, &res, &failed)), 0);
  assert_int_equal(failed, 1);
  assert_int_equal(res.version, 1);
  json_t *got = NULL;
  assert_int_equal(doc(f, coll, "k", &got), 1);
  assert_json_eq(got, v1);
  json_decref(got);
  /* ABSENT on an existing document: EEXIST, blamed on it */
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, &failed), ER_EEXIST);
  assert_int_equal(failed, 0);
  /* a version guard: right, wrong, absent */
  m = mut_doc_put(coll, "k", v2, 1);
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), 0);
  assert_int_equal(res.version, 2);
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, &failed), ER_ESTATE);
  m = mut_doc_put(coll, "nope", v2, 3);
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, &failed), ER_ENOENT);
  m = mut_doc_put(coll, "k", v1, ER_VERSION_ANY);
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), 0);
  assert_int_equal(res.version, 3);
  /* merge: top-level keys replaced; created as {} when absent */
  json_t *patch = json_pack("{s:i, s:b}", "a", 7, "c", 1);
  m = (er_mut_t){.kind = ER_MUT_DOC_MERGE, .coll = coll, .key = "k", .value = patch,
                 .if_version = 3};
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), 0);
  assert_int_equal(res.version, 4);
  json_t *want = json_pack("{s:i, s:s, s:b}", "a", 7, "b", "x", "c", 1);
  assert_int_equal(doc(f, coll, "k", &got), 4);
  assert_json_eq(got, want);
  json_decref(got);
  m.key = "fresh";
  m.if_version = ER_VERSION_ABSENT;
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), 0);
  assert_int_equal(res.version, 1);
  assert_int_equal(doc(f, coll, "fresh", &got), 1);
  assert_json_eq(got, patch);
  json_decref(got);
  /* delete: guarded; absent with ANY is fine */
  m = (er_mut_t){.kind = ER_MUT_DOC_DEL, .coll = coll, .key = "k", .if_version = 3};
  assert_int_equal(er_store_apply(f->s, &m, 1, NULL, NULL), ER_ESTATE);
  m.if_version = 4;
  assert_int_equal(er_store_apply(f->s, &m, 1, NULL, NULL), 0);
  assert_int_equal(doc(f, coll, "k", NULL), 0);
  m.if_version = ER_VERSION_ANY;
  assert_int_equal(er_store_apply(f->s, &m, 1, NULL, NULL), 0);
  m.if_version = 1;
  assert_int_equal(er_store_apply(f->s, &m, 1, NULL, NULL), ER_ENOENT);
  /* get with no value wanted */
  int64_t ver = 0;
  assert_int_equal(er_store_doc_get(f->s, coll, "fresh", NULL, &ver), 0);
  assert_int_equal(ver, 1);
  json_decref(v1);
  json_decref(v2);
  json_decref(patch);
  json_decref(want);
  er_free(coll);
}

static void test_doc_list(void **state) {
  fx_t *f = *state;
  need_apply(f);
  char *coll = tagged(f, "l");
  json_t *out = NULL;
  if (need(er_store_doc_list(f->s, coll, NULL, 10, &out)) == 0) {
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
  }
  const char *keys[] = {"b", "a", "d", "c", "ab"};
  for (int i = 0; i < 5; i++) {
    json_t *v = json_integer(i);
    er_mut_t m = mut_doc_put(coll, keys[i], v, ER_VERSION_ANY);
    assert_int_equal(need(er_store_apply(f->s, &m, 1, NULL, NULL)), 0);
    if (i == 0) assert_int_equal(er_store_apply(f->s, &m, 1, NULL, NULL), 0); /* b at 2 */
    json_decref(v);
  }
  assert_int_equal(er_store_doc_list(f->s, coll, NULL, 2, &out), 0);
  assert_int_equal(json_array_size(out), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "key")), "a");
  assert_string_equal(json_string_value(json_object_get(json_array_get(out, 1), "key")), "ab");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(out, 1), "value")), 4);
  json_decref(out);
  assert_int_equal(er_store_doc_list(f->s, coll, "ab", 10, &out), 0);
  assert_int_equal(json_array_size(out), 3);
  const char *rest[] = {"b", "c", "d"};
  for (int i = 0; i < 3; i++)
    assert_string_equal(json_string_value(json_object_get(json_array_get(out, i), "key")),
                        rest[i]);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(out, 0), "version")), 2);
  json_decref(out);
  assert_int_equal(er_store_doc_list(f->s, coll, "d", 10, &out), 0);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);
  er_free(coll);
}

static void test_counters(void **state) {
  fx_t *f = *state;
  need_apply(f);
  char *coll = tagged(f, "n");
  int64_t v = -1;
  assert_int_equal(need(er_store_counter_get(f->s, coll, "x", &v)), 0);
  assert_int_equal(v, 0);
  er_mut_t m = mut_counter_add(coll, "x", -3, ER_COUNTER_ANY);
  er_mut_result_t res;
  assert_int_equal(need(er_store_apply(f->s, &m, 1, &res, NULL)), 0);
  assert_int_equal(res.value, -3);
  assert_int_equal(counter(f, coll, "x"), -3);
  m = mut_counter_add(coll, "x", 3, 5);
  size_t failed = 9;
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, &failed), ER_ESTATE);
  assert_int_equal(failed, 0);
  m.if_value = -3;
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), 0);
  assert_int_equal(res.value, 0);
  assert_int_equal(counter(f, coll, "x"), 0);
  /* the same range on every store: within +-9.2e18, exact */
  m = mut_counter_add(coll, "y", 9100000000000000000LL, ER_COUNTER_ANY);
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), 0);
  assert_int_equal(counter(f, coll, "y"), 9100000000000000000LL);
  m.delta = 100000000000000000LL; /* to 9.2e18 */
  assert_int_equal(er_store_apply(f->s, &m, 1, &res, NULL), ER_EINVAL);
  assert_int_equal(counter(f, coll, "y"), 9100000000000000000LL);
  er_free(coll);
}

/* ---- batches ---------------------------------------------------------------------- */

/* A failing guard anywhere writes nothing, earlier mutations included. */
static void test_all_or_nothing(void **state) {
  fx_t *f = *state;
  need_apply(f);
  char *coll = tagged(f, "a");
  json_t *v = json_string("v");
  er_task_rec_t *r = mk(f, "t");
  er_mut_t muts[] = {
      mut_doc_put(coll, "a", v, ER_VERSION_ABSENT),
      mut_counter_add(coll, "c", 5, ER_COUNTER_ANY),
      {.kind = ER_MUT_ENQUEUE, .rec = r},
      mut_doc_put(coll, "b", v, 3), /* absent: ENOENT */
  };
  er_mut_result_t res[5];
  size_t failed = 0;
  assert_int_equal(need(er_store_apply(f->s, muts, 4, res, &failed)), ER_ENOENT);
  assert_int_equal(failed, 3);
  assert_int_equal(doc(f, coll, "a", NULL), 0);
  assert_int_equal(counter(f, coll, "c"), 0);
  assert_int_equal(get_rc(f, r->id), ER_ENOENT);
  /* without the bad guard: all of it, each later one seeing the earlier */
  muts[3] = mut_doc_put(coll, "a", v, 1);
  er_mut_t more[] = {muts[0], muts[1], muts[2], muts[3], mut_counter_add(coll, "c", 2, 5)};
  assert_int_equal(er_store_apply(f->s, more, 5, res, &failed), 0);
  assert_int_equal(failed, 5);
  assert_int_equal(res[0].version, 1);
  assert_int_equal(res[1].value, 5);
  assert_false(res[2].existing);
  assert_int_equal(res[3].version, 2);
  assert_int_equal(res[4].value, 7);
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_PENDING);
  er_task_rec_free(g);
  json_decref(v);
  er_task_rec_free(r);
  er_free(coll);
}

static void test_batch_tasks(void **state) {
  fx_t *f = *state;
  need_apply(f);
  char *coll = tagged(f, "t");
  er_task_rec_t *r = mk(f, "t");
  r->key = tagged(f, "key");
  er_mut_t m = {.kind = ER_MUT_ENQUEUE, .rec = r, .flags = ER_ENQ_IF_ABSENT};
  assert_int_equal(need(er_store_apply(f->s, &m, 1, NULL, NULL)), 0);
  /* the key rule, per record */
  er_task_rec_t *dup = mk(f, "t");
  dup->key = er_strdup(r->key);
  er_mut_t m2 = {.kind = ER_MUT_ENQUEUE, .rec = dup, .flags = ER_ENQ_IF_ABSENT};
  er_mut_result_t res;
  assert_int_equal(er_store_apply(f->s, &m2, 1, &res, NULL), 0);
  assert_true(res.existing);
  assert_string_equal(dup->id, r->id);
  er_task_rec_t *a = reserve1(f, r->eta_ms, 60000);
  /* guards on the task */
  er_mut_t g = {.kind = ER_MUT_TASK_GUARD, .id = r->id, .state = ER_STATE_STARTED,
                .attempt = a->attempt};
  assert_int_equal(er_store_apply(f->s, &g, 1, NULL, NULL), 0);
  g.attempt = a->attempt + 1;
  assert_int_equal(er_store_apply(f->s, &g, 1, NULL, NULL), ER_ESTATE);
  g = (er_mut_t){.kind = ER_MUT_TASK_GUARD, .id = "no-such-task", .state = ER_STATE_UNKNOWN};
  assert_int_equal(er_store_apply(f->s, &g, 1, NULL, NULL), ER_ENOENT);
  /* completion, then a guard that sees it, then a counter: one batch */
  json_t *result = json_integer(42);
  er_mut_t done[] = {
      {.kind = ER_MUT_COMPLETE,
       .completion = {r->id, a->attempt, ER_STATE_SUCCESS, result, NULL, 0, now_ms()}},
      {.kind = ER_MUT_TASK_GUARD, .id = r->id, .state = ER_STATE_SUCCESS},
      mut_counter_add(coll, "done", 1, ER_COUNTER_ANY),
  };
  assert_int_equal(er_store_apply(f->s, done, 3, NULL, NULL), 0);
  er_task_rec_t *got = get(f, r->id);
  assert_int_equal(got->state, ER_STATE_SUCCESS);
  assert_json_eq(got->result, result);
  er_task_rec_free(got);
  assert_int_equal(counter(f, coll, "done"), 1);
  /* a fenced completion fails the batch */
  size_t failed = 0;
  done[2] = mut_counter_add(coll, "done", 1, ER_COUNTER_ANY);
  er_mut_t again[] = {done[2], done[0]};
  assert_int_equal(er_store_apply(f->s, again, 2, NULL, &failed), ER_EFENCED);
  assert_int_equal(failed, 1);
  assert_int_equal(counter(f, coll, "done"), 1);
  json_decref(result);
  er_task_rec_free(a);
  er_task_rec_free(dup);
  er_task_rec_free(r);
  er_free(coll);
}

/* ---- precise wake-ups ---------------------------------------------------------------- */

static bool readable(er_store_t *s, int timeout_ms) {
  struct pollfd p = {.fd = er_store_wakeup_fd(s), .events = POLLIN};
  return poll(&p, 1, timeout_ms) == 1;
}

/* A watcher's reading after everything its last read missed has arrived. */
static er_wakeups_t settle(er_store_t *w) {
  er_wakeups_t wk;
  readable(w, 5000);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  return wk;
}

static void test_watch_queue(void **state) {
  fx_t *f = *state;
  need_wakeups(f);
  er_store_t *w = open_with(f, "");
  const char *qs[] = {f->queue};
  er_watch_t ws = {qs, 1, false, false};
  need(er_store_watch(w, &ws));
  if (er_store_wakeup_fd(w) < 0) { /* a backend that only polls */
    er_store_close(w);
    skip();
  }
  er_wakeups_t wk; /* the first read may report a first look */
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  /* another queue's work and a heartbeat do not wake it */
  er_task_rec_t *other = mk(f, "t");
  free(other->queue);
  other->queue = tagged(f, "other");
  assert_int_equal(enq(f, other), 0);
  json_t *info = json_pack("{s:s}", "id", f->tag);
  assert_int_equal(er_store_heartbeat(f->s, info, now_ms(), 10000), 0);
  sleep_ms(100);
  assert_false(readable(w, 0));
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_false(wk.work);
  /* its own queue's does */
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  assert_true(readable(w, 5000));
  wk = settle(w);
  assert_true(wk.work);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_false(wk.work);
  /* so do a retry and a give-back (work made due again) */
  er_task_rec_t *a = reserve1(f, r->eta_ms, 60000);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_false(complete1(f, r->id, a->attempt, ER_STATE_PENDING, NULL, NULL, now_ms(), 0));
  assert_true(settle(w).work);
  er_task_rec_t *b = reserve1(f, r->eta_ms, 60000);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_false(complete1(f, r->id, b->attempt, ER_STATE_RETRY, NULL, NULL, now_ms(),
                         now_ms() + 60000));
  assert_true(settle(w).work);
  /* and a task whose lease ended, back in the queue */
  er_task_rec_t *r2 = mk(f, "t");
  assert_int_equal(enq(f, r2), 0);
  settle(w);
  er_task_rec_t *c = reserve1(f, r2->eta_ms, 10);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, r2->eta_ms + 1000, &mc), 0);
  assert_true(mc.requeued >= 1);
  assert_true(settle(w).work);
  er_task_rec_free(c);
  er_task_rec_free(r2);
  er_task_rec_free(a);
  er_task_rec_free(b);
  json_decref(info);
  er_task_rec_free(r);
  er_task_rec_free(other);
  er_store_close(w);
}

/* Collects finished ids until want have come (a backend may deliver them
 * over more than one wake-up) or 5 s pass; returns how many. */
static size_t collect(er_store_t *w, char **ids, size_t cap, size_t want) {
  size_t n = 0;
  uint64_t deadline = er_now_mono_ms() + 5000;
  while (n < want && er_now_mono_ms() < deadline) {
    er_wakeups_t wk = settle(w);
    assert_false(wk.finished_overflow);
    for (size_t i = 0; i < wk.nfinished && n < cap; i++) ids[n++] = strdup(wk.finished[i]);
    er_wakeups_clear(&wk);
  }
  return n;
}

static bool listed(char *const *ids, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ids[i], id) == 0) return true;
  return false;
}

static void test_watch_finished(void **state) {
  fx_t *f = *state;
  need_wakeups(f);
  er_store_t *w = open_with(f, "");
  er_watch_t ws = {NULL, 0, true, false};
  need(er_store_watch(w, &ws));
  er_wakeups_t wk;
  er_task_rec_t *r[4];
  r[0] = mk(f, "t");
  assert_int_equal(enq(f, r[0]), 0);
  assert_int_equal(er_store_revoke(f->s, r[0]->id, NULL), 0); /* after watch: listed */
  for (int i = 0; i < 4; i++) {
    if (i) r[i] = mk(f, "t");
    if (i) assert_int_equal(enq(f, r[i]), 0);
  }
  er_task_rec_t *a = reserve1(f, now_ms(), 60000);
  er_task_rec_t *b = reserve1(f, now_ms(), 60000);
  json_t *err = json_pack("{s:s}", "message", "no");
  assert_false(complete1(f, a->id, a->attempt, ER_STATE_SUCCESS, NULL, NULL, now_ms(), 0));
  assert_false(complete1(f, b->id, b->attempt, ER_STATE_FAILURE, NULL, err, now_ms(), 0));
  assert_int_equal(er_store_revoke(f->s, r[3]->id, NULL), 0); /* pending: finished now */
  char *ids[8];
  size_t n = collect(w, ids, 8, 4);
  assert_int_equal(n, 4);
  assert_true(listed(ids, n, r[0]->id));
  assert_true(listed(ids, n, a->id));
  assert_true(listed(ids, n, b->id));
  assert_true(listed(ids, n, r[3]->id));
  for (size_t i = 0; i < n; i++) free(ids[i]);
  sleep_ms(50);
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  assert_int_equal(wk.nfinished, 0);
  json_decref(err);
  er_task_rec_free(a);
  er_task_rec_free(b);
  for (int i = 0; i < 4; i++) er_task_rec_free(r[i]);
  er_store_close(w);
}

static void test_watch_control(void **state) {
  fx_t *f = *state;
  need_wakeups(f);
  er_store_t *w = open_with(f, "");
  er_watch_t ws = {NULL, 0, false, true};
  need(er_store_watch(w, &ws));
  er_wakeups_t wk;
  assert_int_equal(er_store_read_wakeups(w, &wk), 0);
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  er_task_rec_t *a = reserve1(f, r->eta_ms, 60000);
  if (er_store_wakeup_fd(w) >= 0) {
    sleep_ms(50);
    assert_int_equal(er_store_read_wakeups(w, &wk), 0);
    assert_false(wk.control); /* work alone is not control */
  }
  assert_int_equal(er_store_revoke(f->s, r->id, NULL), 0);
  if (er_store_wakeup_fd(w) >= 0) assert_true(readable(w, 5000));
  wk = settle(w);
  assert_true(wk.control);
  assert_false(wk.work); /* no queue watched */
  er_task_rec_free(a);
  er_task_rec_free(r);
  er_store_close(w);
}

/* ---- next_due ----------------------------------------------------------------------------- */

/* In a store shared with other tests, their leases may end first. */
static void assert_due(const fx_t *f, int64_t got, int64_t want) {
  if (f->dir[0]) assert_int_equal(got, want);
  else assert_true(got != 0 && got <= want);
}

static void test_next_due(void **state) {
  fx_t *f = *state;
  int64_t due = -1;
  assert_int_equal(need(er_store_next_due(f->s, NULL, 0, &due)), 0);
  char *qb = tagged(f, "b");
  const char *qs[] = {f->queue, qb};
  assert_int_equal(er_store_next_due(f->s, qs, 2, &due), 0);
  if (f->dir[0]) assert_int_equal(due, 0);
  int64_t t = now_ms();
  er_task_rec_t *a = mk(f, "t"), *b = mk(f, "t"), *c = mk(f, "t");
  c->eta_ms = c->created_ms = t;
  a->eta_ms = t + 500000;
  free(b->queue);
  b->queue = er_strdup(qb);
  b->eta_ms = t + 300000;
  assert_int_equal(enq(f, a), 0);
  assert_int_equal(enq(f, b), 0);
  assert_int_equal(enq(f, c), 0); /* due now: not "later" */
  assert_int_equal(er_store_next_due(f->s, qs, 1, &due), 0);
  assert_due(f, due, t + 500000);
  assert_int_equal(er_store_next_due(f->s, qs, 2, &due), 0);
  assert_due(f, due, t + 300000);
  /* a lease on any queue counts */
  er_task_rec_t *got = reserve1(f, t, 100000);
  assert_string_equal(got->id, c->id);
  assert_int_equal(er_store_next_due(f->s, qs + 1, 1, &due), 0);
  assert_due(f, due, t + 100000);
  /* promoted and claimed: no longer due later */
  er_task_rec_t **more;
  assert_int_equal(reserve_at(f, 5, t + 500000, 1000, &more), 1);
  assert_string_equal(more[0]->id, a->id);
  er_task_rec_free_array(more, 1);
  assert_int_equal(er_store_next_due(f->s, qs, 1, &due), 0);
  assert_due(f, due, t + 100000);
  er_task_rec_free(got);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(c);
  er_free(qb);
}

int main(int argc, char **argv) {
  g_base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (g_base && !*g_base) g_base = NULL;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_docs),           T(test_doc_list),       T(test_counters),
      T(test_all_or_nothing), T(test_batch_tasks),    T(test_watch_queue),
      T(test_watch_finished), T(test_watch_control),  T(test_next_due),
  };
  return cmocka_run_group_tests_name(g_base ? g_base : "store v2 (sqlite, a file per test)",
                                     tests, NULL, NULL);
}
