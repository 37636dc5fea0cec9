/* The combinators, after ndb's tasklets_test.py: QueueFuture,
 * SerialQueueFuture and ReducingFuture (MultiFuture and wait_all are in
 * test_multi_future.c). ndb's exception classes map to codes:
 * ZeroDivisionError -> ER_EFAIL, KeyError -> ER_ENOENT, EOFError -> ER_EEOF. */
#include <stdio.h>

#include "test_util.h"

#define EDIV ER_EFAIL
#define EKEY ER_ENOENT

static er_loop_t *g_loop;

/* The value of a getq() future, after waiting for it. */
static int64_t take_int(er_future_t *f) {
  assert_non_null(f);
  assert_int_equal(er_future_get_result(f), 0);
  int64_t v = er_future_int(f);
  er_future_unref(f);
  return v;
}

/* The error code of a getq() future, after waiting for it. */
static int take_err(er_future_t *f) {
  assert_non_null(f);
  int rc = er_future_get_result(f);
  assert_true(rc < 0);
  er_future_unref(f);
  return rc;
}

static er_future_t *new_err(int code) { return er_future_new_error(g_loop, code, "err %d", code); }

/* ---- QueueFuture -------------------------------------------------------------------- */

static er_future_t *g_q;

static int produce_one(void *arg) {
  intptr_t i = (intptr_t)arg;
  er_sleep((uint64_t)(i * 10));
  return er_return_int(i);
}

static int producer(void *arg) {
  (void)arg;
  er_queue_future_putq_int(g_q, 0);
  for (intptr_t i = 9; i >= 1; i--) { /* added in reverse: they finish in order */
    er_future_t *f = er_spawn(g_loop, produce_one, (void *)i);
    er_queue_future_add_dependent(g_q, f);
    er_future_unref(f);
  }
  return er_queue_future_complete(g_q);
}

typedef struct {
  int64_t got[10];
  int n;
  int end_rc;
} consumed_t;

static int consumer(void *arg) {
  consumed_t *c = arg;
  for (int i = 0; i < 10; i++) {
    er_future_t *g = er_queue_future_getq(g_q);
    int rc = er_await(g);
    c->got[c->n++] = er_future_int(g);
    er_future_unref(g);
    if (rc < 0) return rc;
  }
  int rc = er_await(g_q);
  if (rc < 0) return rc;
  er_future_t *g = er_queue_future_getq(g_q);
  c->end_rc = er_await(g);
  er_future_unref(g);
  return 0;
}

static int producer_and_consumer(void *arg) {
  er_future_t *p = er_spawn(g_loop, producer, NULL);
  er_future_t *c = er_spawn(g_loop, consumer, arg);
  int rc = ER_AWAIT_ALL(p, c);
  er_future_unref(p);
  er_future_unref(c);
  return rc;
}

/* testQueueFuture: values in completion order, then EOF. */
static void test_queue_future(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  g_q = er_queue_future_new(g_loop);
  consumed_t c = {.n = 0};
  er_future_t *f = er_spawn(g_loop, producer_and_consumer, &c);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(c.n, 10);
  for (int i = 0; i < 10; i++) assert_int_equal(c.got[i], i);
  assert_int_equal(c.end_rc, ER_EEOF);
  assert_int_equal(fc.now_ns, 90 * MS_NS);
  er_future_unref(f);
  er_future_unref(g_q);
  er_loop_free(g_loop);
}

/* testQueueFuture_Complete. */
static void test_queue_future_complete(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *qf = er_queue_future_new(g_loop);
  er_queue_future_putq_int(qf, 1);
  er_future_t *f2 = er_future_new(g_loop);
  er_queue_future_add_dependent(qf, f2);
  er_loop_run(g_loop);
  er_future_t *g1 = er_queue_future_getq(qf);
  er_future_t *g2 = er_queue_future_getq(qf);
  er_future_t *g3 = er_queue_future_getq(qf);
  assert_true(er_future_done(g1));
  assert_false(er_future_done(g2));
  er_future_set_int(f2, 2);
  er_loop_run(g_loop);
  assert_false(er_future_done(qf)); /* not before complete() */
  assert_int_equal(er_queue_future_complete(qf), 0);
  er_loop_run(g_loop);
  assert_true(er_future_done(qf));
  assert_int_equal(er_future_status(qf), 0);
  assert_int_equal(take_int(g1), 1);
  assert_int_equal(take_int(g2), 2);
  assert_int_equal(take_err(g3), ER_EEOF);
  assert_int_equal(take_err(er_queue_future_getq(qf)), ER_EEOF);
  assert_int_equal(take_err(er_queue_future_getq(qf)), ER_EEOF); /* and again */
  assert_int_equal(er_queue_future_putq_int(qf, 3), ER_ESTATE);
  er_future_unref(f2);
  er_future_unref(qf);
  er_loop_free(g_loop);
}

/* testQueueFuture_SetException: the queue's own error comes after everything
 * that finished has been taken. (ndb adds f1 twice and its set swallows the
 * duplicate; the C queue does not promise that, so f1 goes in once.) */
static void test_queue_future_set_error(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *qf = er_queue_future_new(g_loop);
  er_future_t *f1 = er_future_new_int(g_loop, 1);
  er_queue_future_add_dependent(qf, f1);
  er_loop_run(g_loop);
  er_queue_future_putq_int(qf, 2);
  er_loop_run(g_loop);
  er_future_t *f3 = new_err(EDIV);
  er_queue_future_add_dependent(qf, f3);
  er_loop_run(g_loop);
  er_future_t *f4 = er_future_new(g_loop);
  er_queue_future_add_dependent(qf, f4);
  er_loop_run(g_loop);
  assert_int_equal(er_queue_future_set_error(qf, EKEY, "key"), 0);
  er_future_set_int(f4, 4);
  er_loop_run(g_loop);
  assert_int_equal(er_future_get_result(qf), EKEY);
  assert_int_equal(take_int(er_queue_future_getq(qf)), 1);
  assert_int_equal(take_int(er_queue_future_getq(qf)), 2);
  assert_int_equal(take_err(er_queue_future_getq(qf)), EDIV);
  assert_int_equal(take_int(er_queue_future_getq(qf)), 4);
  assert_int_equal(take_err(er_queue_future_getq(qf)), EKEY);
  assert_int_equal(take_err(er_queue_future_getq(qf)), EKEY);
  assert_int_equal(er_queue_future_add_dependent(qf, f1), ER_ESTATE);
  er_future_unref(f1);
  er_future_unref(f3);
  er_future_unref(f4);
  er_future_unref(qf);
  er_loop_free(g_loop);
}

/* testQueueFuture_SetExceptionAlternative: a waiting getq() gets the queue's
 * error. */
static void test_queue_future_set_error_wakes_waiter(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *qf = er_queue_future_new(g_loop);
  er_future_t *g1 = er_queue_future_getq(qf);
  assert_false(er_future_done(g1));
  er_queue_future_set_error(qf, EKEY, NULL);
  er_loop_run(g_loop);
  assert_int_equal(take_err(g1), EKEY);
  er_future_unref(qf);
  er_loop_free(g_loop);
}

/* testQueueFuture_ItemException: completion order f1, f3, f4, f2, f5. */
static void test_queue_future_item_error(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *qf = er_queue_future_new(g_loop);
  er_queue_future_putq_int(qf, 1);
  er_future_t *f2 = er_future_new(g_loop);
  er_queue_future_add_dependent(qf, f2);
  er_future_t *f3 = er_future_new_int(g_loop, 3);
  er_loop_run(g_loop);
  er_queue_future_add_dependent(qf, f3);
  er_loop_run(g_loop);
  er_future_t *f4 = new_err(EDIV);
  er_loop_run(g_loop);
  er_queue_future_add_dependent(qf, f4);
  er_future_t *f5 = er_future_new(g_loop);
  er_queue_future_add_dependent(qf, f5);
  er_loop_run(g_loop);
  er_queue_future_complete(qf);
  er_loop_run(g_loop);
  assert_false(er_future_done(qf)); /* f2 and f5 still pending */
  er_future_set_int(f2, 2);
  er_loop_run(g_loop);
  er_future_set_error(f5, EKEY, NULL);
  er_loop_run(g_loop);
  assert_true(er_future_done(qf));
  assert_int_equal(er_future_status(qf), 0); /* the items' errors are not the queue's */
  assert_int_equal(take_int(er_queue_future_getq(qf)), 1);
  assert_int_equal(take_int(er_queue_future_getq(qf)), 3);
  assert_int_equal(take_err(er_queue_future_getq(qf)), EDIV);
  assert_int_equal(take_int(er_queue_future_getq(qf)), 2);
  assert_int_equal(take_err(er_queue_future_getq(qf)), EKEY);
  assert_int_equal(take_err(er_queue_future_getq(qf)), ER_EEOF);
  assert_int_equal(take_err(er_queue_future_getq(qf)), ER_EEOF);
  er_future_unref(f2);
  er_future_unref(f3);
  er_future_unref(f4);
  er_future_unref(f5);
  er_future_unref(qf);
  er_loop_free(g_loop);
}

static void test_queue_future_not_a_queue(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  assert_null(er_queue_future_getq(mf));
  assert_int_equal(er_queue_future_complete(mf), ER_ENOTFUTURE);
  assert_int_equal(er_queue_future_putq_int(mf, 1), ER_ENOTFUTURE);
  assert_null(er_serial_queue_future_getq(mf));
  assert_int_equal(er_serial_queue_future_complete(mf), ER_ENOTFUTURE);
  assert_int_equal(er_reducing_future_complete(mf), ER_ENOTFUTURE);
  assert_int_equal(er_multi_future_complete(mf), 0);
  er_future_unref(mf);
  er_loop_free(g_loop);
}

/* ---- SerialQueueFuture ----------------------------------------------------------------- */

static int serial_producer(void *arg) {
  (void)arg;
  for (intptr_t i = 0; i < 10; i++) {
    /* ndb sleeps a random 0-90 ms; a fixed scramble keeps the test exact. */
    er_future_t *f = er_spawn(g_loop, produce_one, (void *)(intptr_t)((i * 7) % 10));
    er_serial_queue_future_add_dependent(g_q, f);
    er_future_unref(f);
  }
  return er_serial_queue_future_complete(g_q);
}

static int serial_consumer(void *arg) {
  consumed_t *c = arg;
  for (int i = 0; i < 10; i++) {
    er_future_t *g = er_serial_queue_future_getq(g_q);
    int rc = er_await(g);
    c->got[c->n++] = er_future_int(g);
    er_future_unref(g);
    if (rc < 0) return rc;
  }
  int rc = er_await(g_q);
  if (rc < 0) return rc;
  er_future_t *g = er_serial_queue_future_getq(g_q);
  c->end_rc = er_await(g);
  er_future_unref(g);
  return er_await(g_q);
}

static int serial_both(void *arg) {
  /* The consumer first, so that its getq() calls run ahead of the producer. */
  er_future_t *c = er_spawn(g_loop, serial_consumer, arg);
  er_future_t *p = er_spawn(g_loop, serial_producer, NULL);
  int rc = ER_AWAIT_ALL(p, c);
  er_future_unref(p);
  er_future_unref(c);
  return rc;
}

/* testSerialQueueFuture: insertion order, whatever the completion order. */
static void test_serial_queue_future(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  g_q = er_serial_queue_future_new(g_loop);
  consumed_t c = {.n = 0};
  er_future_t *f = er_spawn(g_loop, serial_both, &c);
  assert_int_equal(er_future_get_result(f), 0);
  assert_int_equal(c.n, 10);
  for (int i = 0; i < 10; i++) assert_int_equal(c.got[i], (i * 7) % 10);
  assert_int_equal(c.end_rc, ER_EEOF);
  er_future_unref(f);
  er_future_unref(g_q);

  /* The same with the producer ahead: getq() hands out pending futures. */
  g_q = er_serial_queue_future_new(g_loop);
  er_future_t *pending = er_future_new(g_loop);
  er_serial_queue_future_add_dependent(g_q, pending);
  er_serial_queue_future_putq_int(g_q, 5);
  er_future_t *g1 = er_serial_queue_future_getq(g_q);
  assert_false(er_future_done(g1));
  er_future_t *g2 = er_serial_queue_future_getq(g_q);
  assert_true(er_future_done(g2));
  er_future_set_int(pending, 4);
  assert_int_equal(take_int(g1), 4);
  assert_int_equal(take_int(g2), 5);
  er_future_unref(pending);
  er_future_unref(g_q);
  er_loop_free(g_loop);
}

/* testSerialQueueFuture_Complete. */
static void test_serial_complete_fails_waiters(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *sq = er_serial_queue_future_new(g_loop);
  er_future_t *g1 = er_serial_queue_future_getq(sq);
  assert_false(er_future_done(sq));
  er_serial_queue_future_complete(sq);
  assert_true(er_future_done(sq)); /* done at once */
  assert_int_equal(take_err(g1), ER_EEOF);
  assert_int_equal(er_serial_queue_future_putq_int(sq, 1), ER_ESTATE);
  er_future_unref(sq);
  er_loop_free(g_loop);
}

/* testSerialQueueFuture_SetException and testSerialQueueFuture_GetQ. */
static void test_serial_set_error(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *sq = er_serial_queue_future_new(g_loop);
  er_future_t *g1 = er_serial_queue_future_getq(sq);
  er_serial_queue_future_set_error(sq, EKEY, "gone");
  assert_int_equal(take_err(g1), EKEY);
  er_future_unref(sq);

  sq = er_serial_queue_future_new(g_loop);
  er_serial_queue_future_set_error(sq, EKEY, NULL);
  assert_int_equal(take_err(er_serial_queue_future_getq(sq)), EKEY);
  er_future_unref(sq);
  er_loop_free(g_loop);
}

/* testSerialQueueFuture_ItemException. */
static void test_serial_item_error(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *sq = er_serial_queue_future_new(g_loop);
  er_future_t *g1 = er_serial_queue_future_getq(sq);
  er_future_t *f1 = er_future_new(g_loop);
  er_serial_queue_future_add_dependent(sq, f1);
  er_serial_queue_future_complete(sq);
  er_future_set_error(f1, EDIV, NULL);
  assert_int_equal(take_err(g1), EDIV);
  er_future_unref(f1);
  er_future_unref(sq);
  er_loop_free(g_loop);
}

/* testSerialQueueFuture_PutQ_1 .. _4: every order of putq, getq and
 * completion gives the value. */
static void test_serial_putq_orders(void **state) {
  (void)state;
  g_loop = new_loop();
  /* 1: put a pending future, complete, set it, then get. */
  er_future_t *sq = er_serial_queue_future_new(g_loop);
  er_future_t *f1 = er_future_new(g_loop);
  er_serial_queue_future_add_dependent(sq, f1);
  er_serial_queue_future_complete(sq);
  er_future_set_int(f1, 1);
  assert_int_equal(take_int(er_serial_queue_future_getq(sq)), 1);
  er_future_unref(f1);
  er_future_unref(sq);
  /* 2: put a value, complete, get. */
  sq = er_serial_queue_future_new(g_loop);
  er_serial_queue_future_putq_int(sq, 1);
  er_serial_queue_future_complete(sq);
  assert_int_equal(take_int(er_serial_queue_future_getq(sq)), 1);
  assert_int_equal(take_err(er_serial_queue_future_getq(sq)), ER_EEOF);
  er_future_unref(sq);
  /* 3: get, put a value, complete. */
  sq = er_serial_queue_future_new(g_loop);
  er_future_t *g1 = er_serial_queue_future_getq(sq);
  er_serial_queue_future_putq_int(sq, 1);
  er_serial_queue_future_complete(sq);
  assert_int_equal(take_int(g1), 1);
  er_future_unref(sq);
  /* 4: get, put a pending future, complete, set it. */
  sq = er_serial_queue_future_new(g_loop);
  g1 = er_serial_queue_future_getq(sq);
  f1 = er_future_new(g_loop);
  er_serial_queue_future_add_dependent(sq, f1);
  er_serial_queue_future_complete(sq);
  er_future_set_int(f1, 1);
  assert_int_equal(take_int(g1), 1);
  er_future_unref(f1);
  er_future_unref(sq);
  er_loop_free(g_loop);
}

/* ---- ReducingFuture ------------------------------------------------------------------------ */

typedef struct {
  int calls;
  size_t sizes[16];
  int fail_code;    /* fail with this when negative */
  bool later;       /* complete out from a timer */
  bool via_tasklet; /* complete out from a tasklet, with set_from */
  uint64_t later_ms;
} reducer_state_t;

typedef struct {
  er_future_t *out;
  int64_t value;
} pending_out_t;

static void complete_out(void *arg) {
  pending_out_t *p = arg;
  er_future_set_int(p->out, p->value);
  er_future_unref(p->out);
  free(p);
}

static int sum_later(void *arg) {
  pending_out_t *p = arg;
  er_sleep(5);
  int64_t v = p->value;
  free(p);
  return er_return_int(v);
}

static int sum_reducer(void *ud, er_future_t *const *values, size_t n, er_future_t *out) {
  reducer_state_t *rs = ud;
  if (rs->calls < 16) rs->sizes[rs->calls] = n;
  rs->calls++;
  if (rs->fail_code < 0) return er_fail(rs->fail_code, "reducer says no");
  int64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    assert_true(er_future_done(values[i]));
    sum += er_future_int(values[i]);
  }
  if (rs->later) {
    pending_out_t *p = malloc(sizeof *p);
    *p = (pending_out_t){er_future_ref(out), sum};
    er_loop_call_later(er_future_loop(out), rs->later_ms, complete_out, p);
    return 0;
  }
  if (rs->via_tasklet) {
    pending_out_t *p = malloc(sizeof *p);
    *p = (pending_out_t){NULL, sum};
    er_future_t *t = er_spawn(er_future_loop(out), sum_later, p);
    int rc = er_future_set_from(out, t);
    er_future_unref(t);
    return rc;
  }
  return er_future_set_int(out, sum);
}

/* testReducingFuture: batches of 10, values done and pending. */
static void test_reducing_future(void **state) {
  (void)state;
  g_loop = new_loop();
  reducer_state_t rs = {0};
  er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 10);
  for (int i = 0; i < 10; i++) assert_int_equal(er_reducing_future_putq_int(rf, i), 0);
  /* As ndb, dependents reach it from the loop (add_callback), even done
   * ones; a full batch is then reduced as it fills. */
  assert_int_equal(rs.calls, 0);
  er_loop_run(g_loop);
  assert_int_equal(rs.calls, 1);
  for (int i = 10; i < 20; i++) {
    er_future_t *f = er_future_new(g_loop);
    er_reducing_future_add_dependent(rf, f);
    er_future_set_int(f, i);
    er_future_unref(f);
  }
  assert_int_equal(er_reducing_future_complete(rf), 0);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 190);
  for (int i = 0; i < rs.calls; i++) assert_true(rs.sizes[i] >= 2 && rs.sizes[i] <= 10);
  assert_int_equal(er_reducing_future_putq_int(rf, 1), ER_ESTATE);
  er_future_unref(rf);
  er_loop_free(g_loop);
}

/* testReducingFuture_Empty and _OneItem: the reducer is never called. */
static void test_reducing_future_empty_and_one(void **state) {
  (void)state;
  g_loop = new_loop();
  reducer_state_t rs = {0};
  er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 0);
  er_reducing_future_complete(rf);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_kind(rf), ER_VALUE_NONE);
  er_future_unref(rf);

  rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 0);
  er_reducing_future_putq_int(rf, 1);
  er_reducing_future_complete(rf);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 1);
  er_future_unref(rf);

  /* One pending value, completed after complete(). */
  rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 0);
  er_future_t *f = er_future_new(g_loop);
  er_reducing_future_add_dependent(rf, f);
  er_reducing_future_complete(rf);
  assert_false(er_future_done(rf));
  er_future_set_int(f, 33);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 33);
  er_future_unref(f);
  er_future_unref(rf);
  assert_int_equal(rs.calls, 0);
  assert_null(er_reducing_future_new(g_loop, NULL, NULL, 0));
  er_loop_free(g_loop);
}

static void test_reducing_future_default_batch(void **state) {
  (void)state;
  /* batch_size 0 means 20: 25 values take one reduction of 20 as they come
   * and one of the six left at the end. */
  g_loop = new_loop();
  reducer_state_t rs = {0};
  er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 0);
  for (int i = 1; i <= 25; i++) er_reducing_future_putq_int(rf, i);
  er_reducing_future_complete(rf);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 325);
  assert_int_equal(rs.calls, 2);
  assert_int_equal(rs.sizes[0], 20);
  assert_int_equal(rs.sizes[1], 6);
  er_future_unref(rf);
  er_loop_free(g_loop);
}

/* testReducingFuture_ItemException. */
static void test_reducing_future_item_error(void **state) {
  (void)state;
  g_loop = new_loop();
  reducer_state_t rs = {0};
  er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 0);
  er_future_t *f1 = new_err(EDIV);
  er_reducing_future_add_dependent(rf, f1);
  er_reducing_future_complete(rf);
  assert_int_equal(er_future_get_result(rf), EDIV);
  er_future_unref(f1);
  er_future_unref(rf);
  assert_int_equal(rs.calls, 0);

  /* set_error fails it at once. */
  rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 0);
  er_reducing_future_putq_int(rf, 1);
  assert_int_equal(er_reducing_future_set_error(rf, EKEY, "k"), 0);
  assert_int_equal(er_future_get_result(rf), EKEY);
  assert_int_equal(er_reducing_future_putq_int(rf, 2), ER_ESTATE);
  er_future_unref(rf);
  er_loop_free(g_loop);
}

/* testReducingFuture_ReducerException_1 and _2. */
static void test_reducing_future_reducer_error(void **state) {
  (void)state;
  g_loop = new_loop();
  for (int variant = 0; variant < 2; variant++) {
    reducer_state_t rs = {.fail_code = EDIV};
    er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, variant ? 2 : 0);
    er_reducing_future_putq_int(rf, 1);
    er_reducing_future_putq_int(rf, 1);
    if (variant) er_reducing_future_putq_int(rf, 1);
    er_reducing_future_complete(rf);
    assert_int_equal(er_future_get_result(rf), EDIV);
    assert_string_equal(er_error_message(er_future_error(rf)), "reducer says no");
    assert_int_equal(rs.calls, 1);
    er_future_unref(rf);
  }
  er_loop_free(g_loop);
}

/* testReducingFuture_ReducerFuture_1 and _2: the reducer completes its output
 * later, from a timer or through a tasklet. */
static void test_reducing_future_reducer_completes_later(void **state) {
  (void)state;
  fake_clock_t fc;
  g_loop = new_fake_loop(&fc);
  reducer_state_t rs = {.later = true, .later_ms = 30};
  er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 2);
  er_reducing_future_putq_int(rf, 1);
  er_reducing_future_putq_int(rf, 1);
  er_reducing_future_complete(rf);
  assert_false(er_future_done(rf));
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 2);
  assert_int_equal(rs.calls, 1);
  assert_int_equal(fc.now_ns, 30 * MS_NS);
  er_future_unref(rf);

  reducer_state_t rt = {.via_tasklet = true};
  rf = er_reducing_future_new(g_loop, sum_reducer, &rt, 3);
  for (int i = 0; i < 4; i++) er_reducing_future_putq_int(rf, 1);
  er_reducing_future_complete(rf);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 4);
  assert_int_equal(rt.calls, 2); /* [1,1,1] as it filled, then [3,1] at the end */
  er_future_unref(rf);
  er_loop_free(g_loop);
}

/* ---- ndb's exact semantics ---------------------------------------------------- */

/* ndb's QueueFuture keeps its dependents in a set: one added twice, pending
 * or done, is handed out once. */
static void test_queue_future_dependent_once(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *q = er_queue_future_new(g_loop);
  er_future_t *pending = er_future_new(g_loop), *done = er_future_new_int(g_loop, 2);
  assert_int_equal(er_queue_future_add_dependent(q, pending), 0);
  assert_int_equal(er_queue_future_add_dependent(q, pending), 0);
  assert_int_equal(er_queue_future_add_dependent(q, done), 0);
  assert_int_equal(er_queue_future_add_dependent(q, done), 0);
  /* Done now, its outcome not yet arrived: still the same dependent. */
  er_future_t *late = er_future_new(g_loop);
  assert_int_equal(er_queue_future_add_dependent(q, late), 0);
  er_future_set_int(late, 3);
  assert_int_equal(er_queue_future_add_dependent(q, late), 0);
  assert_int_equal(er_queue_future_complete(q), 0);
  er_future_set_int(pending, 1);
  assert_int_equal(take_int(er_queue_future_getq(q)), 2); /* done first */
  assert_int_equal(take_int(er_queue_future_getq(q)), 3);
  assert_int_equal(take_int(er_queue_future_getq(q)), 1);
  assert_int_equal(take_err(er_queue_future_getq(q)), ER_EEOF);
  er_future_unref(late);
  assert_int_equal(er_future_get_result(q), 0);
  er_future_unref(pending);
  er_future_unref(done);
  er_future_unref(q);
  er_loop_free(g_loop);
}

static int unit_reducer(void *ud, er_future_t *const *values, size_t n, er_future_t *out) {
  (void)ud, (void)values, (void)n;
  return er_future_set_none(out);
}

/* A ReducingFuture, too, reduces a dependent added twice once. */
static void test_reducing_future_dependent_once(void **state) {
  (void)state;
  g_loop = new_loop();
  reducer_state_t rs = {0};
  er_future_t *rf = er_reducing_future_new(g_loop, sum_reducer, &rs, 2);
  er_future_t *a = er_future_new_int(g_loop, 5), *b = er_future_new(g_loop);
  er_reducing_future_add_dependent(rf, a);
  er_reducing_future_add_dependent(rf, a);
  er_reducing_future_add_dependent(rf, b);
  er_reducing_future_add_dependent(rf, b);
  er_reducing_future_putq_int(rf, 7);
  er_reducing_future_complete(rf);
  er_future_set_int(b, 30);
  assert_int_equal(er_future_get_result(rf), 0);
  assert_int_equal(er_future_int(rf), 42);
  er_future_unref(a);
  er_future_unref(b);
  er_future_unref(rf);
  er_loop_free(g_loop);
}

/* ndb raises when complete() is called twice, on every combinator. */
static void test_complete_twice(void **state) {
  (void)state;
  g_loop = new_loop();
  er_future_t *fs[] = {er_multi_future_new(g_loop), er_queue_future_new(g_loop),
                       er_serial_queue_future_new(g_loop),
                       er_reducing_future_new(g_loop, unit_reducer, NULL, 0)};
  int (*complete[])(er_future_t *) = {er_multi_future_complete, er_queue_future_complete,
                                      er_serial_queue_future_complete,
                                      er_reducing_future_complete};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(complete[i](fs[i]), 0);
    assert_int_equal(complete[i](fs[i]), ER_EALREADY);
    assert_int_equal(er_future_get_result(fs[i]), 0);
    assert_int_equal(complete[i](fs[i]), ER_EALREADY);
    er_future_unref(fs[i]);
  }
  er_loop_free(g_loop);
}

/* ---- ownership: nothing leaks when a chain is abandoned --------------------------- */

static int sleeps_forever(void *arg) {
  (void)arg;
  return er_sleep(1000u * 3600u * 24u);
}

/* A MultiFuture and a QueueFuture whose dependents never finish, dropped:
 * every block comes back at once, not at er_loop_free (a reference each way
 * between combinator and dependent was a cycle). */
static void test_dropped_combinators_leak_nothing(void **state) {
  (void)state;
  count_live_blocks(true);
  g_loop = new_loop();
  er_future_t *warm = er_future_new_int(g_loop, 0); /* the loop's own call queue */
  er_future_add_callback(warm, note_cb, &(int){0});
  er_loop_run(g_loop);
  er_future_unref(warm);
  long base = g_live_blocks;

  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *never = er_future_new(g_loop);
  er_multi_future_add_dependent(mf, never);
  er_multi_future_add_dependent(mf, never);
  er_multi_future_putq_int(mf, 1);
  er_multi_future_complete(mf);
  er_future_unref(never);
  er_future_unref(mf);
  assert_int_equal(er_loop_run0(g_loop), 0); /* the done dependent's signal */
  assert_int_equal(g_live_blocks, base);

  er_future_t *q = er_queue_future_new(g_loop);
  never = er_future_new(g_loop);
  er_queue_future_add_dependent(q, never);
  er_queue_future_putq_int(q, 5);
  er_future_t *w1 = er_queue_future_getq(q);
  er_loop_run(g_loop);
  er_future_t *w2 = er_queue_future_getq(q); /* waits for `never` */
  assert_int_equal(take_int(w1), 5);
  er_future_unref(never);
  er_future_unref(q); /* w2 still holds it */
  assert_false(er_future_done(w2));
  er_future_unref(w2);
  assert_int_equal(g_live_blocks, base);

  /* A reducer's pending output and a chain of set_from. */
  er_future_t *rf = er_reducing_future_new(g_loop, unit_reducer, NULL, 0);
  never = er_future_new(g_loop);
  er_reducing_future_add_dependent(rf, never);
  er_future_t *dst = er_future_new(g_loop);
  assert_int_equal(er_future_set_from(dst, rf), 0);
  assert_int_equal(er_future_set_from(dst, never), ER_EALREADY); /* one source */
  er_future_unref(never);
  er_future_unref(rf);
  er_future_unref(dst);
  assert_int_equal(g_live_blocks, base);

  er_loop_free(g_loop);
  assert_int_equal(g_live_blocks, 0);
  count_live_blocks(false);
}

/* What is left when the loop is freed goes with it: a combinator held only by
 * a dependent's queued signal, a getq() future waiting on a tasklet that never
 * ends, the callbacks queued on the loop. */
static void test_loop_free_reclaims_combinators(void **state) {
  (void)state;
  count_live_blocks(true);
  g_loop = new_loop();
  er_future_t *mf = er_multi_future_new(g_loop);
  er_future_t *d = er_future_new_int(g_loop, 1);
  er_multi_future_add_dependent(mf, d);
  er_multi_future_complete(mf);
  er_future_unref(d);
  er_future_t *sq = er_serial_queue_future_new(g_loop);
  er_future_t *w = er_serial_queue_future_getq(sq);
  er_future_t *t = er_spawn(g_loop, sleeps_forever, NULL);
  er_serial_queue_future_add_dependent(sq, t);
  er_future_t *q = er_queue_future_new(g_loop);
  er_queue_future_add_dependent(q, t);
  er_future_t *qw = er_queue_future_getq(q);
  int seen = 0;
  er_future_add_callback(d, note_cb, &seen); /* queued on the loop */
  er_future_unref(mf);
  er_future_unref(sq);
  er_future_unref(w);
  er_future_unref(q);
  er_future_unref(t);
  er_loop_free(g_loop); /* qw is the caller's: its hold on q goes with it */
  er_future_unref(qw);
  assert_int_equal(seen, 0);
  assert_int_equal(g_live_blocks, 0);
  count_live_blocks(false);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_future),
      cmocka_unit_test(test_queue_future_complete),
      cmocka_unit_test(test_queue_future_set_error),
      cmocka_unit_test(test_queue_future_set_error_wakes_waiter),
      cmocka_unit_test(test_queue_future_item_error),
      cmocka_unit_test(test_queue_future_not_a_queue),
      cmocka_unit_test(test_serial_queue_future),
      cmocka_unit_test(test_serial_complete_fails_waiters),
      cmocka_unit_test(test_serial_set_error),
      cmocka_unit_test(test_serial_item_error),
      cmocka_unit_test(test_serial_putq_orders),
      cmocka_unit_test(test_reducing_future),
      cmocka_unit_test(test_reducing_future_empty_and_one),
      cmocka_unit_test(test_reducing_future_default_batch),
      cmocka_unit_test(test_reducing_future_item_error),
      cmocka_unit_test(test_reducing_future_reducer_error),
      cmocka_unit_test(test_reducing_future_reducer_completes_later),
      cmocka_unit_test(test_queue_future_dependent_once),
      cmocka_unit_test(test_reducing_future_dependent_once),
      cmocka_unit_test(test_complete_twice),
      cmocka_unit_test(test_dropped_combinators_leak_nothing),
      cmocka_unit_test(test_loop_free_reclaims_combinators),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
