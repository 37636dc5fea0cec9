/* (a) Context switch round trip: switch into a coroutine and back out.
 * Raw: errand's er__ctx_switch, Boost's jump_fcontext, glibc's swapcontext,
 * each bouncing between main and one coroutine that switches straight back.
 * Public API: a tasklet resumed by the loop, per resume, two ways: a tasklet
 * that loops on er_sleep(0), and two tasklets playing ping-pong through fresh
 * futures (er_future_new, er_future_set_none, er_await). */
#include <errand.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "bench.h"
#include "fctx.h"
#include "loop/ctx.h"

#define STACK (64 * 1024)

/* ---- raw errand ---- */
static er__ctx_t er_main, er_co;
static void er_bounce(void *arg) {
  for (;;) er__ctx_switch(&er_co, &er_main);
}
static void er_round_trips(void *ctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) er__ctx_switch(&er_main, &er_co);
}

/* ---- Boost fcontext ---- */
#ifdef BENCH_HAVE_FCONTEXT
static fcontext_t fc_co;
static void fc_bounce(transfer_t t) {
  for (;;) t = jump_fcontext(t.fctx, NULL);
}
static void fc_round_trips(void *ctx, uint64_t n) {
  fcontext_t c = fc_co;
  for (uint64_t i = 0; i < n; i++) c = jump_fcontext(c, NULL).fctx;
  fc_co = c;
}
#endif

/* ---- glibc ucontext ---- */
static ucontext_t uc_main, uc_co;
static void uc_bounce(void) {
  for (;;) swapcontext(&uc_co, &uc_main);
}
static void uc_round_trips(void *ctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) swapcontext(&uc_main, &uc_co);
}

/* ---- public API: er_sleep(0) ---- */
static int sleeper(void *arg) {
  uint64_t n = *(uint64_t *)arg;
  for (uint64_t i = 0; i < n; i++) er_sleep(0);
  return 0;
}
static void api_sleep0(void *ctx, uint64_t n) {
  er_loop_t *loop = ctx;
  er_future_t *f = er_tasklet_spawn(loop, sleeper, &n, NULL);
  er_loop_run(loop);
  if (!f || er_future_status(f) != 0) abort();
  er_future_unref(f);
}

/* ---- public API: ping-pong through futures ---- */
typedef struct pingpong {
  er_loop_t *loop;
  er_future_t *to_ping, *to_pong; /* what each side awaits now */
  uint64_t rounds;
} pingpong_t;

static int pong(void *arg) {
  pingpong_t *s = arg;
  for (uint64_t i = 0; i < s->rounds; i++) {
    er_future_t *f = er_future_new(s->loop);
    s->to_pong = f;
    if (s->to_ping) er_future_set_none(s->to_ping);
    er_await(f);
    er_future_unref(f);
  }
  er_future_set_none(s->to_ping);
  return 0;
}
static int ping(void *arg) {
  pingpong_t *s = arg;
  for (uint64_t i = 0; i < s->rounds; i++) {
    er_future_t *f = er_future_new(s->loop);
    s->to_ping = f;
    er_future_set_none(s->to_pong);
    er_await(f);
    er_future_unref(f);
  }
  return 0;
}
static void api_pingpong(void *ctx, uint64_t n) { /* n resumes */
  pingpong_t s = {ctx, NULL, NULL, n / 2 ? n / 2 : 1};
  er_future_t *b = er_tasklet_spawn(s.loop, pong, &s, NULL);
  er_future_t *a = er_tasklet_spawn(s.loop, ping, &s, NULL);
  er_loop_run(s.loop);
  if (!a || !b || er_future_status(a) != 0 || er_future_status(b) != 0) abort();
  er_future_unref(a);
  er_future_unref(b);
}

void bench_switch(void) {
  fprintf(stderr, "bench: context switch\n");
  char *st_er = bench_stack_new(STACK), *st_uc = bench_stack_new(STACK);
  er__ctx_make(&er_co, st_er, STACK, er_bounce, NULL);
  double raw = bench_per_op(er_round_trips, NULL, 7, 60);

#ifdef BENCH_HAVE_FCONTEXT
  double fc = 0;
  char *st_fc = bench_stack_new(STACK);
  fc_co = make_fcontext(st_fc + STACK, STACK, fc_bounce);
  fc = bench_per_op(fc_round_trips, NULL, 7, 60);
#endif

  getcontext(&uc_co);
  uc_co.uc_stack.ss_sp = st_uc;
  uc_co.uc_stack.ss_size = STACK;
  uc_co.uc_link = NULL;
  makecontext(&uc_co, uc_bounce, 0);
  double uc = bench_per_op(uc_round_trips, NULL, 5, 60);

  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) abort();
  double sleep0 = bench_per_op(api_sleep0, loop, 7, 60);
  double pp = bench_per_op(api_pingpong, loop, 7, 60);
  er_loop_free(loop);

  const char *m1 = "switch round trip: raw er__ctx_switch (" BENCH_CTX_KIND ")";
  const char *m2 = "switch round trip: tasklet er_sleep(0), per resume";
  const char *m3 = "switch round trip: tasklet ping-pong via futures, per resume";
#ifdef BENCH_HAVE_FCONTEXT
  bench_row_goal(m1, raw, "ns", "fcontext jump_fcontext", fc, 1.5);
#else
  bench_row_na(m1, raw, "ns", BENCH_NO_FCONTEXT_WHY, NULL);
#endif
  bench_row(m1, raw, "ns", "ucontext swapcontext", uc, "ns", NULL);
#ifdef BENCH_HAVE_FCONTEXT
  bench_row(m2, sleep0, "ns", "fcontext jump_fcontext", fc, "ns", NULL);
#endif
  bench_row(m2, sleep0, "ns", "raw er__ctx_switch", raw, "ns", NULL);
  bench_row(m2, sleep0, "ns", "ucontext swapcontext", uc, "ns", NULL);
#ifdef BENCH_HAVE_FCONTEXT
  bench_row(m3, pp, "ns", "fcontext jump_fcontext", fc, "ns", NULL);
#endif
  bench_row(m3, pp, "ns", "raw er__ctx_switch", raw, "ns", NULL);
  bench_row(m3, pp, "ns", "ucontext swapcontext", uc, "ns", NULL);
  /* The coroutines are parked mid-loop; their stacks simply go. */
  bench_stack_free(st_er, STACK);
  bench_stack_free(st_uc, STACK);
#ifdef BENCH_HAVE_FCONTEXT
  bench_stack_free(st_fc, STACK);
#endif
}
