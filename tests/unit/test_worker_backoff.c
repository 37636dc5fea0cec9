/* The worker's back-off on a failing store (src/queue/worker_backoff.c): one
 * warning per cause whichever call met it, a reminder a minute later, a wait
 * that doubles from 50 ms to 5 s once per round, and one line at recovery. */
#include "test_util.h"

#include "queue/worker_internal.h"

static char g_lines[8][400];
static int g_n;

static void sink(er_log_level_t level, const char *line, void *ud) {
  if (g_n < 8) snprintf(g_lines[g_n], sizeof g_lines[g_n], "%s %s", er_log_level_name(level), line);
  g_n++;
}

static er_worker_t *worker_new(void) {
  er_worker_t *w = calloc(1, sizeof *w);
  assert_int_equal(er_loop_new(&w->loop, NULL), 0);
  snprintf(w->id, sizeof w->id, "host:1:abcd");
  g_n = 0;
  er_log_set_level(ER_LOG_INFO);
  er_log_set_sink(sink, NULL);
  return w;
}

static void closed(uv_handle_t *h) {}

static void worker_free(er_worker_t *w) {
  er_log_set_sink(NULL, NULL);
  er_log_set_level(ER_LOG_WARN);
  er__store_backoff_close(w, closed);
  er_loop_run(w->loop); /* the close */
  er_loop_free(w->loop);
  free(w);
}

/* Fails once and checks the wait it set: at least half the scale, at most
 * all of it (equal jitter), however slowly this runs. */
static void fail_and_check(er_worker_t *w, uint64_t scale) {
  uint64_t t0 = er_now_mono_ms();
  er__store_failed(w, ER_EBUSY, "locked");
  uint64_t t1 = er_now_mono_ms();
  assert_int_equal(w->bo.delay_ms, scale);
  assert_in_range(w->bo.until_ms, t0 + scale / 2, t1 + scale);
}

static void one_warning_per_cause(void **s) {
  er_worker_t *w = worker_new();
  for (int i = 0; i < 100; i++) {
    er__store_failed(w, ER_EBUSY, "sqlite begin: database is locked");
    er__store_failed(w, ER_EBUSY, "sqlite reserve: database is locked"); /* same cause */
  }
  assert_int_equal(g_n, 1);
  assert_non_null(strstr(g_lines[0], "host:1:abcd: store calls fail: sqlite begin: database is"));
  assert_true(er__store_waiting(w));
  /* Another cause is said at once; the same code with another message too. */
  er__store_failed(w, ER_EBUSY, "sqlite begin: database table is locked");
  er__store_failed(w, ER_EIO, "sqlite commit: disk I/O error");
  assert_int_equal(g_n, 3);
  assert_non_null(strstr(g_lines[2], "disk I/O error"));
  /* A minute of the same cause: reminded once. */
  w->bo.warned_ms -= 60000;
  er__store_failed(w, ER_EIO, "sqlite commit: disk I/O error");
  er__store_failed(w, ER_EIO, "sqlite commit: disk I/O error");
  assert_int_equal(g_n, 4);
  assert_non_null(strstr(g_lines[3], "store calls still fail: sqlite commit"));
  /* A message-less failure names its code. */
  er__store_failed(w, ER_EUNAVAILABLE, "");
  assert_int_equal(g_n, 5);
  assert_non_null(strstr(g_lines[4], er_strerror(ER_EUNAVAILABLE)));
  worker_free(w);
}

static void the_wait_doubles_once_a_round_up_to_5_s(void **s) {
  er_worker_t *w = worker_new();
  fail_and_check(w, 50);
  /* Calls failing in the same round double it once. */
  er__store_failed(w, ER_EBUSY, "locked");
  er__store_failed(w, ER_EBUSY, "locked");
  assert_int_equal(w->bo.delay_ms, 50);
  uint64_t want = 50;
  for (int round = 0; round < 12; round++) {
    w->bo.until_ms = 0; /* the wait is over */
    want = want * 2 > 5000 ? 5000 : want * 2;
    fail_and_check(w, want);
  }
  assert_int_equal(w->bo.fails, 15);
  worker_free(w);
}

static void recovery_is_said_once_and_resets(void **s) {
  er_worker_t *w = worker_new();
  er__store_ok(w); /* nothing failed: nothing to say */
  assert_int_equal(g_n, 0);
  for (int i = 0; i < 3; i++) er__store_failed(w, ER_ECORRUPT, "sqlite x: malformed");
  er__store_ok(w);
  er__store_ok(w);
  assert_int_equal(g_n, 2);
  assert_non_null(strstr(g_lines[1], "store recovered after 3 failures in"));
  assert_false(er__store_waiting(w));
  assert_int_equal(w->bo.delay_ms, 0);
  /* The same cause again later is a new episode: warned again. */
  er__store_failed(w, ER_ECORRUPT, "sqlite x: malformed");
  assert_int_equal(g_n, 3);
  assert_int_equal(w->bo.delay_ms, 50);
  worker_free(w);
}

static void faults_are_kept_refusals_are_not(void **s) {
  int kept[] = {ER_EUNAVAILABLE, ER_EBUSY, ER_EIO, ER_ENOMEM, ER_ECORRUPT, ER_ETIMEDOUT};
  for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) assert_true(er__store_fault(kept[i]));
  int refused[] = {ER_EINVAL, ER_ETOOBIG, ER_EEXIST, ER_EFENCED, ER_EPARSE};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    assert_false(er__store_fault(refused[i]));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_warning_per_cause),
      cmocka_unit_test(the_wait_doubles_once_a_round_up_to_5_s),
      cmocka_unit_test(recovery_is_said_once_and_resets),
      cmocka_unit_test(faults_are_kept_refusals_are_not),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
