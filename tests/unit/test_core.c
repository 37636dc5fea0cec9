/* The core layer: the error table, the allocation hooks (and what every
 * constructor does when they fail), UUIDv7 ids, clocks and the logger. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>

#include "test_util.h"

/* ---- errors -------------------------------------------------------------- */

typedef struct { const char *name; int num; const char *msg; } table_row_t;
static const table_row_t k_table[] = {
#define ROW(name, num, msg) {#name, num, msg},
    ER_ERROR_TABLE(ROW)
#undef ROW
};
#define N_CODES (sizeof k_table / sizeof k_table[0])

static void test_error_table_every_code(void **state) {
  (void)state;
  /* The numbers are ABI: 0, then -1, -2, ... in table order, never reused. */
  for (size_t i = 0; i < N_CODES; i++) {
    assert_int_equal(k_table[i].num, -(int)i);
    assert_string_equal(er_strerror(k_table[i].num), k_table[i].msg);
    assert_string_equal(er_err_name(k_table[i].num), k_table[i].name);
    assert_true(strlen(k_table[i].msg) > 0);
    for (size_t j = 0; j < i; j++) assert_string_not_equal(k_table[i].name, k_table[j].name);
  }
  /* A few numbers pinned by name, as programs and the CLI print them. */
  assert_int_equal(ER_OK, 0);
  assert_int_equal(ER_ENOMEM, -1);
  assert_int_equal(ER_EDEADLK, -4);
  assert_int_equal(ER_ENOTFUTURE, -7);
  assert_int_equal(ER_EINTERNAL, -28);
  assert_string_equal(er_err_name(ER_ENOMEM), "ENOMEM");
  assert_string_equal(er_strerror(ER_ENOMEM), "out of memory");
  assert_string_equal(er_err_name(ER_OK), "OK");
  assert_string_equal(er_strerror(ER_OK), "success");
}

static void test_error_unknown_codes(void **state) {
  (void)state;
  const int unknown[] = {1, 7, -(int)N_CODES, -(int)N_CODES - 1, -1000, 12345, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(er_strerror(unknown[i]), "unknown error");
    assert_string_equal(er_err_name(unknown[i]), "EUNKNOWN");
  }
}

/* ---- allocation ------------------------------------------------------------ */

/* A malloc that counts what is live and fails on request: fail_at counts the
 * allocations down to the one that fails (-1: none), fail_all fails them all. */
static struct {
  long allocs, frees, live;
  long fail_at;
  bool fail_all;
  long failed;
} A;

static void alloc_reset(void) {
  memset(&A, 0, sizeof A);
  A.fail_at = -1;
}

static bool should_fail(void) {
  if (A.fail_all) return true;
  if (A.fail_at >= 0 && A.fail_at-- == 0) return true;
  return false;
}

static void *t_malloc(size_t n) {
  if (should_fail()) {
    A.failed++;
    return NULL;
  }
  void *p = malloc(n);
  if (p) {
    A.allocs++;
    A.live++;
  }
  return p;
}

static void *t_realloc(void *p, size_t n) {
  if (should_fail()) {
    A.failed++;
    return NULL;
  }
  void *q = realloc(p, n);
  if (q && !p) {
    A.allocs++;
    A.live++;
  }
  return q;
}

static void t_free(void *p) {
  if (p) {
    A.frees++;
    A.live--;
  }
  free(p);
}

static const er_allocator_t k_counting = {t_malloc, t_realloc, t_free};

static void test_alloc_defaults(void **state) {
  (void)state;
  void *p = er_malloc(0); /* size 0 still gives a pointer that can be freed */
  assert_non_null(p);
  er_free(p);
  unsigned char *z = er_calloc(16, 4);
  assert_non_null(z);
  for (int i = 0; i < 64; i++) assert_int_equal(z[i], 0);
  z = er_realloc(z, 4096);
  assert_non_null(z);
  er_free(z);
  assert_null(er_calloc(SIZE_MAX / 2, 3)); /* n * size overflows */
  char *s = er_strdup("errand");
  assert_non_null(s);
  assert_string_equal(s, "errand");
  er_free(s);
  assert_null(er_strdup(NULL));
  er_free(NULL);
}

static void test_alloc_hooks_see_everything(void **state) {
  (void)state;
  alloc_reset();
  er_set_allocator(&k_counting);
  void *p = er_malloc(10);
  assert_int_equal(A.allocs, 1);
  char *s = er_strdup("abc");
  assert_int_equal(A.allocs, 2);
  er_free(p);
  er_free(s);
  assert_int_equal(A.live, 0);

  /* A loop, a future, a tasklet, an error: all through the hooks, all given
   * back. */
  er_loop_t *loop = new_loop();
  long after_loop = A.allocs;
  assert_true(after_loop >= 1);
  er_future_t *f = er_future_new(loop);
  assert_int_equal(A.allocs, after_loop + 1);
  assert_int_equal(er_future_set_error(f, ER_EIO, "disk %d", 2), 0);
  er_future_unref(f);
  er_error_t *e = er_error_new(ER_EFAIL, "x");
  assert_non_null(e);
  er_error_unref(e);
  er_loop_free(loop);
  assert_int_equal(A.live, 0);
  assert_int_equal(A.allocs, A.frees);

  er_set_allocator(NULL); /* back to the C library's */
  alloc_reset();
  p = er_malloc(8);
  assert_int_equal(A.allocs, 0);
  er_free(p);
  assert_int_equal(A.frees, 0);
}

static int never_runs(void *arg) {
  (void)arg;
  fail_msg("a tasklet ran although it could not be made");
  return 0;
}
static void nop_call(void *arg) { (void)arg; }
static er_idle_result_t nop_idle(void *arg) {
  (void)arg;
  return ER_IDLE_REMOVE;
}
static void nop_cb(er_future_t *f, void *arg) {
  (void)f;
  (void)arg;
}
static int nop_work(void *arg, er_future_t *out) {
  (void)arg;
  (void)out;
  return 0;
}
static int nop_reducer(void *ud, er_future_t *const *v, size_t n, er_future_t *out) {
  (void)ud;
  (void)v;
  (void)n;
  return er_future_set_none(out);
}

static void test_alloc_failures_give_enomem(void **state) {
  (void)state;
  alloc_reset();
  er_set_allocator(&k_counting);

  A.fail_all = true;
  assert_null(er_malloc(1));
  assert_null(er_calloc(1, 1));
  assert_null(er_realloc(NULL, 1));
  assert_null(er_strdup("x"));
  er_loop_t *loop = (er_loop_t *)(uintptr_t)1;
  assert_int_equal(er_loop_new(&loop, NULL), ER_ENOMEM);
  assert_ptr_equal(loop, (er_loop_t *)(uintptr_t)1); /* untouched on failure */
  assert_null(er_error_new(ER_EIO, "x"));

  A.fail_all = false;
  loop = new_loop();
  er_future_t *done = er_future_new_int(loop, 5);
  assert_non_null(done);

  A.fail_all = true;
  assert_null(er_future_new(loop));
  assert_null(er_future_new_external(loop));
  assert_null(er_future_new_int(loop, 1));
  assert_null(er_future_new_error(loop, ER_EIO, "x"));
  assert_null(er_multi_future_new(loop));
  assert_null(er_queue_future_new(loop));
  assert_null(er_serial_queue_future_new(loop));
  assert_null(er_reducing_future_new(loop, nop_reducer, NULL, 0));
  assert_null(er_tasklet_spawn(loop, never_runs, NULL, NULL));
  assert_null(er_sleep_future(loop, 1));
  assert_null(er_loop_call_later(loop, 1, nop_call, NULL));
  assert_int_equal(er_loop_call_soon(loop, nop_call, NULL), ER_ENOMEM);
  assert_int_equal(er_loop_add_idle(loop, nop_idle, NULL), ER_ENOMEM);
  assert_null(er_loop_queue_work(loop, nop_work, NULL));
  /* Adding a callback to a done future schedules it: that allocates. */
  assert_int_equal(er_future_add_callback(done, nop_cb, NULL), ER_ENOMEM);
  A.fail_all = false;

  er_future_unref(done);
  assert_int_equal(er_loop_run(loop), 0);
  er_loop_free(loop);
  assert_int_equal(A.live, 0);
  er_set_allocator(NULL);
}

/* ---- one allocation fails, each in turn ---------------------------------- */

static void count_cb(er_future_t *f, void *arg) {
  (void)f;
  (*(int *)arg)++;
}

static int fail_at_once(void *arg) {
  (void)arg;
  return er_fail(ER_EIO, "no disk %d", 3);
}

static int return_seven(void *arg) {
  (void)arg;
  return er_return_int(7);
}

static int sum_reducer(void *ud, er_future_t *const *v, size_t n, er_future_t *out) {
  (void)ud;
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) s += er_future_int(v[i]);
  return er_future_set_int(out, s);
}

static bool ok_or_enomem(int rc) { return rc == 0 || rc == ER_ENOMEM; }

/* One run of a scenario that touches most constructors; every step may meet
 * the failing allocation and must then report ER_ENOMEM (or NULL) and leave
 * nothing behind. */
static void scenario(void) {
  fake_clock_t fc;
  er_clock_t clock = {fake_now, fake_sleep, &fc};
  memset(&fc, 0, sizeof fc);
  er_loop_opts_t opts = {.clock = &clock};
  er_loop_t *loop = NULL;
  int rc = er_loop_new(&loop, &opts);
  if (rc < 0) {
    assert_int_equal(rc, ER_ENOMEM);
    return;
  }
  int calls = 0;
  assert_true(ok_or_enomem(er_loop_call_soon(loop, nop_call, NULL)));
  er_timer_t *t = er_loop_call_later(loop, 5, nop_call, NULL);
  er_timer_t *t2 = er_loop_call_later(loop, 7, nop_call, NULL);
  if (t2) er_timer_cancel(t2);
  (void)t;
  assert_true(ok_or_enomem(er_loop_add_idle(loop, nop_idle, NULL)));

  er_future_t *f = er_future_new(loop);
  if (f) {
    assert_true(ok_or_enomem(er_future_add_callback(f, count_cb, &calls)));
    assert_true(ok_or_enomem(er_future_add_callback(f, count_cb, &calls)));
    assert_true(ok_or_enomem(er_future_add_immediate_callback(f, count_cb, &calls)));
    assert_true(ok_or_enomem(er_future_add_immediate_callback(f, count_cb, &calls)));
    rc = er_future_set_error(f, ER_EIO, "boom %s", "here");
    assert_true(ok_or_enomem(rc));
    if (rc < 0) er_future_set_int(f, 1);
    er_future_unref(f);
  }

  er_future_t *mf = er_multi_future_new(loop);
  if (mf) {
    for (int i = 0; i < 3; i++) assert_true(ok_or_enomem(er_multi_future_putq_int(mf, i)));
    er_future_t *slow = er_sleep_future(loop, 2);
    if (slow) {
      assert_true(ok_or_enomem(er_multi_future_add_dependent(mf, slow)));
      er_future_unref(slow);
    }
    assert_int_equal(er_multi_future_complete(mf), 0);
  }
  er_future_t *qf = er_queue_future_new(loop);
  er_future_t *g = NULL;
  if (qf) {
    assert_true(ok_or_enomem(er_queue_future_putq_int(qf, 1)));
    g = er_queue_future_getq(qf);
    er_future_t *g2 = er_queue_future_getq(qf); /* waits: nothing left yet */
    assert_true(ok_or_enomem(er_queue_future_putq_int(qf, 2)));
    er_queue_future_complete(qf);
    er_future_unref(g2);
  }
  er_future_t *sq = er_serial_queue_future_new(loop);
  if (sq) {
    er_future_t *w = er_serial_queue_future_getq(sq);
    assert_true(ok_or_enomem(er_serial_queue_future_putq_int(sq, 1)));
    assert_true(ok_or_enomem(er_serial_queue_future_putq_int(sq, 2)));
    er_serial_queue_future_complete(sq);
    er_future_unref(w);
    er_future_unref(er_serial_queue_future_getq(sq));
  }
  er_future_t *rf = er_reducing_future_new(loop, sum_reducer, NULL, 2);
  if (rf) {
    for (int i = 0; i < 5; i++) assert_true(ok_or_enomem(er_reducing_future_putq_int(rf, i)));
    er_reducing_future_complete(rf);
  }
  er_future_t *tf = er_spawn(loop, fail_at_once, NULL);
  if (tf) {
    assert_true(er_future_done(tf));
    rc = er_future_status(tf);
    assert_true(rc == ER_EIO || rc == ER_ENOMEM);
  }
  er_future_t *t7 = er_spawn(loop, return_seven, NULL);
  if (t7) {
    assert_true(er_future_done(t7));
    /* Returning a value allocates nothing more: it cannot fail. */
    assert_int_equal(er_future_int(t7), 7);
  }
  er_loop_run(loop);
  er_future_unref(mf);
  er_future_unref(g);
  er_future_unref(qf);
  er_future_unref(sq);
  er_future_unref(rf);
  er_future_unref(tf);
  er_future_unref(t7);
  er_loop_free(loop);
}

static void test_alloc_each_failure_in_turn(void **state) {
  (void)state;
  /* First the number of allocations when nothing fails, then each one failing. */
  alloc_reset();
  er_set_allocator(&k_counting);
  scenario();
  assert_int_equal(A.live, 0);
  long total = A.allocs;
  assert_true(total > 20);
  for (long k = 0; k < total; k++) {
    alloc_reset();
    A.fail_at = k;
    scenario();
    assert_int_equal(A.failed, 1);
    if (A.live != 0) fail_msg("failing allocation %ld of %ld leaks %ld blocks", k, total, A.live);
  }
  er_set_allocator(NULL);
}

/* ---- ids ---------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static void check_v7(const char *s) {
  assert_int_equal(strlen(s), ER_ID_LEN);
  for (int i = 0; i < ER_ID_LEN; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      assert_int_equal(s[i], '-');
    else
      assert_true(hexval(s[i]) >= 0); /* lower-case hex only */
  }
  assert_int_equal(s[14], '7');                   /* version 7 */
  assert_non_null(strchr("89ab", s[19]));         /* variant 10xx */
  assert_true(er_id_valid(s));
}

static int64_t id_ms(const char *s) {
  int64_t ms = 0;
  for (int i = 0; i < 13; i++)
    if (i != 8) ms = ms * 16 + hexval(s[i]);
  return ms;
}

static void test_id_format(void **state) {
  (void)state;
  int64_t before = er_now_wall_ms();
  er_id_t id;
  assert_int_equal(er_id_new(&id), 0);
  int64_t after = er_now_wall_ms();
  check_v7(id.text);
  /* The first 48 bits are the Unix time in milliseconds. */
  int64_t ms = id_ms(id.text);
  assert_true(ms >= before && ms <= after + 5);
}

static void test_id_monotonic(void **state) {
  (void)state;
  /* 10k ids take a few milliseconds at most: many share one, and the 12-bit
   * counter runs out within one, so both tie-breaks are exercised. */
  enum { N = 10000 };
  er_id_t *ids = malloc(N * sizeof *ids);
  assert_non_null(ids);
  for (int i = 0; i < N; i++) {
    assert_int_equal(er_id_new(&ids[i]), 0);
    check_v7(ids[i].text);
    if (i) {
      if (strcmp(ids[i - 1].text, ids[i].text) >= 0)
        fail_msg("id %d is not after id %d: %s, %s", i, i - 1, ids[i - 1].text, ids[i].text);
      assert_true(id_ms(ids[i].text) >= id_ms(ids[i - 1].text));
    }
  }
  free(ids);
}

enum { ID_THREADS = 4, ID_PER_THREAD = 2500 };
static er_id_t g_ids[ID_THREADS * ID_PER_THREAD];

static void *make_ids(void *arg) {
  er_id_t *out = arg;
  for (int i = 0; i < ID_PER_THREAD; i++) {
    if (er_id_new(&out[i]) != 0) return (void *)1;
    if (i && strcmp(out[i - 1].text, out[i].text) >= 0) return (void *)2;
  }
  return NULL;
}

static int cmp_id(const void *a, const void *b) {
  return strcmp(((const er_id_t *)a)->text, ((const er_id_t *)b)->text);
}

static void test_id_threads_unique(void **state) {
  (void)state;
  pthread_t th[ID_THREADS];
  for (int i = 0; i < ID_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, make_ids, &g_ids[i * ID_PER_THREAD]), 0);
  for (int i = 0; i < ID_THREADS; i++) {
    void *res;
    pthread_join(th[i], &res);
    assert_null(res); /* each thread's ids in order too */
  }
  qsort(g_ids, ID_THREADS * ID_PER_THREAD, sizeof g_ids[0], cmp_id);
  for (int i = 1; i < ID_THREADS * ID_PER_THREAD; i++)
    assert_true(strcmp(g_ids[i - 1].text, g_ids[i].text) < 0);
}

static void test_id_valid(void **state) {
  (void)state;
  assert_true(er_id_valid("0190a6c2-3b1e-7c3d-8e4f-123456789abc"));
  assert_true(er_id_valid("0190A6C2-3B1E-7C3D-8E4F-123456789ABC")); /* upper case */
  assert_true(er_id_valid("123e4567-e89b-12d3-a456-426614174000")); /* v1 */
  assert_true(er_id_valid("00000000-0000-0000-0000-000000000000"));
  assert_false(er_id_valid(NULL));
  assert_false(er_id_valid(""));
  assert_false(er_id_valid("0190a6c2-3b1e-7c3d-8e4f-123456789ab"));   /* short */
  assert_false(er_id_valid("0190a6c2-3b1e-7c3d-8e4f-123456789abcd")); /* long */
  assert_false(er_id_valid("0190a6c2x3b1e-7c3d-8e4f-123456789abc"));  /* dash missing */
  assert_false(er_id_valid("0190a6c2-3b1e-7c3d-8e4f-123456789abg"));  /* not hex */
  assert_false(er_id_valid("0190a6c23b1e-7c3d-8e4f-123456789abcd-")); /* dash moved */
  assert_false(er_id_valid("{190a6c2-3b1e-7c3d-8e4f-123456789abc"));
}

/* ---- time ----------------------------------------------------------------------- */

static void test_time(void **state) {
  (void)state;
  uint64_t prev = er_now_mono_ns();
  for (int i = 0; i < 100000; i++) {
    uint64_t now = er_now_mono_ns();
    assert_true(now >= prev);
    prev = now;
  }
  uint64_t ns = er_now_mono_ns();
  uint64_t ms = er_now_mono_ms();
  assert_true(ms >= ns / 1000000u && ms <= ns / 1000000u + 1000);

  uint64_t t0 = er_now_mono_ns();
  usleep(20 * 1000);
  uint64_t waited = er_now_mono_ns() - t0;
  assert_true(waited >= 20 * MS_NS);
  assert_true(waited < 2000 * MS_NS);

  /* The wall clock is Unix time in milliseconds. */
  int64_t wall = er_now_wall_ms();
  int64_t t = (int64_t)time(NULL);
  assert_true(wall / 1000 >= t - 1 && wall / 1000 <= t + 1);
  assert_true(wall > 1600000000000); /* after 2020 */
}

/* ---- logging ---------------------------------------------------------------------- */

/* The level comes from ERRAND_LOG on first use: each case runs in a child
 * process that has not used the logger yet. */
static int level_in_child(const char *env) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (env)
      setenv("ERRAND_LOG", env, 1);
    else
      unsetenv("ERRAND_LOG");
    _exit((int)er_log_get_level());
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

static void test_log_level_from_env(void **state) {
  (void)state;
  assert_int_equal(level_in_child("error"), ER_LOG_ERROR);
  assert_int_equal(level_in_child("warn"), ER_LOG_WARN);
  assert_int_equal(level_in_child("info"), ER_LOG_INFO);
  assert_int_equal(level_in_child("debug"), ER_LOG_DEBUG);
  assert_int_equal(level_in_child("trace"), ER_LOG_TRACE);
  assert_int_equal(level_in_child(NULL), ER_LOG_WARN);    /* default */
  assert_int_equal(level_in_child("loud"), ER_LOG_WARN);  /* unknown: default */
}

typedef struct {
  int n;
  er_log_level_t levels[16];
  char lines[16][1100];
} sink_t;

static void record_sink(er_log_level_t level, const char *line, void *ud) {
  sink_t *s = ud;
  if (s->n < 16) {
    s->levels[s->n] = level;
    snprintf(s->lines[s->n], sizeof s->lines[0], "%s", line);
  }
  s->n++;
}

static void test_log_levels_and_sink(void **state) {
  (void)state;
  er_log_level_t saved = er_log_get_level();
  assert_string_equal(er_log_level_name(ER_LOG_ERROR), "error");
  assert_string_equal(er_log_level_name(ER_LOG_WARN), "warn");
  assert_string_equal(er_log_level_name(ER_LOG_INFO), "info");
  assert_string_equal(er_log_level_name(ER_LOG_DEBUG), "debug");
  assert_string_equal(er_log_level_name(ER_LOG_TRACE), "trace");
  assert_string_equal(er_log_level_name((er_log_level_t)99), "?");

  sink_t s;
  memset(&s, 0, sizeof s);
  er_log_set_sink(record_sink, &s);
  er_log_set_level(ER_LOG_INFO);
  assert_int_equal(er_log_get_level(), ER_LOG_INFO);
  er_log(ER_LOG_ERROR, "e %d", 1);
  er_log(ER_LOG_WARN, "w %s", "two");
  er_log(ER_LOG_INFO, "i");
  er_log(ER_LOG_DEBUG, "d"); /* above the level: dropped */
  er_log(ER_LOG_TRACE, "t");
  assert_int_equal(s.n, 3);
  assert_int_equal(s.levels[0], ER_LOG_ERROR);
  assert_string_equal(s.lines[0], "e 1");
  assert_int_equal(s.levels[1], ER_LOG_WARN);
  assert_string_equal(s.lines[1], "w two");
  assert_string_equal(s.lines[2], "i");

  er_log_set_level(ER_LOG_TRACE);
  er_log(ER_LOG_TRACE, "t");
  assert_int_equal(s.n, 4);
  er_log_set_level(ER_LOG_ERROR);
  er_log(ER_LOG_WARN, "w");
  assert_int_equal(s.n, 4);

  /* A long message is cut, not overflowed. */
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  er_log(ER_LOG_ERROR, "%s", big);
  assert_int_equal(s.n, 5);
  assert_true(strlen(s.lines[4]) > 100 && strlen(s.lines[4]) < sizeof big - 1);

  /* The default sink: one line on stderr. */
  er_log_set_sink(NULL, NULL);
  fflush(stderr);
  int saved_fd = dup(2);
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  dup2(fileno(tmp), 2);
  er_log(ER_LOG_ERROR, "to stderr %d", 42);
  er_log(ER_LOG_DEBUG, "not shown");
  fflush(stderr);
  dup2(saved_fd, 2);
  close(saved_fd);
  char buf[256] = {0};
  rewind(tmp);
  size_t n = fread(buf, 1, sizeof buf - 1, tmp);
  fclose(tmp);
  assert_true(n > 0);
  assert_string_equal(buf, "errand error: to stderr 42\n");
  assert_int_equal(s.n, 5); /* the old sink no longer sees anything */

  er_log_set_level(saved);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_level_from_env), /* first: before anything logs */
      cmocka_unit_test(test_error_table_every_code),
      cmocka_unit_test(test_error_unknown_codes),
      cmocka_unit_test(test_alloc_defaults),
      cmocka_unit_test(test_alloc_hooks_see_everything),
      cmocka_unit_test(test_alloc_failures_give_enomem),
      cmocka_unit_test(test_alloc_each_failure_in_turn),
      cmocka_unit_test(test_id_format),
      cmocka_unit_test(test_id_monotonic),
      cmocka_unit_test(test_id_threads_unique),
      cmocka_unit_test(test_id_valid),
      cmocka_unit_test(test_time),
      cmocka_unit_test(test_log_levels_and_sink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
