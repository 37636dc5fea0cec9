/* Tasklets, after ndb's tasklets_test.py (TaskletTests, TracebackTests):
 * returning values, failing, catching a child's error, awaiting several
 * futures at once, error chains through nested tasklets, what is not a future,
 * sleeping on a controllable clock, returning a future, spawning from a
 * tasklet, and many tasklets taking turns. */
#include <pthread.h>
#include <stdio.h>

#include "test_util.h"

static er_loop_t *g_loop; /* the loop of the running test, for tasklet bodies */

/* ---- returning ------------------------------------------------------------------ */

static int t1(void *arg) {
  (void)arg;
  er_future_t *a = er_spawn(g_loop, t2, (void *)(intptr_t)3);
  er_future_t *b = er_spawn(g_loop, t3, (void *)(intptr_t)2);
  int rc = er_await(a);
  if (rc == 0) rc = er_await(b);
  int64_t sum = er_future_int(a) + er_future_int(b);
  er_future_unref(a);
  er_future_unref(b);
  if (rc < 0) return rc;
  return er_return_int(sum);
}

/* testTasklets_Basic. */
static void test_basic(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *x = er_spawn(g_loop, t1, NULL);
  assert_non_null(x);
  assert_true(er_is_future(x));
  assert_false(er_future_done(x)); /* t3 suspended it */
  assert_int_equal(er_future_get_result(x), 0);
  assert_int_equal(er_future_int(x), 5);
  er_future_unref(x);
  er_loop_free(g_loop);
}

static int plain(void *arg) {
  *(int *)arg += 1;
  return er_return_int(11);
}

static void test_never_suspends_is_done_at_once(void **state) {
  (void)state;
  g_loop = new_loop();
  int ran = 0;
  er_future_t *f = er_spawn(g_loop, plain, &ran);
  assert_int_equal(ran, 1); /* ran inside spawn */
  assert_true(er_future_done(f));
  assert_int_equal(er_future_int(f), 11);
  assert_int_equal(er_loop_run0(g_loop), -1); /* and left nothing behind */
  er_future_unref(f);
  er_loop_free(g_loop);
}

static int g_dtor_calls;
static void count_dtor(void *p) {
  g_dtor_calls++;
  free(p);
}

static int return_kinds(void *arg) {
  int which = (int)(intptr_t)arg;
  er_sleep(1);
  switch (which) {
    case 0:
      return 0; /* nothing */
    case 1:
      return er_return_int(-5);
    case 2: {
      char *s = malloc(6);
      strcpy(s, "hello");
      return er_return_ptr(s, count_dtor);
    }
    case 3: {
      json_t *v = json_pack("[i,i]", 1, 2);
      int rc = er_return_json(v); /* takes its own reference */
      json_decref(v);
      return rc;
    }
    default: {
      /* The last call wins; what it replaces is released. */
      er_return_ptr(malloc(1), count_dtor);
      er_return_int(1);
      return er_return_int(2);
    }
  }
}

static void test_return_kinds(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  g_dtor_calls = 0;
  er_future_t *f[5];
  for (int i = 0; i < 5; i++) f[i] = er_spawn(g_loop, return_kinds, (void *)(intptr_t)i);
  assert_int_equal(er_future_wait_all(f, 5), 0);
  assert_int_equal(er_future_kind(f[0]), ER_VALUE_NONE);
  assert_int_equal(er_future_status(f[0]), 0);
  assert_int_equal(er_future_int(f[1]), -5);
  assert_string_equal(er_future_ptr(f[2]), "hello");
  json_t *j = er_future_json(f[3]);
  assert_true(json_is_array(j));
  assert_int_equal(json_array_size(j), 2);
  assert_int_equal(j->refcount, 1); /* the future's own only */
  assert_int_equal(er_future_int(f[4]), 2);
  assert_int_equal(g_dtor_calls, 1); /* the replaced pointer */
  for (int i = 0; i < 5; i++) er_future_unref(f[i]);
  assert_int_equal(g_dtor_calls, 2); /* "hello" went with its future */
  er_loop_free(g_loop);
}

/* ---- failing ------------------------------------------------------------------------ */

static int fails(void *arg) {
  (void)arg;
  return er_fail(ER_EIO, "hello %d", 42);
}

static void test_fail(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *a = er_tasklet_spawn(g_loop, fails, NULL, &(er_tasklet_opts_t){.name = "fails"});
  assert_true(er_future_done(a));
  assert_int_equal(er_future_status(a), ER_EIO);
  er_error_t *e = er_future_error(a);
  assert_string_equal(er_error_message(e), "hello 42");
  assert_int_equal(er_error_chain_len(e), 1);
  assert_string_equal(er_error_chain_at(e, 0), "fails");

  er_future_t *b = er_spawn(g_loop, fails_later, (void *)(intptr_t)5);
  assert_false(er_future_done(b));
  assert_int_equal(er_future_get_result(b), ER_EIO);
  assert_string_equal(er_error_chain_at(er_future_error(b), 0), "fails_later");
  er_future_unref(a);
  er_future_unref(b);
  er_loop_free(g_loop);
}

static int returns_code(void *arg) { return (int)(intptr_t)arg; }

static void test_return_codes(void **state) {
  (void)state;
  g_loop = new_loop();
  /* A bare negative code: the code's own message. */
  er_future_t *a = er_spawn(g_loop, returns_code, (void *)(intptr_t)ER_ETIMEDOUT);
  assert_int_equal(er_future_status(a), ER_ETIMEDOUT);
  assert_string_equal(er_error_message(er_future_error(a)), "timed out");
  assert_string_equal(er_error_chain_at(er_future_error(a), 0), "returns_code");
  /* A positive return is a mistake, reported as ER_EINVAL. */
  er_future_t *b = er_spawn(g_loop, returns_code, (void *)(intptr_t)3);
  assert_int_equal(er_future_status(b), ER_EINVAL);
  er_future_unref(a);
  er_future_unref(b);
  er_loop_free(g_loop);
}

/* testTasklets_Raising: the parent catches the child's error, sees the same
 * error as on the child's future, and returns its message. */
static int catch_parent(void *arg) {
  (void)arg;
  er_future_t *f = er_spawn(g_loop, fails_later, (void *)(intptr_t)1);
  int rc = er_await(f);
  int ok = rc == ER_EIO && er_last_error() == er_future_error(f);
  er_future_unref(f);
  if (!ok) return er_fail(ER_EINTERNAL, "rc %d", rc);
  char *msg = strdup(er_error_message(er_last_error()));
  return er_return_ptr(msg, free);
}

static void test_catch_child_error(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *x = er_spawn(g_loop, catch_parent, NULL);
  assert_int_equal(er_future_get_result(x), 0);
  assert_string_equal(er_future_ptr(x), "hello 42");
  er_future_unref(x);
  er_loop_free(g_loop);
}

/* ---- awaiting several --------------------------------------------------------------- */

static int fib(void *arg) {
  intptr_t n = (intptr_t)arg;
  if (n <= 1) return er_return_int(n);
  er_future_t *a = er_spawn(g_loop, fib, (void *)(n - 1));
  er_future_t *b = er_spawn(g_loop, fib, (void *)(n - 2));
  int rc = ER_AWAIT_ALL(a, b);
  int64_t x = er_future_int(a), y = er_future_int(b);
  er_future_unref(a);
  er_future_unref(b);
  if (rc < 0) return rc;
  if (x < y) return er_fail(ER_EINTERNAL, "fib(%ld): %lld < %lld", (long)n, (long long)x, (long long)y);
  return er_return_int(x + y);
}

/* testTasklet_YieldTuple. */
static void test_fib(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *f = er_spawn(g_loop, fib, (void *)(intptr_t)10);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), 55);
  er_future_unref(f);
  er_loop_free(g_loop);
}

typedef struct {
  uint64_t ms;
  int64_t value;
  int code; /* fail with this instead, if negative */
} job_t;

static int job(void *arg) {
  job_t *j = arg;
  er_sleep(j->ms);
  if (j->code < 0) return er_fail(j->code, "job of %llu ms", (unsigned long long)j->ms);
  return er_return_int(j->value);
}

typedef struct {
  job_t jobs[3];
  int64_t got[3];
  bool done[3];
  int rc;
  int last_code;
  uint64_t now_ms;
} await3_t;

static int await_three(void *arg) {
  await3_t *w = arg;
  er_future_t *a = er_spawn(g_loop, job, &w->jobs[0]);
  er_future_t *b = er_spawn(g_loop, job, &w->jobs[1]);
  er_future_t *c = er_spawn(g_loop, job, &w->jobs[2]);
  w->rc = ER_AWAIT_ALL(a, b, c);
  w->last_code = er_last_error() ? er_error_code(er_last_error()) : 0;
  w->now_ms = er_loop_now_ns(g_loop) / MS_NS;
  er_future_t *fs[3] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    w->got[i] = er_future_int(fs[i]);
    w->done[i] = er_future_done(fs[i]);
    er_future_unref(fs[i]);
  }
  return w->rc;
}

static void test_await_all_values_in_argument_order(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  await3_t w = {.jobs = {{30, 1, 0}, {10, 2, 0}, {20, 3, 0}}};
  er_future_t *f = er_spawn(g_loop, await_three, &w);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.got[0], 1);
  assert_int_equal(w.got[1], 2);
  assert_int_equal(w.got[2], 3);
  assert_int_equal(w.now_ms, 30); /* all at once: as long as the slowest */
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* testTasklet_YieldTupleError, and the first error in argument order wins
 * even when a later argument failed first. Every future is done afterwards. */
static void test_await_all_first_error_in_argument_order(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  await3_t w = {.jobs = {{0, 1, 0}, {20, 0, ER_EIO}, {5, 0, ER_ETIMEDOUT}}};
  er_future_t *f = er_spawn(g_loop, await_three, &w);
  assert_int_equal(er_future_get_result(f), ER_EIO);
  assert_int_equal(w.rc, ER_EIO);
  assert_int_equal(w.last_code, ER_EIO); /* the tasklet's current error matches */
  for (int i = 0; i < 3; i++) assert_true(w.done[i]);
  assert_int_equal(w.got[0], 1);
  assert_int_equal(w.now_ms, 20);
  /* Passing the error up added this tasklet to the child's chain. */
  er_error_t *e = er_future_error(f);
  assert_int_equal(er_error_chain_len(e), 2);
  assert_string_equal(er_error_chain_at(e, 0), "job");
  assert_string_equal(er_error_chain_at(e, 1), "await_three");
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* ---- not a future ----------------------------------------------------------------------- */

typedef struct {
  int rc_one, rc_all, rc_after;
  int last_code;
  bool in_tasklet;
} notfut_t;

static int await_not_a_future(void *arg) {
  notfut_t *r = arg;
  r->in_tasklet = er_in_tasklet();
  /* A struct of the same size as a future, with plausible contents. */
  struct {
    char b[256];
  } fake;
  memset(&fake, 0, sizeof fake);
  er_future_t *nf = (er_future_t *)(void *)&fake;
  r->rc_one = er_await(nf);
  r->last_code = er_error_code(er_last_error());
  er_future_t *good = er_spawn(g_loop, t3, (void *)(intptr_t)1);
  er_future_t *bad = er_spawn(g_loop, fails_later, (void *)(intptr_t)0);
  r->rc_all = ER_AWAIT_ALL(good, bad, nf);
  /* The tasklet goes on normally afterwards. */
  r->rc_after = ER_AWAIT_ALL(good);
  er_await(bad);
  er_future_unref(good);
  er_future_unref(bad);
  return er_return_int(1);
}

/* testTasklet_YieldTupleTypeError and testYieldError: a clear error, no
 * crash. */
static void test_await_not_a_future(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  notfut_t r;
  memset(&r, 0, sizeof r);
  er_future_t *f = er_spawn(g_loop, await_not_a_future, &r);
  assert_int_equal(er_future_get_result(f), 0);
  assert_true(r.in_tasklet);
  assert_int_equal(r.rc_one, ER_ENOTFUTURE);
  assert_int_equal(r.last_code, ER_ENOTFUTURE);
  assert_int_equal(r.rc_all, ER_ENOTFUTURE);
  assert_int_equal(r.rc_after, 0);
  assert_int_equal(er_future_int(f), 1);
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* ---- error chains ------------------------------------------------------------------------- */

static int level3(void *arg) {
  (void)arg;
  return er_fail(ER_EIO, "hello");
}
static int level2(void *arg) {
  (void)arg;
  er_future_t *f = er_spawn(g_loop, level3, NULL);
  int rc = er_await(f);
  er_future_unref(f);
  return rc;
}
static int level1(void *arg) {
  (void)arg;
  er_sleep(1); /* one level that suspends before its child fails */
  er_future_t *f = er_spawn(g_loop, level2, NULL);
  int rc = er_await(f);
  er_future_unref(f);
  return rc;
}
static int level0(void *arg) {
  (void)arg;
  er_future_t *f = er_spawn(g_loop, level1, NULL);
  int rc = er_await(f);
  er_future_unref(f);
  return rc;
}

/* TracebackTests.testBasicError: the error names every tasklet it passed
 * through, innermost first. */
static void test_error_chain_four_levels(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  er_future_t *f = er_spawn(g_loop, level0, NULL);
  assert_int_equal(er_future_check_success(f), ER_EIO);
  er_error_t *e = er_future_error(f);
  assert_int_equal(er_error_code(e), ER_EIO);
  assert_string_equal(er_error_message(e), "hello");
  assert_int_equal(er_error_chain_len(e), 4);
  assert_string_equal(er_error_chain_at(e, 0), "level3");
  assert_string_equal(er_error_chain_at(e, 1), "level2");
  assert_string_equal(er_error_chain_at(e, 2), "level1");
  assert_string_equal(er_error_chain_at(e, 3), "level0");
  assert_null(er_error_chain_at(e, 4));
  char buf[256];
  assert_string_equal(er_error_format(e, buf, sizeof buf),
                      "EIO: hello (in level3 <- level2 <- level1 <- level0)");
  /* Truncated: still terminated, and a prefix of the whole. */
  char small[20];
  er_error_format(e, small, sizeof small);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, buf, sizeof small - 1);
  er_future_unref(f);
  er_loop_free(g_loop);
}

static int named(void *arg) {
  (void)arg;
  return er_fail(ER_EFAIL, NULL);
}

static void test_names(void **state) {
  (void)state;
  g_loop = new_loop();
  char name[64];
  strcpy(name, "mine");
  er_future_t *a = er_tasklet_spawn(g_loop, named, NULL, &(er_tasklet_opts_t){.name = name});
  strcpy(name, "changed"); /* the name was copied */
  assert_string_equal(er_error_chain_at(er_future_error(a), 0), "mine");
  er_future_t *b = er_tasklet_spawn(g_loop, named, NULL, NULL);
  assert_string_equal(er_error_chain_at(er_future_error(b), 0), "tasklet");
  char longname[200];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  er_future_t *c = er_tasklet_spawn(g_loop, named, NULL, &(er_tasklet_opts_t){.name = longname});
  const char *got = er_error_chain_at(er_future_error(c), 0);
  assert_true(strlen(got) > 0 && strlen(got) < sizeof longname);
  assert_memory_equal(got, longname, strlen(got));
  assert_string_equal(er_error_message(er_future_error(a)), er_strerror(ER_EFAIL));
  assert_null(er_tasklet_spawn(g_loop, NULL, NULL, NULL));
  assert_null(er_tasklet_spawn(NULL, named, NULL, NULL));
  er_future_unref(a);
  er_future_unref(b);
  er_future_unref(c);
  er_loop_free(g_loop);
}

/* ---- outside a tasklet ------------------------------------------------------------------ */

static void test_outside_a_tasklet(void **state) {
  (void)state;
  g_loop = new_loop();
  assert_false(er_in_tasklet());
  assert_int_equal(er_return_int(1), ER_ENOTASKLET);
  assert_int_equal(er_return_ptr(NULL, NULL), ER_ENOTASKLET);
  assert_int_equal(er_return_json(NULL), ER_ENOTASKLET);
  er_future_t *f = er_future_new_int(g_loop, 1);
  assert_int_equal(er_return_future(f), ER_ENOTASKLET);
  /* er_fail sets this thread's current error. */
  assert_int_equal(er_fail(ER_EPARSE, "bad %s", "json"), ER_EPARSE);
  assert_int_equal(er_error_code(er_last_error()), ER_EPARSE);
  assert_string_equal(er_error_message(er_last_error()), "bad json");
  /* er_await outside a tasklet is er_future_get_result. */
  assert_int_equal(er_await(f), 0);
  er_future_t *e = er_future_new_error(g_loop, ER_EBUSY, "b");
  assert_int_equal(er_await(e), ER_EBUSY);
  assert_ptr_equal(er_last_error(), er_future_error(e));
  er_future_t *p = er_future_new(g_loop);
  assert_int_equal(er_await(p), ER_EDEADLK);
  er_future_set_none(p);
  er_future_unref(f);
  er_future_unref(e);
  er_future_unref(p);
  er_loop_free(g_loop);
}

/* ---- sleeping --------------------------------------------------------------------------------- */

static int sleeper(void *arg) {
  int *log = arg;
  er_sleep(100);
  *log += 1;
  return 0;
}

/* testSleep: the tasklet sleeps exactly as long as asked, on the loop's
 * clock. */
static void test_sleep(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  int log = 0;
  er_future_t *f = er_spawn(g_loop, sleeper, &log);
  assert_int_equal(log, 0);
  er_loop_run(g_loop);
  assert_int_equal(log, 1);
  assert_true(er_future_done(f));
  assert_int_equal(fc.now_ns, 100 * MS_NS);
  er_future_unref(f);

  /* Outside a tasklet, er_sleep runs the current loop for that long. */
  assert_int_equal(er_sleep(250), 0);
  assert_int_equal(fc.now_ns, 350 * MS_NS);
  /* er_sleep_future. */
  er_future_t *s = er_sleep_future(g_loop, 50);
  assert_false(er_future_done(s));
  assert_int_equal(er_future_get_result(s), 0);
  assert_int_equal(er_future_kind(s), ER_VALUE_NONE);
  assert_int_equal(fc.now_ns, 400 * MS_NS);
  er_future_unref(s);
  er_loop_free(g_loop);
}

static void *sleep_without_loop(void *arg) {
  *(int *)arg = er_sleep(1);
  return NULL;
}

static void test_sleep_without_loop(void **state) {
  (void)state;
  int rc = 0;
  pthread_t th;
  pthread_create(&th, NULL, sleep_without_loop, &rc);
  pthread_join(th, NULL);
  assert_int_equal(rc, ER_ENOTASKLET);
}

/* ---- returning a future --------------------------------------------------------------------- */

static int slow_answer(void *arg) {
  (void)arg;
  er_sleep(40);
  return er_return_int(42);
}

static int hands_over(void *arg) {
  const er_tasklet_fn *fn = arg;
  er_future_t *child = er_tasklet_spawn(g_loop, *fn, NULL, NULL);
  int rc = er_return_future(child);
  er_future_unref(child);
  return rc; /* returns at once; its future completes as the child's does */
}

static void test_return_future(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  static const er_tasklet_fn answer = slow_answer, failing = fails_later;
  er_future_t *f = er_spawn(g_loop, hands_over, (void *)&answer);
  assert_false(er_future_done(f));
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), 42);
  assert_int_equal(fc.now_ns, 40 * MS_NS);
  er_future_unref(f);

  er_future_t *g = er_spawn(g_loop, hands_over, (void *)&failing);
  assert_int_equal(er_future_get_result(g), ER_EIO);
  assert_string_equal(er_error_message(er_future_error(g)), "hello 42");
  er_future_unref(g);
  er_loop_free(g_loop);
}

static int return_not_future(void *arg) {
  (void)arg;
  int x[64] = {0};
  int rc = er_return_future((er_future_t *)(void *)x);
  return rc == ER_ENOTFUTURE ? er_return_int(1) : er_fail(ER_EINTERNAL, "rc %d", rc);
}

static void test_return_future_not_a_future(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *f = er_spawn(g_loop, return_not_future, NULL);
  assert_int_equal(er_future_get_result(f), 0);
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* ---- spawning from a tasklet ------------------------------------------------------------------- */

typedef struct {
  char log[64];
  int n;
} trace_t;

static void mark(trace_t *t, char c) { t->log[t->n++] = c; }

static int child(void *arg) {
  trace_t *t = arg;
  mark(t, 'c');
  er_sleep(10);
  mark(t, 'C');
  return er_return_int(7);
}

static int parent(void *arg) {
  trace_t *t = arg;
  mark(t, 'p');
  er_future_t *c = er_spawn(g_loop, child, t);
  mark(t, 'q'); /* the child ran until it suspended, then we went on */
  int rc = er_await(c);
  mark(t, 'P');
  int64_t v = er_future_int(c);
  er_future_unref(c);
  return rc < 0 ? rc : er_return_int(v + 1);
}

static void test_spawn_from_tasklet(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  trace_t t = {.n = 0};
  er_future_t *f = er_spawn(g_loop, parent, &t);
  mark(&t, 'm'); /* back in main once the parent suspended */
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), 8);
  t.log[t.n] = '\0';
  assert_string_equal(t.log, "pcqmCP");
  er_future_unref(f);
  er_loop_free(g_loop);
}

static int await_other_loop(void *arg) {
  er_future_t *f = arg;
  int rc = er_await(f);
  return rc == ER_EINVAL ? er_return_int(1) : er_fail(ER_EINTERNAL, "rc %d", rc);
}

static void test_await_future_of_another_loop(void **state) {
  (void)state;
  g_loop = new_loop();
  er_loop_t *other = new_loop();
  er_future_t *of = er_future_new(other);
  er_future_t *f = er_spawn(g_loop, await_other_loop, of);
  assert_int_equal(er_future_get_result(f), 0);
  er_future_set_none(of);
  er_future_unref(of);
  er_future_unref(f);
  er_loop_free(other);
  er_loop_free(g_loop);
}

/* er_future_wait and wait_all inside a tasklet suspend it, and return 0 once
 * the futures are done, whatever their outcome: even an error whose code is
 * one that waiting itself can report (ER_EINVAL, ER_EDEADLK). */
typedef struct {
  int wait_rc, wait_all_rc, get_rc;
  bool all_done;
} waits_t;

static void fail_einval(void *arg) { er_future_set_error(arg, ER_EINVAL, "bad"); }
static void fail_edeadlk(void *arg) { er_future_set_error(arg, ER_EDEADLK, "stuck elsewhere"); }

static int waits_inside(void *arg) {
  waits_t *w = arg;
  er_future_t *a = er_future_new(g_loop), *b = er_future_new(g_loop), *c = er_future_new(g_loop);
  er_loop_call_later(g_loop, 1, fail_einval, a);
  er_loop_call_later(g_loop, 2, fail_edeadlk, b);
  er_loop_call_later(g_loop, 3, fail_einval, c);
  w->wait_rc = er_future_wait(a);
  er_future_t *fs[] = {b, c};
  w->wait_all_rc = er_future_wait_all(fs, 2);
  w->all_done = er_future_done(b) && er_future_done(c);
  w->get_rc = er_future_get_result(b);
  er_future_unref(a);
  er_future_unref(b);
  er_future_unref(c);
  return 0;
}

static void test_wait_inside_tasklet(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  waits_t w;
  memset(&w, 0, sizeof w);
  er_future_t *f = er_spawn(g_loop, waits_inside, &w);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(w.wait_rc, 0);
  assert_int_equal(w.wait_all_rc, 0);
  assert_true(w.all_done);
  assert_int_equal(w.get_rc, ER_EDEADLK); /* the future's own error */
  assert_int_equal(fc.now_ns, 3 * MS_NS);
  er_future_unref(f);
  er_loop_free(g_loop);
}

/* ---- many tasklets ------------------------------------------------------------------------------ */

enum { TURN_TASKLETS = 50, TURNS = 8 };
static int g_turns[TURN_TASKLETS * TURNS];
static int g_nturns;

static int take_turns(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int r = 0; r < TURNS; r++) {
    g_turns[g_nturns++] = id;
    er_sleep(0); /* everyone due at the same time: strict round robin */
  }
  return er_return_int(id);
}

static void test_many_tasklets_interleave(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  g_nturns = 0;
  er_future_t *fs[TURN_TASKLETS];
  for (int i = 0; i < TURN_TASKLETS; i++) fs[i] = er_spawn(g_loop, take_turns, (void *)(intptr_t)i);
  assert_int_equal(er_future_wait_all(fs, TURN_TASKLETS), 0);
  assert_int_equal(g_nturns, TURN_TASKLETS * TURNS);
  for (int k = 0; k < TURN_TASKLETS * TURNS; k++) assert_int_equal(g_turns[k], k % TURN_TASKLETS);
  for (int i = 0; i < TURN_TASKLETS; i++) {
    assert_int_equal(er_future_int(fs[i]), i);
    er_future_unref(fs[i]);
  }
  assert_int_equal(fc.now_ns, 0);
  er_loop_free(g_loop);
}

static int staggered(void *arg) {
  int id = (int)(intptr_t)arg;
  int64_t acc = 0;
  for (int r = 0; r < 5; r++) {
    er_sleep((uint64_t)(1 + (id * 7 + r * 3) % 13));
    acc += id;
  }
  return er_return_int(acc);
}

static int spawn_many(void *arg) {
  int n = (int)(intptr_t)arg;
  er_future_t *mf = er_multi_future_new(g_loop);
  for (int i = 0; i < n; i++) {
    er_future_t *f = er_spawn(g_loop, staggered, (void *)(intptr_t)i);
    if (!f) return ER_ENOMEM;
    er_multi_future_add_dependent(mf, f);
    er_future_unref(f);
  }
  er_multi_future_complete(mf);
  int rc = er_await(mf);
  int64_t sum = 0;
  for (size_t i = 0; i < er_future_list_len(mf); i++) sum += er_future_int(er_future_list_at(mf, i));
  er_future_unref(mf);
  return rc < 0 ? rc : er_return_int(sum);
}

static void test_many_tasklets_staggered(void **state) {
  (void)state;
  /* A thousand tasklets alive at once, each sleeping five times for its own
   * lengths, awaited through one MultiFuture by a tasklet. */
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  enum { N = 1000 };
  er_future_t *f = er_spawn(g_loop, spawn_many, (void *)(intptr_t)N);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_int(f), 5LL * N * (N - 1) / 2);
  er_future_unref(f);
  /* Stacks are reused: run it again on the same loop. */
  f = er_spawn(g_loop, spawn_many, (void *)(intptr_t)N);
  assert_int_equal(er_future_get_result(f), 0);
  er_future_unref(f);
  er_loop_free(g_loop);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_never_suspends_is_done_at_once),
      cmocka_unit_test(test_return_kinds),
      cmocka_unit_test(test_fail),
      cmocka_unit_test(test_return_codes),
      cmocka_unit_test(test_catch_child_error),
      cmocka_unit_test(test_fib),
      cmocka_unit_test(test_await_all_values_in_argument_order),
      cmocka_unit_test(test_await_all_first_error_in_argument_order),
      cmocka_unit_test(test_await_not_a_future),
      cmocka_unit_test(test_error_chain_four_levels),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_outside_a_tasklet),
      cmocka_unit_test(test_sleep),
      cmocka_unit_test(test_sleep_without_loop),
      cmocka_unit_test(test_return_future),
      cmocka_unit_test(test_return_future_not_a_future),
      cmocka_unit_test(test_spawn_from_tasklet),
      cmocka_unit_test(test_await_future_of_another_loop),
      cmocka_unit_test(test_wait_inside_tasklet),
      cmocka_unit_test(test_many_tasklets_interleave),
      cmocka_unit_test(test_many_tasklets_staggered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
