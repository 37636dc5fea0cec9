/* Listing tasks and counts by task name, on every backend (the URL as for
 * the conformance suite). A shared store holds other tests' tasks too, so
 * each test filters by its own queue or task names, or looks only at the
 * newest tasks, which are its own. */
#include <jansson.h>

#include "conformance.h"

typedef struct page {
  er_task_rec_t **recs;
  size_t n;
  char next[ER_ID_LEN + 1];
} page_t;

static void list_ok(fx_t *f, const er_task_list_req_t *req, page_t *p) {
  int rc = er_store_list_tasks(f->s, req, &p->recs, &p->n, p->next);
  if (rc) fail_msg("list_tasks: %s: %s", er_err_name(rc), er_store_last_error(f->s));
}

static void page_free(page_t *p) {
  er_task_rec_free_array(p->recs, p->n);
  memset(p, 0, sizeof *p);
}

static char *task_name(const fx_t *f, const char *what) { return tagged(f, what); }

/* n tasks on f's queue, alternately of tasks a and b, ids in creation
 * order (ids[0] oldest). */
static void enqueue_n(fx_t *f, size_t n, const char *a, const char *b, char (*ids)[ER_ID_LEN + 1]) {
  for (size_t i = 0; i < n; i++) {
    er_task_rec_t *r = mk(f, i % 2 ? b : a);
    json_array_append_new(r->args, json_integer((json_int_t)i));
    assert_int_equal(enq(f, r), 0);
    memcpy(ids[i], r->id, sizeof ids[i]);
    er_task_rec_free(r);
  }
}

static void test_list_pages(void **state) {
  fx_t *f = *state;
  char *a = task_name(f, "add"), *b = task_name(f, "mul");
  char ids[7][ER_ID_LEN + 1];
  enqueue_n(f, 7, a, b, ids);
  er_task_list_req_t req = {.queue = f->queue, .limit = 3};
  page_t p;
  size_t seen = 0;
  char cursor[ER_ID_LEN + 1] = "";
  for (int pg = 0; pg < 3; pg++) {
    req.cursor = cursor;
    list_ok(f, &req, &p);
    assert_int_equal(p.n, pg < 2 ? 3 : 1);
    for (size_t i = 0; i < p.n; i++, seen++) {
      /* newest first, with args, without the result */
      assert_string_equal(p.recs[i]->id, ids[6 - seen]);
      assert_string_equal(p.recs[i]->task, seen % 2 ? b : a);
      assert_int_equal(json_integer_value(json_array_get(p.recs[i]->args, 0)), 6 - seen);
      assert_int_equal(p.recs[i]->state, ER_STATE_PENDING);
      assert_null(p.recs[i]->result);
    }
    if (pg < 2) assert_string_equal(p.next, p.recs[p.n - 1]->id);
    else assert_string_equal(p.next, ""); /* the last page */
    memcpy(cursor, p.next, sizeof cursor);
    page_free(&p);
  }
  /* exactly a page's worth: no cursor */
  req.cursor = NULL;
  req.limit = 7;
  list_ok(f, &req, &p);
  assert_int_equal(p.n, 7);
  assert_string_equal(p.next, "");
  page_free(&p);
  /* without a filter, the newest tasks of the store are this test's */
  er_task_list_req_t all = {.limit = 2};
  list_ok(f, &all, &p);
  assert_int_equal(p.n, 2);
  assert_string_equal(p.recs[0]->id, ids[6]);
  assert_string_equal(p.recs[1]->id, ids[5]);
  assert_string_equal(p.next, ids[5]);
  page_free(&p);
  /* limit 0: the default page */
  er_task_list_req_t dflt = {.queue = f->queue};
  list_ok(f, &dflt, &p);
  assert_int_equal(p.n, 7);
  page_free(&p);
  er_free(a);
  er_free(b);
}

static void test_list_filters(void **state) {
  fx_t *f = *state;
  char *a = task_name(f, "add"), *b = task_name(f, "mul");
  char ids[6][ER_ID_LEN + 1];
  enqueue_n(f, 6, a, b, ids); /* a: 0 2 4, b: 1 3 5 */
  int64_t t = now_ms();
  er_task_rec_t *r1 = reserve1(f, t + 1, 60000); /* ids[0], add */
  er_task_rec_t *r2 = reserve1(f, t + 1, 60000); /* ids[1], mul */
  assert_string_equal(r1->id, ids[0]);
  json_t *res = json_integer(42);
  complete1(f, r1->id, r1->attempt, ER_STATE_SUCCESS, res, NULL, t + 2, 0);
  json_decref(res);
  assert_int_equal(er_store_revoke(f->s, ids[4], NULL), 0);
  page_t p;
  er_task_list_req_t req = {.queue = f->queue, .by_state = true, .state = ER_STATE_SUCCESS};
  list_ok(f, &req, &p);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.recs[0]->id, ids[0]);
  assert_null(p.recs[0]->result); /* er_store_get reads it */
  assert_non_null(p.recs[0]->kwargs);
  assert_true(p.recs[0]->finished_ms > 0);
  page_free(&p);
  req.state = ER_STATE_STARTED;
  list_ok(f, &req, &p);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.recs[0]->id, ids[1]);
  page_free(&p);
  req.state = ER_STATE_PENDING; /* 2, 3, 5 */
  list_ok(f, &req, &p);
  assert_int_equal(p.n, 3);
  assert_string_equal(p.recs[0]->id, ids[5]);
  assert_string_equal(p.recs[2]->id, ids[2]);
  page_free(&p);
  /* by task name (any queue), and by name and state */
  er_task_list_req_t byname = {.task = a};
  list_ok(f, &byname, &p);
  assert_int_equal(p.n, 3);
  assert_string_equal(p.recs[0]->id, ids[4]);
  assert_int_equal(p.recs[0]->state, ER_STATE_REVOKED);
  page_free(&p);
  byname.by_state = true;
  byname.state = ER_STATE_PENDING;
  list_ok(f, &byname, &p);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.recs[0]->id, ids[2]);
  page_free(&p);
  /* a queue nobody uses */
  char *other = tagged(f, "nobody");
  er_task_list_req_t none = {.queue = other};
  list_ok(f, &none, &p);
  assert_int_equal(p.n, 0);
  assert_string_equal(p.next, "");
  page_free(&p);
  er_free(other);
  er_task_rec_free(r1);
  er_task_rec_free(r2);
  er_free(a);
  er_free(b);
}

static void test_list_bad(void **state) {
  fx_t *f = *state;
  page_t p = {0};
  er_task_list_req_t req = {.limit = ER_TASK_LIST_MAX + 1};
  assert_int_equal(er_store_list_tasks(f->s, &req, &p.recs, &p.n, p.next), ER_EINVAL);
  assert_non_null(strstr(er_store_last_error(f->s), "limit"));
  req = (er_task_list_req_t){.by_state = true, .state = (er_task_state_t)9};
  assert_int_equal(er_store_list_tasks(f->s, &req, &p.recs, &p.n, p.next), ER_EINVAL);
  req = (er_task_list_req_t){.by_state = true, .state = ER_STATE_UNKNOWN};
  assert_int_equal(er_store_list_tasks(f->s, &req, &p.recs, &p.n, p.next), ER_EINVAL);
  req = (er_task_list_req_t){.cursor = "not-an-id"};
  assert_int_equal(er_store_list_tasks(f->s, &req, &p.recs, &p.n, p.next), ER_EINVAL);
  assert_non_null(strstr(er_store_last_error(f->s), "cursor"));
  assert_int_equal(er_store_list_tasks(f->s, NULL, &p.recs, &p.n, p.next), ER_EINVAL);
  req = (er_task_list_req_t){.limit = ER_TASK_LIST_MAX};
  list_ok(f, &req, &p);
  page_free(&p);
}

/* Tasks deleted (purged, their results expired) leave the listing. */
static void test_list_deleted(void **state) {
  fx_t *f = *state;
  char ids[3][ER_ID_LEN + 1];
  enqueue_n(f, 3, "t", "t", ids);
  er_task_rec_t *r = reserve1(f, now_ms() + 1, 60000);
  /* gone a moment after it finishes */
  er_completion_t c = {r->id, r->attempt, ER_STATE_SUCCESS, NULL, NULL, 0, now_ms()};
  assert_int_equal(er_store_complete(f->s, &c, 1, NULL), 0);
  size_t purged = 0;
  assert_int_equal(er_store_purge(f->s, f->queue, &purged), 0);
  assert_int_equal(purged, 2);
  page_t p;
  er_task_list_req_t req = {.queue = f->queue};
  list_ok(f, &req, &p);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.recs[0]->id, r->id);
  page_free(&p);
  /* its result expires (a day from now) and maintain deletes it */
  er_maint_counts_t mc;
  assert_int_equal(er_store_maintain(f->s, now_ms() + 2LL * 24 * 3600 * 1000, &mc), 0);
  assert_true(mc.expired_results >= 1);
  list_ok(f, &req, &p);
  assert_int_equal(p.n, 0);
  page_free(&p);
  er_task_rec_free(r);
}

/* A filter that matches little, behind many newer tasks: following the
 * cursor finds what matches (on Redis after short pages, each a bounded
 * walk of the index). */
static void test_list_sparse(void **state) {
  fx_t *f = *state;
  char id[1][ER_ID_LEN + 1];
  enqueue_n(f, 1, "sparse", "sparse", id);
  char *other = tagged(f, "crowd");
  size_t total = ER_TASK_LIST_SCAN + 500, batch = 1000;
  er_task_rec_t **rs = calloc(batch, sizeof *rs);
  for (size_t done = 0; done < total; done += batch) {
    size_t k = total - done < batch ? total - done : batch;
    for (size_t i = 0; i < k; i++) {
      rs[i] = mk(f, "crowd");
      er_free(rs[i]->queue);
      rs[i]->queue = er_strdup(other);
    }
    assert_int_equal(er_store_enqueue(f->s, rs, k, 0, NULL), 0);
    for (size_t i = 0; i < k; i++) er_task_rec_free(rs[i]);
  }
  free(rs);
  er_task_list_req_t req = {.queue = f->queue, .limit = 10};
  char cursor[ER_ID_LEN + 1] = "";
  size_t found = 0, calls = 0;
  do {
    page_t p;
    req.cursor = cursor;
    list_ok(f, &req, &p);
    calls++;
    for (size_t i = 0; i < p.n; i++) {
      assert_string_equal(p.recs[i]->id, id[0]);
      found++;
    }
    memcpy(cursor, p.next, sizeof cursor);
    page_free(&p);
  } while (cursor[0] && calls < 10);
  assert_int_equal(found, 1);
  assert_string_equal(cursor, "");
  size_t purged = 0;
  assert_int_equal(er_store_purge(f->s, other, &purged), 0);
  assert_int_equal(purged, total);
  er_free(other);
}

static int64_t name_count(json_t *st, const char *name, const char *state) {
  json_t *c = json_object_get(json_object_get(st, "names"), name);
  return c ? json_integer_value(json_object_get(c, state)) : 0;
}

static void test_stats_by_name(void **state) {
  fx_t *f = *state;
  char *a = task_name(f, "add"), *b = task_name(f, "mul");
  char ids[5][ER_ID_LEN + 1];
  enqueue_n(f, 5, a, b, ids); /* a: 0 2 4, b: 1 3 */
  int64_t t = now_ms();
  er_task_rec_t *r0 = reserve1(f, t + 1, 60000), *r1 = reserve1(f, t + 1, 60000);
  er_task_rec_t *r2 = reserve1(f, t + 1, 60000);
  complete1(f, r0->id, r0->attempt, ER_STATE_SUCCESS, NULL, NULL, t + 2, 0);
  json_t *err = json_pack("{s:s}", "message", "no");
  complete1(f, r1->id, r1->attempt, ER_STATE_FAILURE, NULL, err, t + 2, 0);
  complete1(f, r2->id, r2->attempt, ER_STATE_RETRY, NULL, err, t + 2, t + 100000);
  json_decref(err);
  assert_int_equal(er_store_revoke(f->s, ids[4], NULL), 0);
  json_t *st = NULL;
  assert_int_equal(er_store_stats(f->s, &st), 0);
  assert_int_equal(name_count(st, a, "SUCCESS"), 1);
  assert_int_equal(name_count(st, a, "RETRY"), 1);
  assert_int_equal(name_count(st, a, "REVOKED"), 1);
  assert_int_equal(name_count(st, a, "PENDING"), 0);
  assert_int_equal(name_count(st, b, "FAILURE"), 1);
  assert_int_equal(name_count(st, b, "PENDING"), 1);
  assert_int_equal(name_count(st, b, "STARTED"), 0);
  /* every state is there for a name listed */
  assert_non_null(json_object_get(json_object_get(json_object_get(st, "names"), b), "REVOKED"));
  /* the other members as they were */
  assert_non_null(json_object_get(json_object_get(st, "queues"), f->queue));
  assert_non_null(json_object_get(st, "total"));
  json_decref(st);
  /* purging takes the queued ones off the counts */
  assert_int_equal(er_store_purge(f->s, f->queue, NULL), 0);
  assert_int_equal(er_store_stats(f->s, &st), 0);
  assert_int_equal(name_count(st, a, "RETRY"), 0);
  assert_int_equal(name_count(st, b, "PENDING"), 0);
  assert_int_equal(name_count(st, a, "SUCCESS"), 1);
  json_decref(st);
  er_task_rec_free(r0);
  er_task_rec_free(r1);
  er_task_rec_free(r2);
  er_free(a);
  er_free(b);
}

int main(int argc, char **argv) {
  g_base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (g_base && !*g_base) g_base = NULL;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_list_pages),  T(test_list_filters), T(test_list_bad),
      T(test_list_deleted), T(test_list_sparse), T(test_stats_by_name),
  };
  return cmocka_run_group_tests_name(g_base ? g_base : "store list (sqlite, a file per test)",
                                     tests, NULL, NULL);
}
