/* Futures completed from other threads, and blocking work on libuv's thread
 * pool. Run under ThreadSanitizer too (build with -DER_TSAN=ON). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "test_util.h"

static pthread_t g_loop_thread;

typedef struct {
  er_future_t *f;
  int64_t value;
  unsigned delay_us;
  er_loop_t *unref_loop; /* er_loop_unref this after completing, if set */
} completer_t;

static void *complete_later(void *arg) {
  completer_t *c = arg;
  if (c->delay_us) usleep(c->delay_us);
  int rc = er_future_set_int(c->f, c->value);
  if (c->unref_loop) er_loop_unref(c->unref_loop);
  return (void *)(intptr_t)rc;
}

static atomic_int g_cb_runs, g_cb_wrong_thread;

static void on_loop_thread_cb(er_future_t *f, void *arg) {
  (void)f;
  (void)arg;
  atomic_fetch_add(&g_cb_runs, 1);
  if (!pthread_equal(pthread_self(), g_loop_thread)) atomic_fetch_add(&g_cb_wrong_thread, 1);
}

/* A future made with er_future_new_external keeps the loop waiting for it:
 * get_result blocks until the other thread completes it, instead of
 * reporting a deadlock, and the callbacks run on the loop's thread. */
static void test_external_future_wakes_loop(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  g_loop_thread = pthread_self();
  atomic_store(&g_cb_runs, 0);
  atomic_store(&g_cb_wrong_thread, 0);
  er_future_t *f = er_future_new_external(loop);
  er_future_add_callback(f, on_loop_thread_cb, NULL);
  er_future_add_immediate_callback(f, on_loop_thread_cb, NULL);
  completer_t c = {f, 42, 20 * 1000, NULL};
  pthread_t th;
  uint64_t t0 = er_now_mono_ns();
  assert_int_equal(pthread_create(&th, NULL, complete_later, &c), 0);
  assert_int_equal(er_future_get_result(f), 0);
  assert_true(er_now_mono_ns() - t0 >= 20 * MS_NS); /* it waited */
  assert_int_equal(er_future_int(f), 42);
  er_loop_run(loop);
  void *res;
  pthread_join(th, &res);
  assert_int_equal((intptr_t)res, 0);
  assert_int_equal(atomic_load(&g_cb_runs), 2);
  assert_int_equal(atomic_load(&g_cb_wrong_thread), 0);
  /* Done: the loop is no longer held. */
  assert_false(er_loop_run1(loop));
  er_future_unref(f);
  er_loop_free(loop);
}

/* The same with a plain future and an explicit er_loop_ref. */
static void test_loop_ref_wakes_loop(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new(loop);
  er_loop_ref(loop);
  completer_t c = {f, 7, 10 * 1000, loop};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, complete_later, &c), 0);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), 7);
  pthread_join(th, NULL);
  er_loop_run(loop); /* returns: the reference is gone */
  er_future_unref(f);
  er_loop_free(loop);
}

/* Without a reference the loop does not wait: a deadlock is reported. */
static void test_unreferenced_reports_deadlock(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_wait(f), ER_EDEADLK);
  er_future_set_none(f);
  er_future_unref(f);
  er_loop_free(loop);
}

enum { THREADS = 8, PER_THREAD = 250 };

typedef struct {
  er_future_t **fs;
  int base;
} batch_t;

static void *complete_batch(void *arg) {
  batch_t *b = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    if (er_future_set_int(b->fs[i], b->base + i) != 0) return (void *)1;
    if (i % 50 == 0) usleep(100);
  }
  return NULL;
}

static void test_many_threads_many_futures(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  g_loop_thread = pthread_self();
  atomic_store(&g_cb_runs, 0);
  atomic_store(&g_cb_wrong_thread, 0);
  static er_future_t *fs[THREADS * PER_THREAD];
  for (int i = 0; i < THREADS * PER_THREAD; i++) {
    fs[i] = er_future_new_external(loop);
    assert_non_null(fs[i]);
    er_future_add_callback(fs[i], on_loop_thread_cb, NULL);
  }
  pthread_t th[THREADS];
  batch_t b[THREADS];
  for (int t = 0; t < THREADS; t++) {
    b[t] = (batch_t){&fs[t * PER_THREAD], t * PER_THREAD};
    assert_int_equal(pthread_create(&th[t], NULL, complete_batch, &b[t]), 0);
  }
  assert_int_equal(er_future_wait_all(fs, THREADS * PER_THREAD), 0);
  er_loop_run(loop);
  for (int t = 0; t < THREADS; t++) {
    void *res;
    pthread_join(th[t], &res);
    assert_null(res);
  }
  for (int i = 0; i < THREADS * PER_THREAD; i++) {
    assert_int_equal(er_future_int(fs[i]), i);
    er_future_unref(fs[i]);
  }
  assert_int_equal(atomic_load(&g_cb_runs), THREADS * PER_THREAD);
  assert_int_equal(atomic_load(&g_cb_wrong_thread), 0);
  er_loop_free(loop);
}

/* Threads racing to complete one future: exactly one wins; the others get
 * ER_EALREADY and their values are released. */
static atomic_int g_dtors;
static void count_dtor(void *p) {
  atomic_fetch_add(&g_dtors, 1);
  free(p);
}

typedef struct {
  er_future_t *f;
  atomic_int *go;
  int rc;
} racer_t;

static void *race(void *arg) {
  racer_t *r = arg;
  while (!atomic_load(r->go)) {
  }
  r->rc = er_future_set_ptr(r->f, malloc(16), count_dtor);
  return NULL;
}

static void test_racing_completions(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  for (int round = 0; round < 20; round++) {
    atomic_store(&g_dtors, 0);
    er_future_t *f = er_future_new_external(loop);
    atomic_int go = 0;
    racer_t r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
      r[i] = (racer_t){f, &go, 99};
      pthread_create(&th[i], NULL, race, &r[i]);
    }
    atomic_store(&go, 1);
    assert_int_equal(er_future_wait(f), 0);
    int wins = 0;
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      if (r[i].rc == 0)
        wins++;
      else
        assert_int_equal(r[i].rc, ER_EALREADY);
    }
    assert_int_equal(wins, 1);
    assert_int_equal(atomic_load(&g_dtors), 3);
    assert_non_null(er_future_ptr(f));
    er_future_unref(f);
    assert_int_equal(atomic_load(&g_dtors), 4);
  }
  er_loop_free(loop);
}

/* ---- er_loop_queue_work ------------------------------------------------------------- */

static int square(void *arg, er_future_t *out) {
  int64_t x = (int64_t)(intptr_t)arg;
  if (!pthread_equal(pthread_self(), g_loop_thread)) return er_future_set_int(out, x * x);
  return ER_EINTERNAL; /* ran on the loop thread: wrong */
}

static int fails_work(void *arg, er_future_t *out) {
  (void)out;
  (void)arg;
  return ER_EIO;
}

static int fails_with_message(void *arg, er_future_t *out) {
  (void)arg;
  er_future_set_error(out, ER_EPARSE, "line %d", 3);
  return ER_EIO; /* ignored: out is already done */
}

static int returns_nothing(void *arg, er_future_t *out) {
  (void)arg;
  (void)out;
  usleep(1000);
  return 0;
}

static void test_queue_work(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  g_loop_thread = pthread_self();
  er_future_t *a = er_loop_queue_work(loop, square, (void *)(intptr_t)12);
  er_future_t *b = er_loop_queue_work(loop, fails_work, NULL);
  er_future_t *c = er_loop_queue_work(loop, fails_with_message, NULL);
  er_future_t *d = er_loop_queue_work(loop, returns_nothing, NULL);
  assert_non_null(a);
  assert_int_equal(er_future_get_result(a), 0);
  assert_int_equal(er_future_int(a), 144);
  assert_int_equal(er_future_get_result(b), ER_EIO);
  assert_int_equal(er_future_get_result(c), ER_EPARSE);
  assert_string_equal(er_error_message(er_future_error(c)), "line 3");
  assert_int_equal(er_future_get_result(d), 0);
  assert_int_equal(er_future_kind(d), ER_VALUE_NONE);
  er_loop_run(loop);
  er_future_unref(a);
  er_future_unref(b);
  er_future_unref(c);
  er_future_unref(d);
  assert_null(er_loop_queue_work(loop, NULL, NULL));
  er_loop_free(loop);
}

static void test_queue_work_many(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  g_loop_thread = pthread_self();
  enum { N = 200 };
  er_future_t *fs[N];
  for (int i = 0; i < N; i++) fs[i] = er_loop_queue_work(loop, square, (void *)(intptr_t)i);
  size_t idx;
  assert_int_equal(er_future_wait_any(fs, N, &idx), 0);
  assert_true(er_future_done(fs[idx]));
  assert_int_equal(er_future_wait_all(fs, N), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(er_future_status(fs[i]), 0);
    assert_int_equal(er_future_int(fs[i]), (int64_t)i * i);
    er_future_unref(fs[i]);
  }
  er_loop_run(loop);
  er_loop_free(loop);
}

/* A tasklet awaits work on the pool and a future another thread completes. */
typedef struct {
  er_loop_t *loop;
  er_future_t *ext;
} tw_t;

static int tasklet_waits_for_threads(void *arg) {
  tw_t *t = arg;
  er_future_t *w = er_loop_queue_work(t->loop, square, (void *)(intptr_t)9);
  int rc = ER_AWAIT_ALL(w, t->ext);
  int64_t v = er_future_int(w) + er_future_int(t->ext);
  er_future_unref(w);
  return rc < 0 ? rc : er_return_int(v);
}

static void test_tasklet_awaits_other_threads(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  g_loop_thread = pthread_self();
  tw_t t = {loop, er_future_new_external(loop)};
  er_future_t *f = er_spawn(loop, tasklet_waits_for_threads, &t);
  completer_t c = {t.ext, 1000, 5 * 1000, NULL};
  pthread_t th;
  pthread_create(&th, NULL, complete_later, &c);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), 1081);
  pthread_join(th, NULL);
  er_loop_run(loop);
  er_future_unref(f);
  er_future_unref(t.ext);
  er_loop_free(loop);
}

/* Loops on several threads at once, each with its own tasklets, and logging
 * from all of them into one sink. */
static atomic_int g_lines;
static void count_sink(er_log_level_t level, const char *line, void *ud) {
  (void)level;
  (void)line;
  (void)ud;
  atomic_fetch_add(&g_lines, 1);
}

static int hop(void *arg) {
  int n = (int)(intptr_t)arg;
  int64_t acc = 0;
  for (int i = 0; i < n; i++) {
    er_sleep(0);
    acc += i;
  }
  er_log(ER_LOG_ERROR, "hop %d done", n);
  return er_return_int(acc);
}

static void *loop_thread(void *arg) {
  (void)arg;
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) return (void *)1;
  er_future_t *fs[20];
  for (int i = 0; i < 20; i++) fs[i] = er_spawn(loop, hop, (void *)(intptr_t)50);
  intptr_t bad = er_future_wait_all(fs, 20) != 0;
  for (int i = 0; i < 20; i++) {
    if (er_future_int(fs[i]) != 50 * 49 / 2) bad = 1;
    er_future_unref(fs[i]);
  }
  er_loop_free(loop);
  return (void *)bad;
}

static void test_loops_on_many_threads(void **state) {
  (void)state;
  atomic_store(&g_lines, 0);
  er_log_set_sink(count_sink, NULL);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, loop_thread, NULL);
  for (int i = 0; i < 4; i++) {
    void *res;
    pthread_join(th[i], &res);
    assert_null(res);
  }
  er_log_set_sink(NULL, NULL);
  assert_int_equal(atomic_load(&g_lines), 80);
}

/* The logger is thread-safe: its level and sink may change while other
 * threads log (TSan checks the claim). */
static atomic_int g_stop_logging;

static void *keep_logging(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop_logging)) er_log(ER_LOG_INFO, "busy");
  return NULL;
}

static void test_log_level_changes_while_logging(void **state) {
  (void)state;
  atomic_store(&g_lines, 0);
  atomic_store(&g_stop_logging, 0);
  er_log_level_t saved = er_log_get_level();
  er_log_set_sink(count_sink, NULL);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, keep_logging, NULL);
  for (int i = 0; i < 2000; i++) {
    er_log_set_level(i % 2 ? ER_LOG_INFO : ER_LOG_WARN);
    if (i % 100 == 0) er_log_set_sink(count_sink, NULL);
  }
  er_log_set_level(ER_LOG_INFO);
  /* The loggers may not have run at all yet on a loaded machine: wait for a
   * line at the level they log at (the watchdog bounds the wait). */
  while (atomic_load(&g_lines) == 0) usleep(1000);
  atomic_store(&g_stop_logging, 1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  er_log_set_sink(NULL, NULL);
  er_log_set_level(saved);
  assert_true(atomic_load(&g_lines) > 0);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_external_future_wakes_loop),
      cmocka_unit_test(test_loop_ref_wakes_loop),
      cmocka_unit_test(test_unreferenced_reports_deadlock),
      cmocka_unit_test(test_many_threads_many_futures),
      cmocka_unit_test(test_racing_completions),
      cmocka_unit_test(test_queue_work),
      cmocka_unit_test(test_queue_work_many),
      cmocka_unit_test(test_tasklet_awaits_other_threads),
      cmocka_unit_test(test_loops_on_many_threads),
      cmocka_unit_test(test_log_level_changes_while_logging),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
