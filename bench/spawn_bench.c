/* (b) Spawn to completion: start a coroutine that returns at once, per op.
 * errand: er_tasklet_spawn + er_future_unref (stack from the loop's pool).
 * Baselines on one reused ("pooled") stack: make + switch in + switch out with
 * Boost fcontext, glibc ucontext (getcontext + makecontext + swapcontext, back
 * through uc_link), and errand's own raw er__ctx_make + er__ctx_switch. */
#include <errand.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "bench.h"
#include "fctx.h"
#include "loop/ctx.h"

#define STACK (64 * 1024)

static char *g_stack;

static int ret0(void *arg) { return 0; }
static void er_spawns(void *ctx, uint64_t n) {
  er_loop_t *loop = ctx;
  for (uint64_t i = 0; i < n; i++) {
    er_future_t *f = er_tasklet_spawn(loop, ret0, NULL, NULL);
    if (!f) abort();
    er_future_unref(f);
  }
}

static er__ctx_t raw_main, raw_co;
static void raw_once(void *arg) {
  er__ctx_switch(&raw_co, &raw_main); /* never resumed */
}
static void raw_spawns(void *ctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    er__ctx_make(&raw_co, g_stack, STACK, raw_once, NULL);
    er__ctx_switch(&raw_main, &raw_co);
  }
}

#ifdef BENCH_HAVE_FCONTEXT
static void fc_once(transfer_t t) { jump_fcontext(t.fctx, NULL); /* never resumed */ }
static void fc_spawns(void *ctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    fcontext_t c = make_fcontext(g_stack + STACK, STACK, fc_once);
    jump_fcontext(c, NULL);
  }
}
#endif

static ucontext_t uc_main, uc_co;
static void uc_once(void) {} /* returns: uc_link takes us back */
static void uc_spawns(void *ctx, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    getcontext(&uc_co);
    uc_co.uc_stack.ss_sp = g_stack;
    uc_co.uc_stack.ss_size = STACK;
    uc_co.uc_link = &uc_main;
    makecontext(&uc_co, uc_once, 0);
    swapcontext(&uc_main, &uc_co);
  }
}

void bench_spawn(void) {
  fprintf(stderr, "bench: spawn to completion\n");
  g_stack = bench_stack_new(STACK);
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) abort();
  er_future_t *f = er_tasklet_spawn(loop, ret0, NULL, NULL);
  if (!f || !er_future_done(f) || er_future_status(f) != 0) abort();
  er_future_unref(f);
  double er = bench_per_op(er_spawns, loop, 7, 60);
  er_loop_free(loop);
  double raw = bench_per_op(raw_spawns, NULL, 7, 60);
  double uc = bench_per_op(uc_spawns, NULL, 5, 60);
  const char *m = "spawn to completion (returns at once; unref), per op";
#ifdef BENCH_HAVE_FCONTEXT
  double fc = bench_per_op(fc_spawns, NULL, 7, 60);
  bench_row(m, er, "ns", "fcontext make+jump in+out", fc, "ns", NULL);
#else
  bench_row_na(m, er, "ns", BENCH_NO_FCONTEXT_WHY, NULL);
#endif
  bench_row(m, er, "ns", "ucontext get+make+swap+return", uc, "ns", NULL);
  bench_row(m, er, "ns", "raw er__ctx_make+switch in+out", raw, "ns", NULL);
  bench_stack_free(g_stack, STACK);
}
