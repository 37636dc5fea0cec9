/* Store conformance, every backend: a completion whose result cannot be
 * encoded (out of memory, in errand's allocator or in jansson's) fails the
 * call and keeps the lease; it is never recorded without its result. */
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

static size_t g_fail_from; /* allocations of this many bytes or more fail */
static void *big_fails(size_t n) { return n >= g_fail_from ? NULL : malloc(n); }
static const er_allocator_t k_big_fails = {big_fails, NULL, NULL};
static void *json_fails(size_t n) {
  (void)n;
  return NULL;
}

/* The complete fails with ER_ENOMEM and the lease stays, so the worker can
 * report again; the outcome is never recorded without its result. */
static void complete_oom(fx_t *f, json_t *result, bool jansson) {
  er_task_rec_t *r = mk(f, "t");
  assert_int_equal(enq(f, r), 0);
  er_task_rec_t *a = reserve1(f, r->eta_ms, 60000);
  er_completion_t c = {r->id, a->attempt, ER_STATE_SUCCESS, result, NULL, 0, now_ms()};
  bool fenced = true;
  if (jansson) json_set_alloc_funcs(json_fails, free);
  else er_set_allocator(&k_big_fails);
  int rc = er_store_complete(f->s, &c, 1, &fenced);
  if (jansson) json_set_alloc_funcs(malloc, free);
  else er_set_allocator(NULL);
  assert_int_equal(rc, ER_ENOMEM);
  er_task_rec_t *g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_STARTED);
  assert_int_equal(g->attempt, a->attempt);
  assert_null(g->result);
  er_task_rec_free(g);
  assert_false(complete1(f, r->id, a->attempt, ER_STATE_SUCCESS, result, NULL, now_ms(), 0));
  g = get(f, r->id);
  assert_int_equal(g->state, ER_STATE_SUCCESS);
  assert_json_eq(g->result, result);
  er_task_rec_free(g);
  er_task_rec_free(a);
  er_task_rec_free(r);
}

void test_complete_oom(void **state) {
  fx_t *f = *state;
  /* the encoded text's buffer (errand's allocator) */
  char *big = malloc(200000);
  memset(big, 'x', 199999);
  big[199999] = 0;
  json_t *result = json_string(big);
  g_fail_from = 100000;
  complete_oom(f, result, false);
  json_decref(result);
  free(big);
  /* jansson's own allocations while encoding (its allocator) */
  result = json_pack("{s:[i, {s:s}]}", "a", 1, "b", "c");
  complete_oom(f, result, true);
  json_decref(result);
}

