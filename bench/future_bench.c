/* (c) A future's life, per op: er_future_new, er_future_add_callback,
 * er_future_set_int, run the loop so that the callback runs, unref. Twice:
 * stepping the loop once (er_loop_run0) and running it until empty
 * (er_loop_run). The raw reference does what a future minimally is: malloc an
 * object of the same size, store the value, call through a pointer, free. */
#include <errand.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "loop/loop_internal.h"

static void on_done(er_future_t *f, void *arg) { *(uint64_t *)arg += (uint64_t)er_future_int(f); }

typedef struct fctx {
  er_loop_t *loop;
  bool run_all;
} fctx_t;

static void er_futures(void *ctx, uint64_t n) {
  fctx_t *c = ctx;
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    er_future_t *f = er_future_new(c->loop);
    if (!f || er_future_add_callback(f, on_done, &sum) != 0) abort();
    er_future_set_int(f, 1);
    if (c->run_all)
      er_loop_run(c->loop);
    else
      er_loop_run0(c->loop);
    er_future_unref(f);
  }
  if (sum != n) abort();
}

typedef struct raw {
  char body[sizeof(er_future_t) - sizeof(int64_t)];
  int64_t value;
} raw_t;
static void raw_done(raw_t *r, void *arg) { *(uint64_t *)arg += (uint64_t)r->value; }
static void (*volatile raw_cb)(raw_t *, void *) = raw_done;

static void raw_futures(void *ctx, uint64_t n) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    raw_t *r = malloc(sizeof *r);
    if (!r) abort();
    r->value = 1;
    raw_cb(r, &sum);
    free(r);
  }
  if (sum != n) abort();
}

void bench_future(void) {
  fprintf(stderr, "bench: future create, resolve, callback\n");
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) abort();
  fctx_t one = {loop, false}, all = {loop, true};
  double step = bench_per_op(er_futures, &one, 7, 60);
  double run = bench_per_op(er_futures, &all, 7, 60);
  er_loop_free(loop);
  double raw = bench_per_op(raw_futures, NULL, 7, 60);
  bench_row("future new+add_callback+set_int+er_loop_run0+unref", step, "ns",
            "malloc+store+indirect call+free", raw, "ns", NULL);
  bench_row("future new+add_callback+set_int+er_loop_run+unref", run, "ns",
            "malloc+store+indirect call+free", raw, "ns", NULL);
}
