/* Tasklets at the top and at the end, after ndb's tasklets_test.py: a
 * suspended tasklet when the loop is freed, failures nobody observed being
 * logged, and er_tasklet_run (ndb's toplevel). */
#include <stdio.h>

#include "test_util.h"

static er_loop_t *g_loop; /* the loop of the running test, for tasklet bodies */

/* ---- a suspended tasklet when the loop is freed ----------------------------------------------- */

static int waits_forever(void *arg) {
  er_future_t *f = arg;
  return er_await(f);
}

static void test_deadlocked_tasklet(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *never = er_future_new(g_loop);
  er_future_t *f = er_spawn(g_loop, waits_forever, never);
  assert_int_equal(er_future_get_result(f), ER_EDEADLK);
  assert_false(er_future_done(f));
  er_future_unref(f);
  er_future_unref(never);
  er_loop_free(g_loop); /* releases the suspended tasklet's stack */
}

/* ---- unobserved failures are logged ------------------------------------------------ */

typedef struct {
  int warnings;
  char last[512];
} captured_t;

static void capture(er_log_level_t level, const char *line, void *ud) {
  captured_t *c = ud;
  if (level != ER_LOG_WARN || !strstr(line, "nobody read")) return;
  c->warnings++;
  snprintf(c->last, sizeof c->last, "%s", line);
}

static int fails_now(void *arg) {
  (void)arg;
  return er_fail(ER_EIO, "boom");
}

static int passes_inner_up(void *arg) {
  (void)arg;
  er_future_t *f = er_spawn(g_loop, fails_later, (void *)5);
  int rc = er_await(f);
  er_future_unref(f);
  return rc;
}

/* ndb logs a failure nobody looked at: here when the last reference to the
 * tasklet's future goes and its outcome was never read or passed on. */
static void test_unobserved_failure_is_logged(void **state) {
  (void)state;
  captured_t cap = {0};
  er_log_set_level(ER_LOG_WARN);
  er_log_set_sink(capture, &cap);
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);

  /* Dropped at once, failed at once: logged when the caller lets go. */
  er_future_unref(er_spawn(g_loop, fails_now, NULL));
  assert_int_equal(cap.warnings, 1);
  assert_non_null(strstr(cap.last, "EIO: boom (in fails_now)"));

  /* Dropped while running: logged when the tasklet ends and lets go. */
  er_future_unref(er_spawn(g_loop, fails_later, (void *)5));
  assert_int_equal(cap.warnings, 1);
  er_loop_run(g_loop);
  assert_int_equal(cap.warnings, 2);
  assert_non_null(strstr(cap.last, "hello 42 (in fails_later)"));

  /* The whole chain, once: the inner failure was awaited, the outer not. */
  er_future_unref(er_spawn(g_loop, passes_inner_up, NULL));
  er_loop_run(g_loop);
  assert_int_equal(cap.warnings, 3);
  assert_non_null(strstr(cap.last, "(in fails_later <- passes_inner_up)"));

  /* Waiting is not looking. */
  er_future_t *f = er_spawn(g_loop, fails_later, (void *)5);
  assert_int_equal(er_future_wait(f), 0);
  er_future_unref(f);
  assert_int_equal(cap.warnings, 4);

  /* Looked at, passed on, or succeeded: nothing. */
  f = er_spawn(g_loop, fails_later, (void *)5);
  assert_int_equal(er_future_get_result(f), ER_EIO);
  er_future_unref(f);
  f = er_spawn(g_loop, fails_now, NULL);
  assert_int_equal(er_future_status(f), ER_EIO);
  er_future_unref(f);
  er_future_t *mf = er_multi_future_new(g_loop);
  f = er_spawn(g_loop, fails_later, (void *)5);
  er_multi_future_add_dependent(mf, f);
  er_future_unref(f);
  er_multi_future_complete(mf);
  assert_int_equal(er_future_get_result(mf), ER_EIO);
  er_future_unref(mf);
  er_future_unref(er_spawn(g_loop, t3, (void *)1));
  er_loop_run(g_loop);
  assert_int_equal(cap.warnings, 4);

  er_loop_free(g_loop);
  er_log_set_sink(NULL, NULL);
}

/* ---- er_tasklet_run: ndb's toplevel ---------------------------------------------------- */

static int g_background_done;

static int background(void *arg) {
  (void)arg;
  er_sleep(20);
  g_background_done = 1;
  return 0;
}

static int main_tasklet(void *arg) {
  assert_non_null(er_loop_current());
  er_future_unref(er_spawn(er_loop_current(), background, NULL)); /* left running */
  er_future_t *a = er_spawn(er_loop_current(), t3, arg);
  int rc = er_await(a);
  int64_t v = er_future_int(a);
  er_future_unref(a);
  if (rc < 0) return rc;
  json_t *j = json_pack("{sI}", "v", (json_int_t)v * 2);
  rc = er_return_json(j);
  json_decref(j);
  return rc;
}

static er_future_t *g_never;

static int awaits_forever(void *arg) {
  g_never = er_future_new(er_loop_current()); /* the test's, for after */
  int rc = er_await(g_never);
  *(int *)arg = 1; /* not reached */
  return rc;
}

static int runs_nested(void *arg) {
  (void)arg;
  return er_return_int(er_run(t2, (void *)1, NULL));
}

static void test_tasklet_run(void **state) {
  (void)state;
  er_future_t *out = NULL;
  /* A failure: its code, the error as this thread's, and on the future. */
  assert_int_equal(er_run(fails_now, NULL, &out), ER_EIO);
  assert_string_equal(er_error_message(er_last_error()), "boom");
  assert_int_equal(er_error_code(er_future_error(out)), ER_EIO);
  assert_string_equal(er_error_chain_at(er_future_error(out), 0), "fails_now");
  er_future_unref(out);
  assert_int_equal(er_run(fails_later, (void *)5, NULL), ER_EIO);

  /* From here every block errand takes comes back (the thread's current
   * error, above, stays until the next one). */
  count_live_blocks(true);
  g_background_done = 0;
  assert_int_equal(er_run(main_tasklet, (void *)21, &out), 0);
  assert_int_equal(g_background_done, 1); /* the loop ran to the end */
  assert_null(er_loop_current());         /* the thread's current loop as before */
  assert_non_null(out);
  assert_null(er_future_loop(out));
  assert_int_equal(er_future_status(out), 0);
  assert_int_equal(json_integer_value(json_object_get(er_future_json(out), "v")), 42);
  assert_int_equal(er_future_add_callback(out, NULL, NULL), ER_ESTATE);
  assert_int_equal(er_future_get_result(out), 0);
  er_future_unref(out);

  /* Nothing left to complete it: a deadlock, no future. */
  int reached = 0;
  assert_int_equal(er_run(awaits_forever, &reached, &out), ER_EDEADLK);
  assert_null(out);
  assert_int_equal(reached, 0);
  er_future_unref(g_never);
  assert_int_equal(er_tasklet_run(NULL, NULL, NULL, &out), ER_EINVAL);
  assert_int_equal(g_live_blocks, 0);
  count_live_blocks(false);

  /* Inside a tasklet it refuses; around another loop it leaves it current. */
  g_loop = new_loop();
  assert_int_equal(er_run(t2, (void *)5, &out), 0);
  assert_int_equal(er_future_int(out), 5);
  er_future_unref(out);
  assert_ptr_equal(er_loop_current(), g_loop);
  er_future_t *f = er_spawn(g_loop, runs_nested, NULL);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), ER_ESTATE);
  er_future_unref(f);
  er_loop_free(g_loop);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deadlocked_tasklet),
      cmocka_unit_test(test_unobserved_failure_is_logged),
      cmocka_unit_test(test_tasklet_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
