/* Helpers shared by the unit tests: cmocka's includes in the order it needs
 * them, a clock the tests move by hand, and a watchdog so that a test that
 * hangs fails instead of blocking the run. */
#ifndef ER_TEST_UTIL_H
#define ER_TEST_UTIL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "errand/common.h"
#include "errand/future.h"
#include "errand/loop.h"

#define MS_NS 1000000ull

/* A clock that only moves when the loop sleeps on it (ndb's MockClock): a
 * test then knows the exact time at every step, and timers of any length cost
 * no real time. */
typedef struct fake_clock {
  uint64_t now_ns;
  unsigned sleeps;
} fake_clock_t;

static inline uint64_t fake_now(void *ud) { return ((fake_clock_t *)ud)->now_ns; }

static inline void fake_sleep(void *ud, uint64_t ns) {
  fake_clock_t *c = ud;
  c->now_ns += ns;
  c->sleeps++;
}

/* A loop on a fake clock that starts at 0; the clock struct must outlive it. */
static inline er_loop_t *new_fake_loop(fake_clock_t *fc) {
  memset(fc, 0, sizeof *fc);
  er_clock_t clock = {fake_now, fake_sleep, fc}; /* copied by er_loop_new */
  er_loop_opts_t opts = {.clock = &clock};
  er_loop_t *loop = NULL;
  assert_int_equal(er_loop_new(&loop, &opts), 0);
  assert_non_null(loop);
  return loop;
}

static inline er_loop_t *new_loop(void) {
  er_loop_t *loop = NULL;
  assert_int_equal(er_loop_new(&loop, NULL), 0);
  assert_non_null(loop);
  return loop;
}

/* Kills the process (SIGALRM) if the whole file takes longer than this; ctest
 * has its own timeout, this one also covers running a test binary by hand. */
static inline void test_watchdog(unsigned seconds) {
  const char *v = getenv("ER_TEST_WATCHDOG");
  alarm(v ? (unsigned)atoi(v) : seconds);
}

/* Counts the blocks errand has live through its allocation hooks, so that a
 * test can show an object graph was given back without valgrind. */
static long g_live_blocks;
static inline void *live_malloc(size_t n) {
  void *p = malloc(n);
  if (p) g_live_blocks++;
  return p;
}
static inline void *live_realloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (q && !p) g_live_blocks++;
  return q;
}
static inline void live_free(void *p) {
  if (p) g_live_blocks--;
  free(p);
}
static inline void count_live_blocks(bool on) {
  static const er_allocator_t counting = {live_malloc, live_realloc, live_free};
  g_live_blocks = 0;
  er_set_allocator(on ? &counting : NULL);
}

/* A future callback that counts its calls in the int at arg. */
static inline void note_cb(er_future_t *f, void *arg) {
  (void)f;
  (*(int *)arg)++;
}

/* Tasklet bodies shared by test_tasklet.c and test_tasklet_toplevel.c. */
static inline int t2(void *arg) { return er_return_int((int64_t)(intptr_t)arg); }

static inline int t3(void *arg) {
  /* Suspends once before returning (ndb's t3 is a plain function; here the
   * difference matters, so both kinds are used). */
  er_sleep(0);
  return er_return_int((int64_t)(intptr_t)arg);
}

static inline int fails_later(void *arg) {
  er_sleep((uint64_t)(intptr_t)arg);
  return er_fail(ER_EIO, "hello %d", 42);
}

#endif
