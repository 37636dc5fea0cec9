/* The event loop, after ndb's eventloop_test.py: ready calls in FIFO order,
 * timers on a clock the test controls, idlers and their REMOVE / INACTIVE /
 * ACTIVE answers, the return values of run0/run1, and stopping. */
#include <pthread.h>
#include <uv.h>

#include "test_util.h"

/* A log of small integers that calls append to. */
typedef struct {
  int v[4096];
  int n;
} log_t;

typedef struct {
  log_t *log;
  int value;
} entry_t;

static void append(void *arg) {
  entry_t *e = arg;
  e->log->v[e->log->n++] = e->value;
}

static void assert_log(const log_t *log, const int *want, int n) {
  assert_int_equal(log->n, n);
  for (int i = 0; i < n; i++)
    if (log->v[i] != want[i]) fail_msg("log[%d] = %d, want %d", i, log->v[i], want[i]);
}

/* ---- life ------------------------------------------------------------------ */

static void test_new_free_current(void **state) {
  (void)state;
  assert_null(er_loop_current());
  er_loop_t *a = new_loop();
  assert_ptr_equal(er_loop_current(), a); /* the thread's first loop */
  assert_non_null(er_loop_uv(a));
  er_loop_t *b = new_loop();
  assert_ptr_equal(er_loop_current(), a); /* a second one does not take over */
  er_loop_free(b);
  assert_ptr_equal(er_loop_current(), a);
  er_loop_free(a);
  assert_null(er_loop_current()); /* none left on this thread */
  er_loop_free(NULL);
}

static void record_current(void *arg) { *(er_loop_t **)arg = er_loop_current(); }

static void test_current_while_running(void **state) {
  (void)state;
  er_loop_t *a = new_loop();
  er_loop_t *b = new_loop();
  er_loop_t *seen = NULL;
  assert_int_equal(er_loop_call_soon(b, record_current, &seen), 0);
  er_loop_run(b);
  assert_ptr_equal(seen, b); /* the running loop is current while it runs */
  er_loop_free(b);
  er_loop_free(a);
}

static void test_runs_on_given_uv_loop(void **state) {
  (void)state;
  uv_loop_t uv;
  assert_int_equal(uv_loop_init(&uv), 0);
  er_loop_opts_t opts = {.uv = &uv};
  er_loop_t *loop;
  assert_int_equal(er_loop_new(&loop, &opts), 0);
  assert_ptr_equal(er_loop_uv(loop), &uv);
  log_t log = {.n = 0};
  entry_t e = {&log, 1};
  er_loop_call_soon(loop, append, &e);
  er_loop_run(loop);
  assert_int_equal(log.n, 1);
  er_loop_free(loop);
  /* Not closed by er_loop_free, and left with no handles of ours. */
  assert_int_equal(uv_loop_close(&uv), 0);
}

/* ---- ready calls ------------------------------------------------------------- */

static void test_call_soon_fifo(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  entry_t e[3] = {{&log, 2}, {&log, 1}, {&log, 3}};
  for (int i = 0; i < 3; i++) assert_int_equal(er_loop_call_soon(loop, append, &e[i]), 0);
  assert_int_equal(log.n, 0); /* nothing runs until the loop does */
  er_loop_run(loop);
  assert_log(&log, (int[]){2, 1, 3}, 3);
  er_loop_free(loop);
}

/* A call that queues more: they go after what was already queued. */
typedef struct {
  log_t *log;
  er_loop_t *loop;
  entry_t later[2];
} chain_t;

static void queue_more(void *arg) {
  chain_t *c = arg;
  c->log->v[c->log->n++] = 100;
  er_loop_call_soon(c->loop, append, &c->later[0]);
  er_loop_call_soon(c->loop, append, &c->later[1]);
}

static void test_call_soon_from_a_call(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  chain_t c = {&log, loop, {{&log, 4}, {&log, 5}}};
  entry_t e[2] = {{&log, 1}, {&log, 2}};
  er_loop_call_soon(loop, queue_more, &c);
  er_loop_call_soon(loop, append, &e[0]);
  er_loop_call_soon(loop, append, &e[1]);
  er_loop_run(loop);
  assert_log(&log, (int[]){100, 1, 2, 4, 5}, 5);
  er_loop_free(loop);
}

static void test_call_soon_ring_grows_while_wrapped(void **state) {
  (void)state;
  /* Fill part of the ring, drain some so its head moves, then add enough to
   * make it grow while its contents wrap around the end. */
  er_loop_t *loop = new_loop();
  static log_t log;
  static entry_t e[1500];
  log.n = 0;
  for (int i = 0; i < 1500; i++) e[i] = (entry_t){&log, i};
  int next = 0;
  for (; next < 200; next++) er_loop_call_soon(loop, append, &e[next]);
  for (int i = 0; i < 150; i++) assert_int_equal(er_loop_run0(loop), 0);
  for (; next < 1500; next++) assert_int_equal(er_loop_call_soon(loop, append, &e[next]), 0);
  er_loop_run(loop);
  assert_int_equal(log.n, 1500);
  for (int i = 0; i < 1500; i++) assert_int_equal(log.v[i], i);
  er_loop_free(loop);
}

/* ---- timers ------------------------------------------------------------------- */

/* eventloop_test's testQueueTasklet: calls due at 1 s, 3 s and 2 s run in the
 * order of their times, and the clock ends exactly at the last one. */
static void test_timers_run_in_time_order(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t f = {&log, 1}, h = {&log, 3}, g = {&log, 2};
  assert_non_null(er_loop_call_later(loop, 1000, append, &f));
  assert_non_null(er_loop_call_later(loop, 3000, append, &h));
  assert_non_null(er_loop_call_later(loop, 2000, append, &g));
  er_loop_run(loop);
  assert_log(&log, (int[]){1, 2, 3}, 3);
  assert_int_equal(fc.now_ns, 3000 * MS_NS);
  assert_int_equal(er_loop_now_ns(loop), 3000 * MS_NS);
  er_loop_free(loop);
}

/* testRun: the 0.1 s call runs before the 0.2 s one made before it. */
static void test_run_earlier_timer_first(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t a = {&log, 42}, b = {&log, 7};
  er_loop_call_later(loop, 200, append, &a);
  er_loop_call_later(loop, 100, append, &b);
  er_loop_run(loop);
  assert_log(&log, (int[]){7, 42}, 2);
  assert_int_equal(fc.now_ns, 200 * MS_NS);
  er_loop_free(loop);
}

/* testFifoOrderForEventsWithDelayNone: ready calls in the order made, then a
 * zero-delay timer, even though it was due at once. */
static void test_ready_calls_before_due_timer(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t e2 = {&log, 2}, e1 = {&log, 1}, e0 = {&log, 0};
  er_loop_call_soon(loop, append, &e2);
  er_loop_call_soon(loop, append, &e1);
  er_loop_call_later(loop, 0, append, &e0);
  er_loop_run(loop);
  assert_log(&log, (int[]){2, 1, 0}, 3);
  assert_int_equal(fc.now_ns, 0);
  assert_int_equal(fc.sleeps, 0);
  er_loop_free(loop);
}

static void test_equal_times_fifo(void **state) {
  (void)state;
  /* Many timers, ten distinct times, made in shuffled time order: they run by
   * time, and those due at the same time in the order they were made. */
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  enum { N = 1000 };
  static log_t log;
  static entry_t e[N];
  log.n = 0;
  for (int i = 0; i < N; i++) {
    e[i] = (entry_t){&log, i};
    uint64_t delay_ms = (uint64_t)((i * 7) % 10);
    assert_non_null(er_loop_call_later(loop, delay_ms, append, &e[i]));
  }
  er_loop_run(loop);
  assert_int_equal(log.n, N);
  for (int i = 1; i < N; i++) {
    int a = log.v[i - 1], b = log.v[i];
    int ta = (a * 7) % 10, tb = (b * 7) % 10;
    if (ta > tb || (ta == tb && a > b))
      fail_msg("timer %d (at %d ms) ran before timer %d (at %d ms)", a, ta, b, tb);
  }
  assert_int_equal(fc.now_ns, 9 * MS_NS);
  er_loop_free(loop);
}

static void test_call_later_ns(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t a = {&log, 1}, b = {&log, 2};
  er_loop_call_later_ns(loop, 1500, append, &a);
  er_loop_call_later_ns(loop, 1000, append, &b);
  er_loop_run(loop);
  assert_log(&log, (int[]){2, 1}, 2);
  assert_int_equal(fc.now_ns, 1500);
  er_loop_free(loop);
}

typedef struct {
  er_timer_t *victim;
  log_t *log;
} canceller_t;

static void cancel_other(void *arg) {
  canceller_t *c = arg;
  c->log->v[c->log->n++] = -1;
  assert_int_equal(er_timer_cancel(c->victim), 0);
}

static void test_timer_cancel(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t e[6];
  er_timer_t *t[6];
  for (int i = 0; i < 6; i++) {
    e[i] = (entry_t){&log, i};
    t[i] = er_loop_call_later(loop, (uint64_t)(10 * (i + 1)), append, &e[i]);
    assert_non_null(t[i]);
  }
  assert_int_equal(er_timer_cancel(t[0]), 0); /* the earliest: the heap's top */
  assert_int_equal(er_timer_cancel(t[3]), 0); /* one in the middle */
  assert_int_equal(er_timer_cancel(NULL), ER_EINVAL);
  /* A timer that cancels a later one when it fires. */
  canceller_t c = {t[5], &log};
  er_loop_call_later(loop, 25, cancel_other, &c);
  er_loop_run(loop);
  assert_log(&log, (int[]){1, -1, 2, 4}, 4); /* 20, 25, 30, 50 ms */
  assert_int_equal(fc.now_ns, 50 * MS_NS); /* the cancelled 60 ms timer kept nobody waiting */
  er_loop_free(loop);
}

static void test_timer_cancel_last_one_leaves_loop_empty(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t e = {&log, 1};
  er_timer_t *t = er_loop_call_later(loop, 1000, append, &e);
  assert_true(er_loop_run0(loop) > 0);
  er_timer_cancel(t);
  assert_int_equal(er_loop_run0(loop), -1);
  assert_false(er_loop_run1(loop));
  assert_int_equal(log.n, 0);
  assert_int_equal(fc.now_ns, 0);
  er_loop_free(loop);
}

static void test_real_clock_timer(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  entry_t e = {&log, 1};
  uint64_t t0 = er_now_mono_ns();
  er_loop_call_later(loop, 20, append, &e);
  er_loop_run(loop);
  uint64_t took = er_now_mono_ns() - t0;
  assert_int_equal(log.n, 1);
  assert_true(took >= 20 * MS_NS);
  assert_true(took < 1000 * MS_NS);
  er_loop_free(loop);
}

typedef struct {
  uint64_t when_ms;
  int id;
  bool cancelled;
} planned_t;

static void test_timer_heap_random_cancel(void **state) {
  (void)state;
  /* Many timers at pseudo-random times, a pseudo-random half of them
   * cancelled (from anywhere in the heap): the rest run exactly once each, by
   * time, and equal times in the order they were made. */
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  enum { N = 3000 };
  static planned_t plan[N];
  static er_timer_t *timers[N];
  static entry_t e[N];
  static log_t log;
  log.n = 0;
  uint32_t seed = 12345;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    plan[i] = (planned_t){(seed >> 16) % 200, i, false};
    e[i] = (entry_t){&log, i};
    timers[i] = er_loop_call_later(loop, plan[i].when_ms, append, &e[i]);
    assert_non_null(timers[i]);
  }
  int kept = N;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    if ((seed >> 16) % 2) {
      plan[i].cancelled = true;
      assert_int_equal(er_timer_cancel(timers[i]), 0);
      kept--;
    }
  }
  er_loop_run(loop);
  assert_int_equal(log.n, kept);
  for (int k = 0; k < log.n; k++) {
    const planned_t *p = &plan[log.v[k]];
    assert_false(p->cancelled);
    if (k) {
      const planned_t *q = &plan[log.v[k - 1]];
      assert_true(q->when_ms < p->when_ms || (q->when_ms == p->when_ms && q->id < p->id));
    }
  }
  er_loop_free(loop);
}

static void test_free_drops_pending(void **state) {
  (void)state;
  /* Pending calls, timers and idlers are dropped without running (and, under
   * valgrind, without leaking). */
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  entry_t e = {&log, 1};
  er_loop_call_soon(loop, append, &e);
  er_loop_call_later(loop, 100000, append, &e);
  er_loop_call_later(loop, 1, append, &e);
  er_loop_free(loop);
  assert_int_equal(log.n, 0);
}

/* ---- idlers ------------------------------------------------------------------- */

typedef struct {
  int runs;
  int active_for;         /* answer ACTIVE this many times first */
  er_idle_result_t then;  /* then this */
  log_t *log;
  int id;
} idler_t;

static er_idle_result_t idle_fn(void *arg) {
  idler_t *i = arg;
  i->runs++;
  if (i->log) i->log->v[i->log->n++] = i->id;
  if (i->active_for > 0) {
    i->active_for--;
    return ER_IDLE_ACTIVE;
  }
  return i->then;
}

/* eventloop_test's testIdle: two idlers that report no work, one that asks to
 * be removed. One run calls each once; the next run calls the two that remain
 * once more. A loop whose idlers are all inactive counts as empty. */
static void test_idle_contract(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  idler_t i1 = {.then = ER_IDLE_INACTIVE};
  idler_t i2 = {.then = ER_IDLE_INACTIVE};
  idler_t i3 = {.then = ER_IDLE_REMOVE};
  assert_int_equal(er_loop_add_idle(loop, idle_fn, &i1), 0);
  assert_int_equal(er_loop_add_idle(loop, idle_fn, &i2), 0);
  assert_int_equal(er_loop_add_idle(loop, idle_fn, &i3), 0);
  assert_int_equal(er_loop_run(loop), 0);
  assert_int_equal(i1.runs, 1);
  assert_int_equal(i2.runs, 1);
  assert_int_equal(i3.runs, 1);
  assert_int_equal(er_loop_run(loop), 0);
  assert_int_equal(i1.runs, 2);
  assert_int_equal(i2.runs, 2);
  assert_int_equal(i3.runs, 1); /* removed */
  er_loop_free(loop);
}

static void test_idle_active_keeps_loop_going(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  /* a works five times then goes quiet; b is quiet from the start. While one
   * idler reports work, the others keep their turns. */
  idler_t a = {.active_for = 5, .then = ER_IDLE_INACTIVE, .log = &log, .id = 1};
  idler_t b = {.then = ER_IDLE_INACTIVE, .log = &log, .id = 2};
  er_loop_add_idle(loop, idle_fn, &a);
  er_loop_add_idle(loop, idle_fn, &b);
  er_loop_run(loop);
  assert_log(&log, (int[]){1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1}, 11);
  assert_int_equal(a.runs, 6);
  er_loop_free(loop);
}

static void test_idle_remove_after_work(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  idler_t a = {.active_for = 3, .then = ER_IDLE_REMOVE};
  er_loop_add_idle(loop, idle_fn, &a);
  er_loop_run(loop);
  assert_int_equal(a.runs, 4);
  assert_int_equal(er_loop_run0(loop), -1); /* gone */
  er_loop_free(loop);
}

static void test_idle_after_calls_and_timers(void **state) {
  (void)state;
  /* Ready calls come before idlers; a quiet idler does not keep a pending
   * timer from sleeping, and runs again once the timer has run. */
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  idler_t q = {.then = ER_IDLE_INACTIVE, .log = &log, .id = 9};
  entry_t call = {&log, 1}, timer = {&log, 2};
  er_loop_add_idle(loop, idle_fn, &q);
  er_loop_call_soon(loop, append, &call);
  er_loop_call_later(loop, 30, append, &timer);
  er_loop_run(loop);
  assert_log(&log, (int[]){1, 9, 2, 9}, 4);
  assert_int_equal(fc.now_ns, 30 * MS_NS);
  er_loop_free(loop);
}

static void test_many_idlers(void **state) {
  (void)state;
  /* More idlers than the first allocation holds, some leaving early. */
  er_loop_t *loop = new_loop();
  idler_t ids[40];
  for (int i = 0; i < 40; i++) {
    ids[i] = (idler_t){.active_for = i % 3, .then = i % 2 ? ER_IDLE_REMOVE : ER_IDLE_INACTIVE};
    assert_int_equal(er_loop_add_idle(loop, idle_fn, &ids[i]), 0);
  }
  er_loop_run(loop);
  for (int i = 0; i < 40; i++) assert_true(ids[i].runs >= i % 3 + 1);
  er_loop_run(loop);
  for (int i = 0; i < 40; i++) {
    /* The removed ones ran their ACTIVE turns and one more; the quiet ones ran
     * again in the second run. */
    if (i % 2)
      assert_int_equal(ids[i].runs, i % 3 + 1);
    else
      assert_true(ids[i].runs >= i % 3 + 2);
  }
  er_loop_free(loop);
}

/* An idler that adds another idler while it runs, with the idler list full:
 * none may be lost or run twice as often. */
typedef struct {
  er_loop_t *loop;
  idler_t *extra;
  int runs;
} adder_t;

static er_idle_result_t add_an_idler(void *arg) {
  adder_t *a = arg;
  if (a->runs++ == 0) assert_int_equal(er_loop_add_idle(a->loop, idle_fn, a->extra), 0);
  return ER_IDLE_INACTIVE;
}

static void test_idler_adds_idler_when_full(void **state) {
  (void)state;
  for (int others = 1; others <= 20; others++) {
    er_loop_t *loop = new_loop();
    idler_t quiet[20];
    idler_t extra = {.then = ER_IDLE_INACTIVE};
    adder_t adder = {loop, &extra, 0};
    er_loop_add_idle(loop, add_an_idler, &adder);
    for (int i = 0; i < others; i++) {
      quiet[i] = (idler_t){.then = ER_IDLE_INACTIVE};
      er_loop_add_idle(loop, idle_fn, &quiet[i]);
    }
    er_loop_run(loop);
    er_loop_run(loop);
    /* Two runs: every idler, the added one too, ran once in each. */
    if (adder.runs != 2 || extra.runs != 2)
      fail_msg("with %d other idlers: the adder ran %d times, the added one %d", others,
               adder.runs, extra.runs);
    for (int i = 0; i < others; i++)
      if (quiet[i].runs != 2) fail_msg("with %d other idlers: idler %d ran %d times", others, i, quiet[i].runs);
    er_loop_free(loop);
  }
}

/* ---- run0 / run1 ---------------------------------------------------------------- */

static void test_run0_return_values(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t e1 = {&log, 1}, e2 = {&log, 2};

  assert_int_equal(er_loop_run0(loop), -1); /* nothing at all */

  er_loop_call_soon(loop, append, &e1);
  assert_int_equal(er_loop_run0(loop), 0); /* ran a call */
  assert_int_equal(log.n, 1);

  er_loop_call_later(loop, 5, append, &e2);
  assert_int_equal(er_loop_run0(loop), (int64_t)(5 * MS_NS)); /* only a timer: how long */
  assert_int_equal(log.n, 1);
  fc.now_ns = 2 * MS_NS;
  assert_int_equal(er_loop_run0(loop), (int64_t)(3 * MS_NS));
  fc.now_ns = 5 * MS_NS;
  assert_int_equal(er_loop_run0(loop), 0); /* due: ran it */
  assert_int_equal(log.n, 2);
  assert_int_equal(er_loop_run0(loop), -1);
  assert_int_equal(fc.sleeps, 0); /* run0 never waits */

  idler_t quiet = {.then = ER_IDLE_INACTIVE};
  er_loop_add_idle(loop, idle_fn, &quiet);
  assert_int_equal(er_loop_run0(loop), 0);  /* ran the idler */
  assert_int_equal(er_loop_run0(loop), -1); /* all idlers inactive: empty */
  assert_int_equal(quiet.runs, 1);
  er_loop_free(loop);
}

static void test_run1(void **state) {
  (void)state;
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  log_t log = {.n = 0};
  entry_t e1 = {&log, 1}, e2 = {&log, 2};
  assert_false(er_loop_run1(loop));

  er_loop_call_soon(loop, append, &e1);
  assert_true(er_loop_run1(loop));
  assert_int_equal(log.n, 1);

  er_loop_call_later(loop, 40, append, &e2);
  assert_true(er_loop_run1(loop)); /* waited: the fake clock slept 40 ms */
  assert_int_equal(log.n, 1);
  assert_int_equal(fc.sleeps, 1);
  assert_int_equal(fc.now_ns, 40 * MS_NS);
  assert_true(er_loop_run1(loop)); /* now ran it */
  assert_int_equal(log.n, 2);
  assert_false(er_loop_run1(loop));
  er_loop_free(loop);
}

/* ---- stopping ------------------------------------------------------------------- */

static void stop_here(void *arg) { er_loop_stop(arg); }

static void test_stop_from_a_call(void **state) {
  (void)state;
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  entry_t e1 = {&log, 1}, e2 = {&log, 2};
  er_loop_call_soon(loop, append, &e1);
  er_loop_call_soon(loop, stop_here, loop);
  er_loop_call_soon(loop, append, &e2);
  er_loop_run(loop);
  assert_log(&log, (int[]){1}, 1); /* stopped after the current step */
  er_loop_run(loop);                /* and goes on where it stopped */
  assert_log(&log, (int[]){1, 2}, 2);
  er_loop_free(loop);
}

static void *stop_later(void *arg) {
  usleep(10 * 1000);
  er_loop_stop(arg);
  return NULL;
}

static void test_stop_from_another_thread_busy(void **state) {
  (void)state;
  /* A loop that never runs dry (an idler always at work) stops when another
   * thread asks. */
  er_loop_t *loop = new_loop();
  idler_t busy = {.active_for = 1 << 30};
  er_loop_add_idle(loop, idle_fn, &busy);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, stop_later, loop), 0);
  assert_int_equal(er_loop_run(loop), 0);
  pthread_join(th, NULL);
  assert_true(busy.runs > 0);
  er_loop_free(loop);
}

static void test_stop_from_another_thread_blocked(void **state) {
  (void)state;
  /* A loop blocked waiting (referenced, nothing to do) wakes up and stops. */
  er_loop_t *loop = new_loop();
  er_loop_ref(loop);
  pthread_t th;
  uint64_t t0 = er_now_mono_ns();
  assert_int_equal(pthread_create(&th, NULL, stop_later, loop), 0);
  assert_int_equal(er_loop_run(loop), 0);
  pthread_join(th, NULL);
  assert_true(er_now_mono_ns() - t0 >= 10 * MS_NS);
  er_loop_unref(loop);
  assert_false(er_loop_run1(loop)); /* unreferenced: empty again */
  er_loop_free(loop);
}

static void test_stop_blocked_on_timer(void **state) {
  (void)state;
  /* The same while waiting for a timer far away on the real clock. */
  er_loop_t *loop = new_loop();
  log_t log = {.n = 0};
  entry_t e = {&log, 1};
  er_timer_t *t = er_loop_call_later(loop, 60 * 1000, append, &e);
  pthread_t th;
  uint64_t t0 = er_now_mono_ns();
  assert_int_equal(pthread_create(&th, NULL, stop_later, loop), 0);
  er_loop_run(loop);
  pthread_join(th, NULL);
  assert_true(er_now_mono_ns() - t0 < 5000 * MS_NS);
  assert_int_equal(log.n, 0);
  er_timer_cancel(t);
  er_loop_free(loop);
}

int main(void) {
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_free_current),
      cmocka_unit_test(test_current_while_running),
      cmocka_unit_test(test_runs_on_given_uv_loop),
      cmocka_unit_test(test_call_soon_fifo),
      cmocka_unit_test(test_call_soon_from_a_call),
      cmocka_unit_test(test_call_soon_ring_grows_while_wrapped),
      cmocka_unit_test(test_timers_run_in_time_order),
      cmocka_unit_test(test_run_earlier_timer_first),
      cmocka_unit_test(test_ready_calls_before_due_timer),
      cmocka_unit_test(test_equal_times_fifo),
      cmocka_unit_test(test_call_later_ns),
      cmocka_unit_test(test_timer_cancel),
      cmocka_unit_test(test_timer_cancel_last_one_leaves_loop_empty),
      cmocka_unit_test(test_real_clock_timer),
      cmocka_unit_test(test_timer_heap_random_cancel),
      cmocka_unit_test(test_free_drops_pending),
      cmocka_unit_test(test_idle_contract),
      cmocka_unit_test(test_idle_active_keeps_loop_going),
      cmocka_unit_test(test_idle_remove_after_work),
      cmocka_unit_test(test_idle_after_calls_and_timers),
      cmocka_unit_test(test_many_idlers),
      cmocka_unit_test(test_idler_adds_idler_when_full),
      cmocka_unit_test(test_run0_return_values),
      cmocka_unit_test(test_run1),
      cmocka_unit_test(test_stop_from_a_call),
      cmocka_unit_test(test_stop_from_another_thread_busy),
      cmocka_unit_test(test_stop_from_another_thread_blocked),
      cmocka_unit_test(test_stop_blocked_on_timer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
