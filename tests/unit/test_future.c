/* Futures, after the Future tests of ndb's tasklets_test.py: state, values and
 * their ownership, errors, callbacks (scheduled or immediate), waiting and
 * deadlock, wait_any / wait_all, and set_from forwarding. */
#include <stdio.h>

#include "test_util.h"

/* A callback that records which future it saw and in which order. */
typedef struct {
  er_future_t *seen[64];
  int tag[64];
  int n;
} cblog_t;

typedef struct {
  cblog_t *log;
  int tag;
} cbarg_t;

static void log_cb(er_future_t *f, void *arg) {
  cbarg_t *a = arg;
  a->log->seen[a->log->n] = f;
  a->log->tag[a->log->n] = a->tag;
  a->log->n++;
}

static int g_dtor_calls;
static void count_dtor(void *p) {
  g_dtor_calls++;
  free(p);
}

/* ---- state and values ------------------------------------------------------- */

static void test_pending_then_done(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new(loop);
  assert_non_null(f);
  assert_true(er_is_future(f));
  assert_ptr_equal(er_future_loop(f), loop);
  assert_false(er_future_done(f));
  assert_int_equal(er_future_status(f), ER_ESTATE);
  assert_null(er_future_error(f));
  assert_int_equal(er_future_kind(f), ER_VALUE_NONE);
  assert_int_equal(er_future_int(f), 0);
  assert_null(er_future_ptr(f));
  assert_null(er_future_json(f));

  assert_int_equal(er_future_set_int(f, 42), 0);
  assert_true(er_future_done(f));
  assert_int_equal(er_future_status(f), 0);
  assert_int_equal(er_future_kind(f), ER_VALUE_INT);
  assert_int_equal(er_future_int(f), 42);
  assert_null(er_future_ptr(f)); /* another kind: nothing */
  assert_null(er_future_json(f));
  assert_null(er_future_error(f));
  assert_int_equal(er_future_get_result(f), 0);
  er_future_unref(f);
  er_future_unref(NULL);
  er_loop_free(loop);
}

static void test_new_int_new_error_set_none(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *i = er_future_new_int(loop, -7);
  assert_true(er_future_done(i));
  assert_int_equal(er_future_int(i), -7);
  er_future_t *e = er_future_new_error(loop, ER_ETIMEDOUT, "after %d ms", 30);
  assert_true(er_future_done(e));
  assert_int_equal(er_future_status(e), ER_ETIMEDOUT);
  assert_string_equal(er_error_message(er_future_error(e)), "after 30 ms");
  assert_int_equal(er_future_kind(e), ER_VALUE_NONE);
  er_future_t *n = er_future_new(loop);
  assert_int_equal(er_future_set_none(n), 0);
  assert_true(er_future_done(n));
  assert_int_equal(er_future_status(n), 0);
  assert_int_equal(er_future_kind(n), ER_VALUE_NONE);
  assert_null(er_future_new(NULL));
  er_future_unref(i);
  er_future_unref(e);
  er_future_unref(n);
  er_loop_free(loop);
}

static void test_ptr_destructor_runs_once_at_last_ref(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  g_dtor_calls = 0;
  er_future_t *f = er_future_new(loop);
  int *p = malloc(sizeof *p);
  *p = 5;
  assert_int_equal(er_future_set_ptr(f, p, count_dtor), 0);
  assert_int_equal(er_future_kind(f), ER_VALUE_PTR);
  assert_ptr_equal(er_future_ptr(f), p);
  assert_ptr_equal(er_future_ref(f), f);
  er_future_unref(f);
  assert_int_equal(g_dtor_calls, 0); /* one reference left */
  assert_int_equal(*(int *)er_future_ptr(f), 5);
  er_future_unref(f);
  assert_int_equal(g_dtor_calls, 1);

  /* No destructor: the pointer is only borrowed. */
  int local = 3;
  f = er_future_new(loop);
  er_future_set_ptr(f, &local, NULL);
  assert_ptr_equal(er_future_ptr(f), &local);
  er_future_unref(f);
  er_loop_free(loop);
}

static void test_json_refcounts(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  json_t *v = json_pack("{s:i}", "n", 1);
  assert_int_equal(v->refcount, 1);
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_set_json(f, v), 0); /* borrowed: the future takes its own */
  assert_int_equal(v->refcount, 2);
  assert_ptr_equal(er_future_json(f), v);
  assert_int_equal(er_future_kind(f), ER_VALUE_JSON);
  assert_int_equal(er_future_set_json(f, v), ER_EALREADY); /* no reference taken */
  assert_int_equal(v->refcount, 2);
  er_future_unref(f);
  assert_int_equal(v->refcount, 1);
  json_decref(v);
  er_loop_free(loop);
}

static void test_double_set_is_ealready_and_releases(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_set_int(f, 1), 0);
  assert_int_equal(er_future_set_int(f, 2), ER_EALREADY);
  assert_int_equal(er_future_set_none(f), ER_EALREADY);
  assert_int_equal(er_future_set_error(f, ER_EIO, "late"), ER_EALREADY);
  er_error_t *e = er_error_new(ER_EIO, "late too");
  assert_int_equal(er_future_set_error_obj(f, e), ER_EALREADY);
  er_error_unref(e); /* not kept: valgrind would see it otherwise */
  g_dtor_calls = 0;
  assert_int_equal(er_future_set_ptr(f, malloc(4), count_dtor), ER_EALREADY);
  assert_int_equal(g_dtor_calls, 1); /* the refused value is released at once */
  assert_int_equal(er_future_int(f), 1);  /* the first value stays */
  assert_int_equal(er_future_status(f), 0);

  /* A failed future refuses a value the same way. */
  er_future_t *g = er_future_new(loop);
  assert_int_equal(er_future_set_error(g, ER_EIO, NULL), 0);
  assert_int_equal(er_future_set_int(g, 3), ER_EALREADY);
  assert_int_equal(er_future_status(g), ER_EIO);
  er_future_unref(f);
  er_future_unref(g);
  assert_int_equal(g_dtor_calls, 1);
  er_loop_free(loop);
}

static void test_not_a_future(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  /* Something as big as a future but not one. */
  struct {
    char bytes[256];
  } fake;
  memset(&fake, 0x5a, sizeof fake);
  er_future_t *nf = (er_future_t *)(void *)&fake;
  assert_false(er_is_future(NULL));
  assert_false(er_is_future(&fake));
  assert_int_equal(er_future_set_int(nf, 1), ER_ENOTFUTURE);
  assert_int_equal(er_future_set_none(nf), ER_ENOTFUTURE);
  assert_int_equal(er_future_set_error(nf, ER_EIO, "x"), ER_ENOTFUTURE);
  assert_int_equal(er_future_status(nf), ER_ENOTFUTURE);
  assert_int_equal(er_future_wait(nf), ER_ENOTFUTURE);
  assert_int_equal(er_future_add_callback(nf, log_cb, NULL), ER_ENOTFUTURE);
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_set_from(f, nf), ER_ENOTFUTURE);
  assert_int_equal(er_future_set_from(nf, f), ER_ENOTFUTURE);
  size_t idx;
  er_future_t *fs[] = {f, nf};
  assert_int_equal(er_future_wait_any(fs, 2, &idx), ER_ENOTFUTURE);
  er_future_set_none(f);
  er_future_unref(f);
  er_loop_free(loop);
}

/* ---- errors ---------------------------------------------------------------------- */

static void test_error_code_and_message(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_set_error(f, ER_EIO, "disk %d of %s", 3, "four"), 0);
  assert_true(er_future_done(f));
  assert_int_equal(er_future_status(f), ER_EIO);
  er_error_t *e = er_future_error(f);
  assert_non_null(e);
  assert_int_equal(er_error_code(e), ER_EIO);
  assert_string_equal(er_error_message(e), "disk 3 of four");
  assert_int_equal(er_error_chain_len(e), 0);
  assert_null(er_error_chain_at(e, 0));
  char buf[128];
  assert_string_equal(er_error_format(e, buf, sizeof buf), "EIO: disk 3 of four");
  assert_int_equal(er_future_kind(f), ER_VALUE_NONE);
  assert_int_equal(er_future_get_result(f), ER_EIO);
  assert_int_equal(er_future_check_success(f), ER_EIO);

  /* A NULL message means the code's own. */
  er_future_t *g = er_future_new(loop);
  er_future_set_error(g, ER_ETOMBSTONED, NULL);
  assert_string_equal(er_error_message(er_future_error(g)), er_strerror(ER_ETOMBSTONED));

  /* An error object is shared, not copied. */
  er_error_t *mine = er_error_new(ER_EBUSY, "busy %s", "now");
  er_future_t *h = er_future_new(loop);
  assert_int_equal(er_future_set_error_obj(h, mine), 0);
  assert_ptr_equal(er_future_error(h), mine);
  er_error_unref(mine); /* h keeps its own reference */
  assert_string_equal(er_error_message(er_future_error(h)), "busy now");
  er_future_t *k = er_future_new(loop);
  assert_int_equal(er_future_set_error_obj(k, NULL), ER_EINVAL);
  assert_false(er_future_done(k));
  er_future_unref(k);

  er_future_unref(f);
  er_future_unref(g);
  er_future_unref(h);
  er_loop_run(loop);
  er_loop_free(loop);
}

static void test_error_format_truncates(void **state) {
  (void)state;
  er_error_t *e = er_error_new(ER_EIO, "%s", "a rather long message indeed");
  char buf[8];
  memset(buf, 'z', sizeof buf);
  er_error_format(e, buf, sizeof buf);
  assert_string_equal(buf, "EIO: a "); /* cut to fit, always terminated */
  char one[1] = {'z'};
  er_error_format(e, one, 1);
  assert_int_equal(one[0], '\0');
  char none[1] = {'z'};
  assert_ptr_equal(er_error_format(e, none, 0), none); /* no room: untouched */
  assert_int_equal(none[0], 'z');
  er_error_t *r = er_error_ref(e);
  assert_ptr_equal(r, e);
  er_error_unref(e);
  assert_string_equal(er_error_message(r), "a rather long message indeed");
  er_error_unref(r);
  er_error_unref(NULL);
  /* A NULL format gives the code's message. */
  er_error_t *d = er_error_new(ER_EPARSE, NULL);
  assert_string_equal(er_error_message(d), "malformed input");
  er_error_unref(d);
}

/* ---- callbacks ---------------------------------------------------------------------- */

/* testFuture_AddDoneCallback_SetResult: a callback added while pending runs
 * from the loop after the result is set, not inside set. */
static void test_callback_then_set(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  cblog_t log = {.n = 0};
  cbarg_t a = {&log, 1};
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_add_callback(f, log_cb, &a), 0);
  assert_int_equal(log.n, 0);
  er_future_set_int(f, 42);
  assert_int_equal(log.n, 0); /* scheduled, not run */
  er_loop_run(loop);
  assert_int_equal(log.n, 1);
  assert_ptr_equal(log.seen[0], f);
  er_future_unref(f);
  er_loop_free(loop);
}

/* testFuture_SetResult_AddDoneCallback: added when already done, it still
 * runs from the loop, never inline. */
static void test_set_then_callback(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  cblog_t log = {.n = 0};
  cbarg_t a = {&log, 1};
  er_future_t *f = er_future_new_int(loop, 42);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(er_future_add_callback(f, log_cb, &a), 0);
  assert_int_equal(log.n, 0);
  er_future_unref(f); /* the scheduled callback keeps it alive */
  er_loop_run(loop);
  assert_int_equal(log.n, 1);
  er_loop_free(loop);
}

/* testFuture_AddDoneCallback_SetException. */
static void test_callback_then_error(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  cblog_t log = {.n = 0};
  cbarg_t a = {&log, 1};
  er_future_t *f = er_future_new(loop);
  er_future_add_callback(f, log_cb, &a);
  er_future_set_error(f, ER_EFAIL, "42");
  er_loop_run(loop);
  assert_int_equal(log.n, 1);
  assert_ptr_equal(log.seen[0], f);
  assert_true(er_future_done(f));
  er_future_unref(f);
  er_loop_free(loop);
}

static void test_immediate_callbacks_run_inline(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  cblog_t log = {.n = 0};
  cbarg_t a = {&log, 1}, b = {&log, 2};
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_add_immediate_callback(f, log_cb, &a), 0);
  assert_int_equal(log.n, 0);
  er_future_set_none(f);
  assert_int_equal(log.n, 1); /* inside set */
  assert_int_equal(er_future_add_immediate_callback(f, log_cb, &b), 0);
  assert_int_equal(log.n, 2); /* at once: already done */
  assert_int_equal(er_loop_run0(loop), -1); /* nothing was scheduled */
  er_future_unref(f);
  er_loop_free(loop);
}

static void test_callback_order(void **state) {
  (void)state;
  /* Immediate callbacks run at completion in the order added, the others
   * afterwards from the loop in the order added; more than fit inline. */
  er_loop_t *loop = new_loop();
  cblog_t log = {.n = 0};
  cbarg_t args[12];
  er_future_t *f = er_future_new(loop);
  for (int i = 0; i < 12; i++) {
    args[i] = (cbarg_t){&log, i};
    if (i % 3 == 0)
      er_future_add_immediate_callback(f, log_cb, &args[i]);
    else
      er_future_add_callback(f, log_cb, &args[i]);
  }
  er_future_set_int(f, 1);
  assert_int_equal(log.n, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(log.tag[i], 3 * i);
  er_loop_run(loop);
  assert_int_equal(log.n, 12);
  int want[] = {0, 3, 6, 9, 1, 2, 4, 5, 7, 8, 10, 11};
  for (int i = 0; i < 12; i++) assert_int_equal(log.tag[i], want[i]);
  er_future_unref(f);
  er_loop_free(loop);
}

static void unref_in_cb(er_future_t *f, void *arg) {
  (void)arg;
  er_future_unref(f); /* drops the last reference while completing */
}

static void test_immediate_callback_drops_last_ref(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  cblog_t log = {.n = 0};
  cbarg_t a = {&log, 1};
  er_future_t *f = er_future_new(loop);
  er_future_add_immediate_callback(f, unref_in_cb, NULL);
  er_future_add_callback(f, log_cb, &a);
  assert_int_equal(er_future_set_int(f, 1), 0);
  er_loop_run(loop); /* the scheduled callback held its own reference */
  assert_int_equal(log.n, 1);
  er_loop_free(loop);
}

/* ---- waiting ---------------------------------------------------------------------------- */

static void set_int_cb(void *arg) { er_future_set_int(arg, 99); }
static void set_err_cb(void *arg) { er_future_set_error(arg, ER_EIO, "late"); }

static void test_wait_runs_the_loop(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  er_future_t *f = er_future_new(loop);
  er_loop_call_later(loop, 250, set_int_cb, f);
  assert_int_equal(er_future_wait(f), 0);
  assert_true(er_future_done(f));
  assert_int_equal(er_future_int(f), 99);
  assert_int_equal(fc.now_ns, 250 * MS_NS);
  assert_int_equal(er_future_wait(f), 0); /* done: returns at once */

  er_future_t *g = er_future_new(loop);
  er_loop_call_later(loop, 10, set_err_cb, g);
  assert_int_equal(er_future_wait(g), 0); /* waiting succeeds whatever the outcome */
  assert_int_equal(er_future_get_result(g), ER_EIO);
  assert_int_equal(er_future_check_success(g), ER_EIO);
  er_future_unref(f);
  er_future_unref(g);
  er_loop_free(loop);
}

static void test_deadlock(void **state) {
  (void)state;
  /* Nothing will ever complete it and the loop runs dry: ndb raises
   * "Deadlock waiting for ..."; we report ER_EDEADLK and leave it pending. */
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new(loop);
  assert_int_equal(er_future_wait(f), ER_EDEADLK);
  assert_int_equal(er_future_get_result(f), ER_EDEADLK);
  assert_int_equal(er_future_check_success(f), ER_EDEADLK);
  assert_false(er_future_done(f));
  /* Still usable afterwards. */
  er_future_set_int(f, 1);
  assert_int_equal(er_future_get_result(f), 0);
  er_future_unref(f);

  /* Work left on the loop is done first: the loop runs it (here a timer that
   * completes another future), then reports the deadlock. */
  fake_clock_t fc;
  er_loop_t *fl = new_fake_loop(&fc);
  er_future_t *g = er_future_new(fl);
  er_future_t *h = er_future_new(fl);
  er_loop_call_later(fl, 100, set_int_cb, g);
  assert_int_equal(er_future_wait(h), ER_EDEADLK);
  assert_int_equal(fc.now_ns, 100 * MS_NS);
  assert_true(er_future_done(g));
  er_future_unref(g);
  er_future_unref(h);
  er_loop_free(fl);
  er_loop_free(loop);
}

/* create_futures from tasklets_test: five futures completed by timers at
 * 0, 10, ..., 40 ms, each with a scheduled callback. */
typedef struct five five_t;
typedef struct {
  five_t *t;
  int i;
} five_slot_t;
struct five {
  er_future_t *f[5];
  cblog_t log;
  cbarg_t args[5];
  five_slot_t slots[5];
};

static void set_index(void *arg) {
  five_slot_t *s = arg;
  er_future_set_int(s->t->f[s->i], s->i);
}

static void make_five(er_loop_t *loop, five_t *t) {
  memset(t, 0, sizeof *t);
  for (int i = 0; i < 5; i++) {
    t->f[i] = er_future_new(loop);
    t->args[i] = (cbarg_t){&t->log, i};
    t->slots[i] = (five_slot_t){t, i};
    er_future_add_callback(t->f[i], log_cb, &t->args[i]);
    er_loop_call_later(loop, (uint64_t)(i * 10), set_index, &t->slots[i]);
  }
}

static void free_five(five_t *t) {
  for (int i = 0; i < 5; i++) er_future_unref(t->f[i]);
}

/* testFuture_WaitAny: an empty set gives ER_ENOENT; otherwise the futures come
 * back as they finish, and every callback has run in that order. */
static void test_wait_any(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  size_t idx = 77;
  assert_int_equal(er_future_wait_any(NULL, 0, &idx), ER_ENOENT);
  assert_int_equal(idx, 77);

  five_t t;
  make_five(loop, &t);
  /* Wait on them in reverse order of finishing, removing each as it comes. */
  er_future_t *todo[5] = {t.f[4], t.f[3], t.f[2], t.f[1], t.f[0]};
  size_t n = 5;
  int order = 0;
  while (n) {
    assert_int_equal(er_future_wait_any(todo, n, &idx), 0);
    assert_true(idx < n);
    assert_true(er_future_done(todo[idx]));
    assert_ptr_equal(todo[idx], t.f[order]); /* the earliest one left */
    assert_int_equal(er_future_int(todo[idx]), order);
    assert_int_equal(fc.now_ns, (uint64_t)order * 10 * MS_NS);
    order++;
    todo[idx] = todo[--n];
  }
  er_loop_run(loop);
  assert_int_equal(t.log.n, 5);
  for (int i = 0; i < 5; i++) assert_ptr_equal(t.log.seen[i], t.f[i]);
  free_five(&t);
  er_loop_free(loop);
}

static void test_wait_any_first_done_index(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *p = er_future_new(loop);
  er_future_t *d1 = er_future_new_int(loop, 1);
  er_future_t *d2 = er_future_new_int(loop, 2);
  er_future_t *fs[] = {p, d2, d1};
  size_t idx = 99;
  assert_int_equal(er_future_wait_any(fs, 3, &idx), 0);
  assert_int_equal(idx, 1); /* the first done in argument order, without running */
  assert_int_equal(er_future_wait_any(fs, 3, NULL), 0);
  er_future_set_none(p);
  er_future_unref(p);
  er_future_unref(d1);
  er_future_unref(d2);
  er_loop_free(loop);
}

static void test_wait_any_deadlock(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  er_future_t *a = er_future_new(loop);
  er_future_t *b = er_future_new(loop);
  er_future_t *fs[] = {a, b};
  size_t idx;
  assert_int_equal(er_future_wait_any(fs, 2, &idx), ER_EDEADLK);
  /* Freed while still pending: under valgrind nothing of the wait is left. */
  er_future_unref(a);
  er_future_unref(b);
  er_loop_free(loop);
}

/* testFuture_WaitAll. */
static void test_wait_all(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  five_t t;
  make_five(loop, &t);
  er_future_t *fs[5] = {t.f[2], t.f[0], t.f[4], t.f[1], t.f[3]};
  assert_int_equal(er_future_wait_all(fs, 5), 0);
  for (int i = 0; i < 5; i++) assert_true(er_future_done(t.f[i]));
  assert_int_equal(fc.now_ns, 40 * MS_NS);
  er_loop_run(loop);
  assert_int_equal(t.log.n, 5);
  for (int i = 0; i < 5; i++) assert_ptr_equal(t.log.seen[i], t.f[i]);
  assert_int_equal(er_future_wait_all(NULL, 0), 0);
  free_five(&t);

  er_future_t *never = er_future_new(loop);
  er_future_t *done = er_future_new_int(loop, 1);
  er_future_t *gs[] = {done, never};
  assert_int_equal(er_future_wait_all(gs, 2), ER_EDEADLK);
  er_future_unref(never);
  er_future_unref(done);
  er_loop_free(loop);
}

/* A timeout that lost the race: wait_any on an operation and a sleep future,
 * the operation wins, and the loop is freed with the sleep still pending.
 * Nothing may leak (valgrind and LeakSanitizer check). */
static void test_free_loop_with_pending_sleep_future(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  er_future_t *op = er_future_new(loop);
  er_future_t *timeout = er_sleep_future(loop, 5000);
  er_loop_call_later(loop, 10, set_int_cb, op);
  er_future_t *fs[] = {op, timeout};
  size_t idx = 9;
  assert_int_equal(er_future_wait_any(fs, 2, &idx), 0);
  assert_int_equal(idx, 0);
  assert_false(er_future_done(timeout));
  er_future_unref(op);
  er_future_unref(timeout);
  er_loop_free(loop);
}

/* ---- set_from ------------------------------------------------------------------------ */

static void test_set_from(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  /* Source pending: the destination follows it when it completes. */
  er_future_t *src = er_future_new(loop);
  er_future_t *dst = er_future_new(loop);
  assert_int_equal(er_future_set_from(dst, src), 0);
  assert_false(er_future_done(dst));
  er_future_set_int(src, 7);
  assert_true(er_future_done(dst)); /* at once, not a loop step later */
  assert_int_equal(er_future_int(dst), 7);
  assert_int_equal(er_future_kind(dst), ER_VALUE_INT);
  er_future_unref(src);
  er_future_unref(dst);

  /* Source already done. */
  src = er_future_new_int(loop, 8);
  dst = er_future_new(loop);
  assert_int_equal(er_future_set_from(dst, src), 0);
  assert_true(er_future_done(dst));
  assert_int_equal(er_future_int(dst), 8);
  /* Destination already done. */
  assert_int_equal(er_future_set_from(dst, src), ER_EALREADY);
  er_future_unref(src);
  er_future_unref(dst);

  /* An error is forwarded with its code and message. */
  src = er_future_new(loop);
  dst = er_future_new(loop);
  er_future_set_from(dst, src);
  er_future_set_error(src, ER_ECANCELED, "stop %d", 1);
  assert_int_equal(er_future_status(dst), ER_ECANCELED);
  assert_string_equal(er_error_message(er_future_error(dst)), "stop 1");
  er_future_unref(src);
  er_future_unref(dst);
  er_loop_free(loop);
}

static void test_set_from_shares_value(void **state) {
  (void)state;
  /* The value is shared, not copied: one destructor run, when both are gone,
   * through a chain of forwards. */
  er_loop_t *loop = new_loop();
  g_dtor_calls = 0;
  er_future_t *a = er_future_new(loop);
  er_future_t *b = er_future_new(loop);
  er_future_t *c = er_future_new(loop);
  er_future_set_from(b, a);
  er_future_set_from(c, b);
  char *p = malloc(8);
  strcpy(p, "shared");
  er_future_set_ptr(a, p, count_dtor);
  assert_ptr_equal(er_future_ptr(c), p);
  assert_ptr_equal(er_future_ptr(b), p);
  assert_int_equal(er_future_kind(c), ER_VALUE_PTR);
  er_future_unref(a);
  er_future_unref(b);
  assert_int_equal(g_dtor_calls, 0);
  assert_string_equal(er_future_ptr(c), "shared");
  er_future_unref(c);
  assert_int_equal(g_dtor_calls, 1);

  json_t *v = json_string("j");
  a = er_future_new(loop);
  b = er_future_new(loop);
  er_future_set_from(b, a);
  er_future_set_json(a, v);
  assert_ptr_equal(er_future_json(b), v);
  assert_int_equal(v->refcount, 2);
  er_future_unref(a);
  er_future_unref(b);
  assert_int_equal(v->refcount, 1);
  json_decref(v);
  er_loop_free(loop);
}

/* ---- external futures -------------------------------------------------------------------- */

static void test_external_future_released(void **state) {
  (void)state;
  /* An external future keeps the loop referenced only while pending: once it
   * is done, or dropped, the loop can run dry again (run1 returns false
   * instead of blocking). */
  er_loop_t *loop = new_loop();
  er_future_t *f = er_future_new_external(loop);
  assert_non_null(f);
  er_future_set_int(f, 3);
  assert_false(er_loop_run1(loop));
  assert_int_equal(er_future_int(f), 3);
  er_future_unref(f);

  er_future_t *g = er_future_new_external(loop);
  er_future_unref(g); /* dropped while pending */
  assert_false(er_loop_run1(loop));
  er_loop_free(loop);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pending_then_done),
      cmocka_unit_test(test_new_int_new_error_set_none),
      cmocka_unit_test(test_ptr_destructor_runs_once_at_last_ref),
      cmocka_unit_test(test_json_refcounts),
      cmocka_unit_test(test_double_set_is_ealready_and_releases),
      cmocka_unit_test(test_not_a_future),
      cmocka_unit_test(test_error_code_and_message),
      cmocka_unit_test(test_error_format_truncates),
      cmocka_unit_test(test_callback_then_set),
      cmocka_unit_test(test_set_then_callback),
      cmocka_unit_test(test_callback_then_error),
      cmocka_unit_test(test_immediate_callbacks_run_inline),
      cmocka_unit_test(test_callback_order),
      cmocka_unit_test(test_immediate_callback_drops_last_ref),
      cmocka_unit_test(test_wait_runs_the_loop),
      cmocka_unit_test(test_deadlock),
      cmocka_unit_test(test_wait_any),
      cmocka_unit_test(test_wait_any_first_done_index),
      cmocka_unit_test(test_wait_any_deadlock),
      cmocka_unit_test(test_wait_all),
      cmocka_unit_test(test_free_loop_with_pending_sleep_future),
      cmocka_unit_test(test_set_from),
      cmocka_unit_test(test_set_from_shares_value),
      cmocka_unit_test(test_external_future_released),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
