/* MultiFuture and wait_all, after ndb's tasklets_test.py. ndb's exception
 * classes map to codes: ZeroDivisionError -> ER_EFAIL. */
#include <stdio.h>

#include "test_util.h"

#define EDIV ER_EFAIL

static er_loop_t *g_loop;

/* ---- MultiFuture ------------------------------------------------------------- */

static int foo(void *arg) {
  intptr_t dt = (intptr_t)arg;
  er_sleep((uint64_t)dt);
  return er_return_int(dt);
}

static int bar(void *arg) {
  intptr_t n = (intptr_t)arg;
  for (intptr_t i = 0; i < n; i++) er_sleep(10);
  return er_return_int(1000 + n);
}

/* testMultiFuture: the results come in insertion order (ndb only checks the
 * set), including a dependent added twice. */
static void test_multi_future(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *bar5 = er_spawn(g_loop, bar, (void *)5);
  er_future_t *futs[] = {er_spawn(g_loop, foo, (void *)50), er_spawn(g_loop, foo, (void *)10),
                         er_spawn(g_loop, foo, (void *)30), er_spawn(g_loop, bar, (void *)3),
                         bar5, bar5};
  er_future_t *mf = er_multi_future_new(g_loop);
  for (int i = 0; i < 6; i++) assert_int_equal(er_multi_future_add_dependent(mf, futs[i]), 0);
  assert_int_equal(er_multi_future_complete(mf), 0);
  assert_false(er_future_done(mf));
  assert_int_equal(er_future_get_result(mf), 0);
  assert_int_equal(fc.now_ns, 50 * MS_NS);
  assert_int_equal(er_future_list_len(mf), 6);
  int64_t want[] = {50, 10, 30, 1003, 1005, 1005};
  for (size_t i = 0; i < 6; i++) {
    assert_ptr_equal(er_future_list_at(mf, i), futs[i]);
    assert_int_equal(er_future_int(er_future_list_at(mf, i)), want[i]);
  }
  assert_null(er_future_list_at(mf, 6));
  for (int i = 0; i < 5; i++) er_future_unref(futs[i]); /* bar5 once */
  er_future_unref(mf);
  er_loop_free(g_loop);
}

/* testMultiFuture_PreCompleted. */
static void test_multi_future_precompleted(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *dep = er_spawn(g_loop, foo, (void *)42);
  assert_int_equal(er_future_wait(dep), 0);
  er_multi_future_add_dependent(mf, dep);
  er_multi_future_complete(mf);
  er_loop_run(g_loop);
  assert_true(er_future_done(mf));
  assert_int_equal(er_future_list_len(mf), 1);
  assert_int_equal(er_future_int(er_future_list_at(mf, 0)), 42);
  er_future_unref(dep);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

/* testMultiFuture_SetException: set_error finishes it early; later
 * completions change nothing. */
static void test_multi_future_set_error(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *f1 = er_future_new(g_loop), *f2 = er_future_new(g_loop), *f3 = er_future_new(g_loop);
  er_future_set_int(f2, 2);
  er_multi_future_add_dependent(mf, f1);
  er_future_set_int(f1, 1);
  er_multi_future_add_dependent(mf, f2);
  er_multi_future_add_dependent(mf, f3);
  assert_int_equal(er_multi_future_putq_int(mf, 4), 0);
  er_loop_run(g_loop);
  assert_false(er_future_done(mf));
  assert_int_equal(er_multi_future_set_error(mf, EDIV, "zero"), 0);
  er_future_set_int(f3, 3);
  er_loop_run(g_loop);
  assert_int_equal(er_future_get_result(mf), EDIV);
  assert_string_equal(er_error_message(er_future_error(mf)), "zero");
  assert_int_equal(er_future_list_len(mf), 0); /* failed: no list */
  assert_int_equal(er_multi_future_putq_int(mf, 5), ER_ESTATE);
  er_future_unref(f1);
  er_future_unref(f2);
  er_future_unref(f3);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

/* testMultiFuture_ItemException. */
static void test_multi_future_item_error(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *f1 = er_future_new(g_loop), *f2 = er_future_new(g_loop), *f3 = er_future_new(g_loop);
  er_future_set_int(f2, 2);
  er_multi_future_add_dependent(mf, f1);
  er_future_set_error(f1, EDIV, NULL);
  er_multi_future_add_dependent(mf, f2);
  er_multi_future_add_dependent(mf, f3);
  er_future_set_int(f3, 3);
  er_loop_run(g_loop);
  assert_false(er_future_done(mf)); /* not before complete() */
  er_multi_future_complete(mf);
  assert_int_equal(er_future_get_result(mf), EDIV);
  er_future_unref(f1);
  er_future_unref(f2);
  er_future_unref(f3);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

static void test_multi_future_first_error_in_insertion_order(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *a = er_future_new(g_loop), *b = er_future_new(g_loop), *c = er_future_new(g_loop);
  er_multi_future_add_dependent(mf, a);
  er_multi_future_add_dependent(mf, b);
  er_multi_future_add_dependent(mf, c);
  er_multi_future_complete(mf);
  er_future_set_error(c, ER_ETIMEDOUT, "c first in time");
  er_future_set_int(a, 1);
  er_future_set_error(b, ER_EIO, "b first in order");
  assert_int_equal(er_future_get_result(mf), ER_EIO);
  assert_string_equal(er_error_message(er_future_error(mf)), "b first in order");
  er_future_unref(a);
  er_future_unref(b);
  er_future_unref(c);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

static void test_multi_future_rules(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *d = er_future_new_int(g_loop, 9);
  /* The same future twice appears twice. */
  er_multi_future_add_dependent(mf, d);
  er_multi_future_add_dependent(mf, d);
  assert_int_equal(er_multi_future_complete(mf), 0);
  assert_int_equal(er_multi_future_complete(mf), ER_EALREADY);
  assert_int_equal(er_multi_future_add_dependent(mf, d), ER_ESTATE); /* after complete */
  assert_int_equal(er_multi_future_putq_int(mf, 1), ER_ESTATE);
  assert_int_equal(er_future_get_result(mf), 0);
  assert_int_equal(er_future_list_len(mf), 2);
  assert_ptr_equal(er_future_list_at(mf, 0), d);
  assert_ptr_equal(er_future_list_at(mf, 1), d);

  /* Empty: done with an empty list at complete(). */
  er_future_t *empty = er_multi_future_new(g_loop);
  assert_false(er_future_done(empty));
  assert_int_equal(er_future_list_len(empty), 0);
  er_multi_future_complete(empty);
  assert_true(er_future_done(empty));
  assert_int_equal(er_future_status(empty), 0);
  assert_int_equal(er_future_list_len(empty), 0);

  /* Not a MultiFuture, or not a future. */
  er_future_t *plain = er_future_new(g_loop);
  char fake[256] = {0};
  assert_int_equal(er_multi_future_add_dependent(plain, d), ER_ENOTFUTURE);
  assert_int_equal(er_multi_future_complete(plain), ER_ENOTFUTURE);
  assert_int_equal(er_multi_future_add_dependent(empty, (er_future_t *)(void *)fake), ER_ENOTFUTURE);
  assert_int_equal(er_future_list_len(plain), 0);
  assert_null(er_future_list_at(plain, 0));
  assert_null(er_multi_future_new(NULL));
  er_future_set_none(plain);
  er_future_unref(plain);
  er_future_unref(empty);
  er_future_unref(d);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

static int returns_multi(void *arg) {
  (void)arg;
  er_future_t *mf = er_multi_future_new(g_loop);
  er_multi_future_putq_int(mf, 1);
  er_future_t *s = er_spawn(g_loop, foo, (void *)20);
  er_multi_future_add_dependent(mf, s);
  er_future_unref(s);
  er_multi_future_complete(mf);
  int rc = er_return_future(mf);
  er_future_unref(mf);
  return rc;
}

static void test_multi_future_list_through_forward(void **state) {
  (void)state;
  /* A tasklet's future that completes as a MultiFuture does has its list. */
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *f = er_spawn(g_loop, returns_multi, NULL);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_list_len(f), 2);
  assert_int_equal(er_future_int(er_future_list_at(f, 0)), 1);
  assert_int_equal(er_future_int(er_future_list_at(f, 1)), 20);
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* ---- wait_all and a MultiFuture's done dependents ----------------------------- */

static void set_seven(void *arg) { er_future_set_int(arg, 7); }

/* ndb's wait_all returns after the loop turned once more, so the callbacks
 * the last completion queued have run. */
static void test_wait_all_runs_callbacks(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *f = er_future_new(g_loop);
  int seen = 0;
  assert_int_equal(er_future_add_callback(f, note_cb, &seen), 0);
  assert_non_null(er_loop_call_later(g_loop, 10, set_seven, f));
  assert_int_equal(er_future_wait_all(&f, 1), 0);
  assert_int_equal(seen, 1);
  assert_int_equal(er_future_int(f), 7);
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* ndb counts a dependent through add_callback, queued even when the
 * dependent is done: the MultiFuture is done only once the loop turns. */
static void test_multi_future_done_dependent_counts_from_loop(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *d = er_future_new_int(g_loop, 3);
  assert_int_equal(er_multi_future_add_dependent(mf, d), 0);
  assert_int_equal(er_multi_future_complete(mf), 0);
  assert_false(er_future_done(mf));
  assert_int_equal(er_loop_run0(g_loop), 0);
  assert_true(er_future_done(mf));
  assert_int_equal(er_future_list_len(mf), 1);
  er_future_unref(d);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_multi_future),
      cmocka_unit_test(test_multi_future_precompleted),
      cmocka_unit_test(test_multi_future_set_error),
      cmocka_unit_test(test_multi_future_item_error),
      cmocka_unit_test(test_multi_future_first_error_in_insertion_order),
      cmocka_unit_test(test_multi_future_rules),
      cmocka_unit_test(test_multi_future_list_through_forward),
      cmocka_unit_test(test_wait_all_runs_callbacks),
      cmocka_unit_test(test_multi_future_done_dependent_counts_from_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
