/* The store conformance suite: every rule of include/errand/store.h, run
 * against one store URL. Every backend must pass it unchanged.
 *
 *   test_store_conformance [URL]      (or ERRAND_TEST_STORE=URL)
 *
 * Without a URL each test gets a fresh SQLite file in a temporary directory.
 * With one, tests share that store and keep apart by using their own queue
 * names, task names, keys and worker ids; the tests about SQLite files are
 * skipped unless the URL is sqlite:. */
#include "conformance.h"

/* ---- records, states, URLs ---------------------------------------------------------- */

static void test_state_names(void **state) {
  (void)state;
  for (int s = ER_STATE_PENDING; s <= ER_STATE_REVOKED; s++)
    assert_int_equal(er_state_from_name(er_state_name((er_task_state_t)s)), s);
  assert_string_equal(er_state_name(ER_STATE_UNKNOWN), "UNKNOWN");
  assert_int_equal(er_state_from_name("success"), ER_STATE_SUCCESS);
  assert_int_equal(er_state_from_name("nope"), ER_STATE_UNKNOWN);
  assert_int_equal(er_state_from_name(NULL), ER_STATE_UNKNOWN);
  er_task_rec_free(NULL);
  er_task_rec_free_array(NULL, 0);
  er_store_close(NULL);
}

static void test_unknown_url(void **state) {
  (void)state;
  er_store_t *s = (er_store_t *)1;
  char err[256];
  assert_int_equal(er_store_open("foo:bar", &s, err, sizeof err), ER_EINVAL);
  assert_null(s);
  assert_non_null(strstr(err, "unknown store URL 'foo:bar'"));
  assert_non_null(strstr(err, "sqlite:PATH"));
  assert_int_equal(er_store_open("nocolon", &s, err, sizeof err), ER_EINVAL);
  assert_int_equal(er_store_open("sqlite:/tmp/x.db?tombstone=5", &s, err, sizeof err),
                   ER_EINVAL);
  assert_non_null(strstr(err, "tombstone"));
  assert_int_equal(er_store_open("sqlite:/tmp/x.db?tombstone_ms=abc", &s, NULL, 0), ER_EINVAL);
  assert_int_equal(er_store_open("sqlite:/tmp/x.db?max_payload=-1", &s, NULL, 0), ER_EINVAL);
  assert_int_equal(er_store_open("sqlite:/tmp/x.db?sync=sometimes", &s, NULL, 0), ER_EINVAL);
  assert_int_equal(er_store_open("sqlite:", &s, err, sizeof err), ER_EINVAL);
  assert_int_equal(er_store_open("sqlite:/nonexistent-dir/x/y.db", &s, err, sizeof err),
                   ER_EUNAVAILABLE);
  assert_null(s);
}

static void test_default_url(void **state) {
  (void)state;
  const char *old = getenv("ERRAND_STORE");
  char *saved = old ? strdup(old) : NULL;
  unsetenv("ERRAND_STORE");
  assert_string_equal(er_store_default_url(), "sqlite:errand.db");
  setenv("ERRAND_STORE", "sqlite:/tmp/elsewhere.db", 1);
  assert_string_equal(er_store_default_url(), "sqlite:/tmp/elsewhere.db");
  if (saved) setenv("ERRAND_STORE", saved, 1);
  else unsetenv("ERRAND_STORE");
  free(saved);
}

static void test_options(void **state) {
  fx_t *f = *state;
  er_store_t *s = open_with(f, "max_payload=1234&tombstone_ms=7");
  assert_int_equal(er_store_max_payload(s), 1234);
  assert_int_equal(s->tombstone_ms, 7);
  assert_non_null(strstr(er_store_url(s), "max_payload=1234"));
  er_store_close(s);
  assert_int_equal(er_store_max_payload(f->s), 1 << 20);
  if (is_sqlite(f)) {
    s = open_with(f, "sync=full&busy_ms=100");
    er_task_rec_t *r = mk(f, "t");
    assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
    er_task_rec_free(r);
    er_store_close(s);
  }
  if (is_sqlite(f) && f->dir[0]) {
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s/store.db", f->dir); /* sqlite:///tmp/... */
    assert_int_equal(er_store_open(url, &s, NULL, 0), 0);
    er_store_close(s);
  }
}

/* ---- enqueue and get ---------------------------------------------------------------- */

static void test_roundtrip(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "mod.add");
  r->priority = 7;
  json_array_append_new(r->args, json_integer(1));
  json_array_append_new(r->args, json_string("two"));
  json_object_set_new(r->kwargs, "x", json_real(1.5));
  r->context = json_pack("{s:s, s:{s:b}}", "user", "alice", "req", "admin", 1);
  r->name = tagged(f, "name");
  r->key = tagged(f, "key");
  r->created_ms = now_ms() - 5;
  r->eta_ms = r->created_ms + 1;
  r->expires_ms = r->created_ms + 3600000;
  r->max_retries = 4;
  r->soft_limit_ms = 1000;
  r->hard_limit_ms = 2000;
  r->result_ttl_ms = 60000;
  r->ignore_result = true;
  r->state = ER_STATE_FAILURE; /* enqueue sets PENDING */
  bool existing = true;
  assert_int_equal(er_store_enqueue(f->s, &r, 1, ER_ENQ_IF_ABSENT, &existing), 0);
  assert_false(existing);
  assert_int_equal(r->state, ER_STATE_PENDING);

  er_task_rec_t *g = get(f, r->id);
  assert_string_equal(g->id, r->id);
  assert_string_equal(g->task, "mod.add");
  assert_string_equal(g->queue, f->queue);
  assert_int_equal(g->priority, 7);
  assert_int_equal(g->state, ER_STATE_PENDING);
  assert_json_eq(g->args, r->args);
  assert_json_eq(g->kwargs, r->kwargs);
  assert_json_eq(g->context, r->context);
  assert_string_equal(g->name, r->name);
  assert_string_equal(g->key, r->key);
  assert_int_equal(g->created_ms, r->created_ms);
  assert_int_equal(g->eta_ms, r->eta_ms);
  assert_int_equal(g->expires_ms, r->expires_ms);
  assert_int_equal(g->started_ms, 0);
  assert_int_equal(g->finished_ms, 0);
  assert_int_equal(g->attempt, 0);
  assert_int_equal(g->retries, 0);
  assert_int_equal(g->max_retries, 4);
  assert_int_equal(g->soft_limit_ms, 1000);
  assert_int_equal(g->hard_limit_ms, 2000);
  assert_int_equal(g->result_ttl_ms, 60000);
  assert_true(g->ignore_result);
  assert_false(g->revoke_requested);
  assert_true(g->progress < 0);
  assert_null(g->progress_msg);
  assert_null(g->result);
  assert_null(g->error);
  assert_null(g->worker);
  assert_int_equal(g->lease_until_ms, 0);
  er_task_rec_free(g);

  /* by key */
  assert_int_equal(er_store_get(f->s, NULL, r->key, &g), 0);
  assert_string_equal(g->id, r->id);
  er_task_rec_free(g);
  /* absent fields stay absent */
  er_task_rec_t *m = mk(f, "t");
  assert_int_equal(enq(f, m), 0);
  g = get(f, m->id);
  assert_null(g->context);
  assert_null(g->name);
  assert_null(g->key);
  assert_int_equal(g->max_retries, -1);
  assert_int_equal(g->expires_ms, 0);
  assert_false(g->ignore_result);
  er_task_rec_free(g);
  er_task_rec_free(m);
  er_task_rec_free(r);
}

static void test_get_unknown(void **state) {
  fx_t *f = *state;
  er_task_rec_t *g = (er_task_rec_t *)1;
  assert_int_equal(er_store_get(f->s, "00000000-0000-7000-8000-000000000000", NULL, &g),
                   ER_ENOENT);
  assert_null(g);
  assert_true(strlen(er_store_last_error(f->s)) > 0);
  char *key = tagged(f, "nokey");
  assert_int_equal(er_store_get(f->s, NULL, key, &g), ER_ENOENT);
  assert_int_equal(er_store_get(f->s, NULL, NULL, &g), ER_EINVAL);
  er_free(key);
}

static void test_invalid_records(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t");
  json_decref(r->args);
  r->args = json_object();
  assert_int_equal(enq(f, r), ER_EINVAL);
  json_decref(r->args);
  r->args = json_array();
  er_free(r->queue);
  r->queue = NULL;
  assert_int_equal(enq(f, r), ER_EINVAL);
  r->queue = er_strdup(f->queue);
  assert_int_equal(enq(f, r), 0);
  /* the same id twice */
  assert_int_equal(enq(f, r), ER_EEXIST);
  er_task_rec_free(r);
}

static void test_batch(void **state) {
  fx_t *f = *state;
  er_task_rec_t *rs[3] = {mk(f, "a"), mk(f, "b"), mk(f, "c")};
  bool ex[3] = {true, true, true};
  assert_int_equal(er_store_enqueue(f->s, rs, 3, 0, ex), 0);
  for (int i = 0; i < 3; i++) {
    assert_false(ex[i]);
    assert_int_equal(get_rc(f, rs[i]->id), 0);
    er_task_rec_free(rs[i]);
  }
  assert_int_equal(er_store_enqueue(f->s, NULL, 0, 0, NULL), 0);
}

static void test_batch_all_or_nothing(void **state) {
  fx_t *f = *state;
  er_task_rec_t *rs[3] = {mk(f, "a"), mk(f, "b"), mk(f, "c")};
  rs[0]->name = tagged(f, "dup");
  rs[2]->name = tagged(f, "dup");
  assert_int_equal(er_store_enqueue(f->s, rs, 3, 0, NULL), ER_EEXIST);
  assert_true(strlen(er_store_last_error(f->s)) > 0);
  for (int i = 0; i < 3; i++) assert_int_equal(get_rc(f, rs[i]->id), ER_ENOENT);
  /* the name was not taken by the failed batch */
  er_free(rs[2]->name);
  rs[2]->name = NULL;
  assert_int_equal(er_store_enqueue(f->s, rs, 3, 0, NULL), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(get_rc(f, rs[i]->id), 0);
    er_task_rec_free(rs[i]);
  }
}

static void test_named_tasks(void **state) {
  fx_t *f = *state; /* opened with tombstone_ms=50 */
  er_task_rec_t *a = mk(f, "t");
  a->name = tagged(f, "nightly");
  assert_int_equal(enq(f, a), 0);
  er_task_rec_t *b = mk(f, "t");
  b->name = tagged(f, "nightly");
  assert_int_equal(enq(f, b), ER_EEXIST);
  assert_int_equal(get_rc(f, b->id), ER_ENOENT);
  /* still taken while it runs */
  er_task_rec_t *run = reserve1(f, now_ms(), 60000);
  b->created_ms = now_ms();
  assert_int_equal(enq(f, b), ER_EEXIST);
  assert_false(complete1(f, run->id, run->attempt, ER_STATE_SUCCESS, NULL, NULL, now_ms(), 0));
  /* finished: tombstoned for 50 ms */
  b->created_ms = now_ms();
  assert_int_equal(enq(f, b), ER_ETOMBSTONED);
  assert_non_null(strstr(er_store_last_error(f->s), "tombstone"));
  sleep_ms(80);
  b->created_ms = now_ms();
  assert_int_equal(enq(f, b), 0);
  assert_int_equal(get_rc(f, b->id), 0);
  er_task_rec_free(run);
  er_task_rec_free(a);
  er_task_rec_free(b);
}

static void test_if_absent(void **state) {
  fx_t *f = *state;
  er_task_rec_t *a = mk(f, "t"), *b = mk(f, "t"), *c = mk(f, "t");
  a->key = tagged(f, "k");
  b->key = tagged(f, "k");
  c->key = tagged(f, "k");
  assert_int_equal(er_store_enqueue(f->s, &a, 1, ER_ENQ_IF_ABSENT, NULL), 0);
  char b_id[ER_ID_LEN + 1];
  memcpy(b_id, b->id, sizeof b_id);
  bool ex = false;
  assert_int_equal(er_store_enqueue(f->s, &b, 1, ER_ENQ_IF_ABSENT, &ex), 0);
  assert_true(ex);
  assert_string_equal(b->id, a->id);
  assert_int_equal(get_rc(f, b_id), ER_ENOENT);
  /* live while running */
  er_task_rec_t *run = reserve1(f, now_ms(), 60000);
  assert_string_equal(run->id, a->id);
  ex = false;
  assert_int_equal(er_store_enqueue(f->s, &c, 1, ER_ENQ_IF_ABSENT, &ex), 0);
  assert_true(ex);
  assert_string_equal(c->id, a->id);
  /* live after success while its result is kept */
  json_t *res = json_integer(42);
  assert_false(complete1(f, a->id, run->attempt, ER_STATE_SUCCESS, res, NULL, now_ms(), 0));
  json_decref(res);
  er_task_rec_t *d = mk(f, "t");
  d->key = tagged(f, "k");
  ex = false;
  assert_int_equal(er_store_enqueue(f->s, &d, 1, ER_ENQ_IF_ABSENT, &ex), 0);
  assert_true(ex);
  assert_string_equal(d->id, a->id);
  er_task_rec_free(d);
  /* without the flag a new task is added, and get by key gives the newest */
  er_task_rec_t *e = mk(f, "t");
  e->key = tagged(f, "k");
  assert_int_equal(er_store_enqueue(f->s, &e, 1, 0, NULL), 0);
  er_task_rec_t *g = NULL;
  assert_int_equal(er_store_get(f->s, NULL, e->key, &g), 0);
  assert_string_equal(g->id, e->id);
  er_task_rec_free(g);
  er_task_rec_free(run);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(c);
  er_task_rec_free(e);
}

static void test_if_absent_not_live(void **state) {
  fx_t *f = *state;
  /* a failed task, and a success without a kept result, are not live */
  er_task_rec_t *a = mk(f, "t");
  a->key = tagged(f, "k2");
  a->ignore_result = true;
  assert_int_equal(enq(f, a), 0);
  er_task_rec_t *run = reserve1(f, now_ms(), 60000);
  json_t *res = json_integer(1);
  complete1(f, run->id, run->attempt, ER_STATE_SUCCESS, res, NULL, now_ms(), 0);
  json_decref(res);
  er_task_rec_t *g = get(f, a->id);
  assert_int_equal(g->state, ER_STATE_SUCCESS);
  assert_null(g->result); /* ignore_result: state kept, result dropped */
  er_task_rec_free(g);
  er_task_rec_t *b = mk(f, "t");
  b->key = tagged(f, "k2");
  bool ex = true;
  assert_int_equal(er_store_enqueue(f->s, &b, 1, ER_ENQ_IF_ABSENT, &ex), 0);
  assert_false(ex);
  assert_string_not_equal(b->id, a->id);
  er_task_rec_free(run);
  run = reserve1(f, now_ms(), 60000);
  json_t *err = json_pack("{s:i, s:s, s:s}", "code", ER_EFAIL, "name", "EFAIL", "message", "x");
  complete1(f, run->id, run->attempt, ER_STATE_FAILURE, NULL, err, now_ms(), 0);
  g = get(f, b->id);
  assert_int_equal(g->state, ER_STATE_FAILURE);
  assert_json_eq(g->error, err);
  assert_true(g->finished_ms > 0);
  er_task_rec_free(g);
  json_decref(err);
  er_task_rec_t *c = mk(f, "t");
  c->key = tagged(f, "k2");
  ex = true;
  assert_int_equal(er_store_enqueue(f->s, &c, 1, ER_ENQ_IF_ABSENT, &ex), 0);
  assert_false(ex);
  er_task_rec_free(run);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(c);
}

/* ---- reserve ------------------------------------------------------------------------ */

static void test_priority_fifo(void **state) {
  fx_t *f = *state;
  int prio[] = {0, 5, 0, 5, 1, -3};
  int expect[] = {1, 3, 4, 0, 2, 5}; /* indexes, in the order they must come */
  er_task_rec_t *rs[6];
  int64_t t = now_ms();
  for (int i = 0; i < 6; i++) {
    rs[i] = mk(f, "t");
    rs[i]->priority = prio[i];
    rs[i]->created_ms = rs[i]->eta_ms = t; /* same time: ties go by enqueue order */
    assert_int_equal(enq(f, rs[i]), 0);
  }
  /* one call */
  er_task_rec_t **got = NULL;
  size_t n = reserve_at(f, 10, t, 60000, &got);
  assert_int_equal(n, 6);
  for (int i = 0; i < 6; i++) {
    assert_string_equal(got[i]->id, rs[expect[i]]->id);
    assert_int_equal(got[i]->state, ER_STATE_STARTED);
    assert_int_equal(got[i]->attempt, 1);
    assert_string_equal(got[i]->worker, "w-test");
    assert_int_equal(got[i]->lease_until_ms, t + 60000);
    assert_int_equal(got[i]->started_ms, t);
  }
  er_task_rec_free_array(got, n);
  assert_int_equal(reserve_at(f, 10, t, 60000, &got), 0);
  er_task_rec_free_array(got, 0);
  for (int i = 0; i < 6; i++) er_task_rec_free(rs[i]);

  /* one at a time, and earlier eta first within a priority */
  er_task_rec_t *x = mk(f, "t"), *y = mk(f, "t");
  x->eta_ms = t - 10;
  y->eta_ms = t - 20;
  assert_int_equal(enq(f, x), 0);
  assert_int_equal(enq(f, y), 0);
  er_task_rec_t *r1 = reserve1(f, t, 1000), *r2 = reserve1(f, t, 1000);
  assert_string_equal(r1->id, y->id);
  assert_string_equal(r2->id, x->id);
  er_task_rec_free(r1);
  er_task_rec_free(r2);
  er_task_rec_free(x);
  er_task_rec_free(y);
}

static void test_queue_order(void **state) {
  fx_t *f = *state;
  char q2[80];
  snprintf(q2, sizeof q2, "%s-b", f->queue);
  er_task_rec_t *a = mk(f, "t"), *b = mk(f, "t"), *c = mk(f, "t");
  a->priority = 9; /* a high priority in a later queue does not jump ahead */
  er_free(b->queue);
  b->queue = er_strdup(q2);
  er_free(c->queue);
  c->queue = er_strdup(q2);
  er_task_rec_t *rs[] = {a, b, c};
  assert_int_equal(er_store_enqueue(f->s, rs, 3, 0, NULL), 0);
  const char *qs[] = {q2, f->queue};
  er_reserve_req_t req = {qs, 2, "w", now_ms(), 1000, 2};
  er_task_rec_t **got;
  size_t n;
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(got[0]->id, b->id);
  assert_string_equal(got[1]->id, c->id);
  er_task_rec_free_array(got, n);
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, a->id);
  er_task_rec_free_array(got, n);
  /* a queue not asked for is not touched */
  er_task_rec_t *d = mk(f, "t");
  assert_int_equal(enq(f, d), 0);
  req.queues = (const char *[]){q2};
  req.nqueues = 1;
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  assert_int_equal(n, 0);
  er_task_rec_free_array(got, n);
  for (int i = 0; i < 3; i++) er_task_rec_free(rs[i]);
  er_task_rec_free(d);
}

static void test_eta(void **state) {
  fx_t *f = *state;
  int64_t t = now_ms();
  er_task_rec_t *r = mk(f, "t");
  r->eta_ms = t + 1000;
  assert_int_equal(enq(f, r), 0);
  er_task_rec_t **got;
  assert_int_equal(reserve_at(f, 5, t, 1000, &got), 0);
  er_task_rec_free_array(got, 0);
  assert_int_equal(reserve_at(f, 5, t + 999, 1000, &got), 0);
  er_task_rec_free_array(got, 0);
  er_task_rec_t *g = reserve1(f, t + 1000, 1000);
  assert_string_equal(g->id, r->id);
  er_task_rec_free(g);
  er_task_rec_free(r);
}

static void test_expiry(void **state) {
  fx_t *f = *state;
  int64_t t = now_ms();
  er_task_rec_t *old = mk(f, "t"), *ok = mk(f, "t");
  old->priority = 5; /* first in line, but expired */
  old->expires_ms = t + 100;
  old->name = tagged(f, "exp");
  ok->expires_ms = t + 100000;
  assert_int_equal(enq(f, old), 0);
  assert_int_equal(enq(f, ok), 0);
  er_task_rec_t *g = reserve1(f, t + 200, 1000);
  assert_string_equal(g->id, ok->id);
  er_task_rec_free(g);
  g = get(f, old->id);
  assert_int_equal(g->state, ER_STATE_REVOKED);
  assert_int_equal(g->attempt, 0);
  assert_string_equal(json_string_value(json_object_get(g->error, "name")), "EREVOKED");
  assert_string_equal(json_string_value(json_object_get(g->error, "message")), "expired");
  assert_int_equal(json_integer_value(json_object_get(g->error, "code")), ER_EREVOKED);
  assert_int_equal(g->finished_ms, t + 200);
  er_task_rec_free(g);
  er_task_rec_t **got;
  assert_int_equal(reserve_at(f, 5, t + 300, 1000, &got), 0);
  er_task_rec_free_array(got, 0);
  er_task_rec_free(old);
  er_task_rec_free(ok);
}

/* ---- leases ------------------------------------------------------------------------- */

static void test_lease_fencing(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  int64_t t = r->eta_ms; /* due from then */
  er_task_rec_t *a1 = reserve1(f, t, 100);
  assert_int_equal(a1->attempt, 1);
  assert_int_equal(er_store_progress(f->s, r->id, 1, 0.25, "quarter"), 0);
  er_task_rec_t *g = get(f, r->id);
  assert_true(g->progress > 0.24 && g->progress < 0.26);
  assert_string_equal(g->progress_msg, "quarter");
  er_task_rec_free(g);
  /* not yet expired: maintain leaves it */
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, t + 50, &mc), 0);
  assert_int_equal(mc.requeued, 0);
  /* expired: back to the queue, no retry counted */
  assert_int_equal(er_store_maintain(f->s, t + 101, &mc), 0);
  assert_int_equal(mc.requeued, 1);
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_PENDING);
  assert_int_equal(g->retries, 0);
  assert_int_equal(g->attempt, 1);
  assert_null(g->worker);
  er_task_rec_free(g);
  /* the stale attempt is fenced even before another takes it */
  assert_int_equal(er_store_progress(f->s, r->id, 1, 0.5, NULL), ER_EFENCED);
  assert_true(complete1(f, r->id, 1, ER_STATE_SUCCESS, NULL, NULL, t + 102, 0));
  er_task_rec_t *a2 = reserve1(f, t + 103, 100);
  assert_int_equal(a2->attempt, 2);
  assert_true(a2->progress < 0);
  /* the stale attempt is fenced, the record untouched */
  json_t *stale = json_string("stale");
  assert_true(complete1(f, r->id, 1, ER_STATE_SUCCESS, stale, NULL, t + 104, 0));
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_STARTED);
  assert_int_equal(g->attempt, 2);
  assert_null(g->result);
  er_task_rec_free(g);
  /* the owner completes */
  json_t *res = json_pack("{s:i}", "sum", 3);
  assert_false(complete1(f, r->id, 2, ER_STATE_SUCCESS, res, NULL, t + 105, 0));
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_SUCCESS);
  assert_json_eq(g->result, res);
  assert_int_equal(g->finished_ms, t + 105);
  assert_int_equal(g->retries, 0);
  er_task_rec_free(g);
  /* completing again is fenced */
  assert_true(complete1(f, r->id, 2, ER_STATE_FAILURE, NULL, NULL, t + 106, 0));
  json_decref(stale);
  json_decref(res);
  er_task_rec_free(a1);
  er_task_rec_free(a2);
  er_task_rec_free(r);
}

static void test_renew_and_revoke(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  int64_t t = r->eta_ms; /* due from then */
  er_task_rec_t *a = reserve1(f, t, 100);
  const char *ids[] = {a->id, a->id};
  int attempts[] = {a->attempt, a->attempt + 7};
  bool revoked[2] = {true, true}, fenced[2] = {true, false};
  assert_int_equal(er_store_renew(f->s, ids, attempts, 2, t + 5000, revoked, fenced), 0);
  assert_false(revoked[0]);
  assert_false(fenced[0]);
  assert_true(fenced[1]);
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->lease_until_ms, t + 5000);
  er_task_rec_free(g);
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, t + 200, &mc), 0);
  assert_int_equal(mc.requeued, 0);
  /* revoking a running task asks its worker, which sees it at renewal */
  er_task_state_t was;
  assert_int_equal(er_store_revoke(f->s, r->id, &was), 0);
  assert_int_equal(was, ER_STATE_STARTED);
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_STARTED);
  assert_true(g->revoke_requested);
  er_task_rec_free(g);
  assert_int_equal(er_store_renew(f->s, ids, attempts, 1, t + 6000, revoked, fenced), 0);
  assert_true(revoked[0]);
  assert_false(fenced[0]);
  assert_false(complete1(f, a->id, a->attempt, ER_STATE_REVOKED, NULL, NULL, t + 300, 0));
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_REVOKED);
  assert_string_equal(json_string_value(json_object_get(g->error, "name")), "EREVOKED");
  er_task_rec_free(g);
  /* revoking a finished task changes nothing */
  assert_int_equal(er_store_revoke(f->s, r->id, &was), 0);
  assert_int_equal(was, ER_STATE_REVOKED);
  /* a pending task is revoked at once and never runs */
  er_task_rec_t *p = mk(f, "t");
  p->name = tagged(f, "rv");
  assert_int_equal(enq(f, p), 0);
  assert_int_equal(er_store_revoke(f->s, p->id, &was), 0);
  assert_int_equal(was, ER_STATE_PENDING);
  g = get(f, p->id);
  assert_int_equal(g->state, ER_STATE_REVOKED);
  assert_true(g->finished_ms > 0);
  er_task_rec_free(g);
  er_task_rec_t **got;
  assert_int_equal(reserve_at(f, 5, now_ms(), 100, &got), 0);
  er_task_rec_free_array(got, 0);
  /* its name is tombstoned */
  er_task_rec_t *p2 = mk(f, "t");
  p2->name = tagged(f, "rv");
  assert_int_equal(enq(f, p2), ER_ETOMBSTONED);
  assert_int_equal(er_store_revoke(f->s, "00000000-0000-7000-8000-00000000dead", &was),
                   ER_ENOENT);
  assert_int_equal(was, ER_STATE_UNKNOWN);
  er_task_rec_free(p);
  er_task_rec_free(p2);
  er_task_rec_free(a);
  er_task_rec_free(r);
}

static void test_revoke_requested_lease_lost(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  int64_t t = r->eta_ms; /* due from then */
  er_task_rec_t *a = reserve1(f, t, 100);
  assert_int_equal(er_store_revoke(f->s, r->id, NULL), 0);
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, t + 200, &mc), 0);
  assert_int_equal(mc.requeued, 0);
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_REVOKED);
  er_task_rec_free(g);
  er_task_rec_free(a);
  er_task_rec_free(r);
}

static void test_retry(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  int64_t t = r->eta_ms; /* due from then */
  er_task_rec_t *a = reserve1(f, t, 1000);
  json_t *err = json_pack("{s:i, s:s, s:s}", "code", ER_ERETRY, "name", "ERETRY", "message",
                          "try again");
  assert_false(complete1(f, r->id, a->attempt, ER_STATE_RETRY, NULL, err, t + 1, t + 500));
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_RETRY);
  assert_int_equal(g->retries, 1);
  assert_int_equal(g->eta_ms, t + 500);
  assert_json_eq(g->error, err);
  assert_null(g->worker);
  assert_int_equal(g->finished_ms, 0);
  er_task_rec_free(g);
  er_task_rec_t **got;
  assert_int_equal(reserve_at(f, 5, t + 499, 1000, &got), 0);
  er_task_rec_free_array(got, 0);
  er_task_rec_t *b = reserve1(f, t + 500, 1000);
  assert_int_equal(b->attempt, 2);
  assert_int_equal(b->retries, 1);
  assert_int_equal(b->state, ER_STATE_STARTED);
  /* the old attempt cannot retry it again */
  assert_true(complete1(f, r->id, a->attempt, ER_STATE_RETRY, NULL, err, t + 501, t + 600));
  json_t *res = json_true();
  assert_false(complete1(f, r->id, b->attempt, ER_STATE_SUCCESS, res, NULL, t + 502, 0));
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_SUCCESS);
  assert_int_equal(g->retries, 1);
  er_task_rec_free(g);
  json_decref(res);
  json_decref(err);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(r);
}

/* A worker that stops gives its running task back: queued again at once, no
 * retry counted, and the stale attempt is fenced out afterwards. */
static void test_give_back(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  int64_t t = r->eta_ms;
  er_task_rec_t *a = reserve1(f, t, 60000);
  assert_false(complete1(f, r->id, a->attempt, ER_STATE_PENDING, NULL, NULL, t + 1, 0));
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_PENDING);
  assert_int_equal(g->retries, 0);
  assert_null(g->worker);
  er_task_rec_free(g);
  er_task_rec_t *b = reserve1(f, t + 2, 60000);
  assert_int_equal(b->attempt, a->attempt + 1);
  assert_true(complete1(f, r->id, a->attempt, ER_STATE_PENDING, NULL, NULL, t + 3, 0));
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_STARTED);
  er_task_rec_free(g);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(r);
}

/* A worker that lacks a task gives it back for a while: it is not due before
 * the time given, then comes after what was queued before that time; no
 * retry is counted. A time before the task's own eta changes nothing. */
static void test_give_back_later(void **state) {
  fx_t *f = *state;
  er_task_rec_t *r = mk(f, "t"), *o = mk(f, "t");
  int64_t t = r->eta_ms;
  o->eta_ms = t + 100; /* queued for later */
  assert_int_equal(enq(f, r), 0);
  assert_int_equal(enq(f, o), 0);
  er_task_rec_t *a = reserve1(f, t, 60000);
  assert_string_equal(a->id, r->id);
  assert_false(complete1(f, r->id, a->attempt, ER_STATE_PENDING, NULL, NULL, t + 1, t + 500));
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_PENDING);
  assert_int_equal(g->retries, 0);
  assert_int_equal(g->eta_ms, t + 500);
  assert_null(g->worker);
  er_task_rec_free(g);
  const char *qs[] = {f->queue};
  int64_t due = 0;
  int rc = er_store_next_due(f->s, qs, 1, &due);
  if (rc != ER_ENOTSUP) {
    assert_int_equal(rc, 0);
    assert_int_equal(due, t + 100); /* o's eta, the earliest */
  }
  er_task_rec_t **got = NULL;
  assert_int_equal(reserve_at(f, 5, t + 499, 60000, &got), 1); /* o alone */
  assert_string_equal(got[0]->id, o->id);
  er_task_rec_free_array(got, 1);
  er_task_rec_t *b = reserve1(f, t + 500, 60000);
  assert_string_equal(b->id, r->id);
  assert_int_equal(b->attempt, a->attempt + 1);
  /* an earlier time than the eta: due as it was */
  assert_false(complete1(f, r->id, b->attempt, ER_STATE_PENDING, NULL, NULL, t + 501, t + 200));
  g = get(f, r->id);
  assert_int_equal(g->eta_ms, t + 500);
  er_task_rec_free(g);
  er_task_rec_t *c = reserve1(f, t + 502, 60000);
  assert_string_equal(c->id, r->id);
  er_task_rec_free(a);
  er_task_rec_free(b);
  er_task_rec_free(c);
  er_task_rec_free(o);
  er_task_rec_free(r);
}

int main(int argc, char **argv) {
  g_base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (g_base && !*g_base) g_base = NULL;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_unknown_url),
      cmocka_unit_test(test_default_url),
      T(test_options),
      T(test_roundtrip),
      T(test_get_unknown),
      T(test_invalid_records),
      T(test_batch),
      T(test_batch_all_or_nothing),
      T(test_named_tasks),
      T(test_if_absent),
      T(test_if_absent_not_live),
      T(test_priority_fifo),
      T(test_queue_order),
      T(test_eta),
      T(test_expiry),
      T(test_lease_fencing),
      T(test_renew_and_revoke),
      T(test_revoke_requested_lease_lost),
      T(test_retry),
      T(test_give_back),
      T(test_give_back_later),
      T(test_result_ttl),
      T(test_purge),
      T(test_stats),
      T(test_heartbeats),
      T(test_too_big),
      T(test_corrupt_file),
      T(test_schema_version),
      T(test_busy),
      T(test_concurrent_create),
      T(test_wake_other_process),
      T(test_wait_timeout),
      T(test_multi_process),
      T(test_complete_oom),
  };
  return cmocka_run_group_tests_name(g_base ? g_base : "store (sqlite, a file per test)", tests,
                                     NULL, NULL);
}
