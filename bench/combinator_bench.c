/* (e) Combinators over a million futures, ns per future or value.
 * MultiFuture: 1M pending futures added as dependents, complete(), then each
 * set; done with the list. Baseline: the same futures joined by hand (an
 * immediate callback counting down). ReducingFuture: 1M values given with
 * putq_int and summed by a reducer, batch 20 (ndb's default) and 1000.
 * Baseline: 1M er_future_new_int summed by hand. */
#include <errand.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

#define N 1000000u

typedef struct comb {
  er_loop_t *loop;
  er_future_t **fs;
  size_t batch;
} comb_t;

static void multi(void *ctx, uint64_t n) {
  comb_t *c = ctx;
  er_future_t *mf = er_multi_future_new(c->loop);
  for (uint64_t i = 0; i < n; i++) {
    c->fs[i] = er_future_new(c->loop);
    if (!c->fs[i] || er_multi_future_add_dependent(mf, c->fs[i]) != 0) abort();
  }
  er_multi_future_complete(mf);
  for (uint64_t i = 0; i < n; i++) {
    er_future_set_int(c->fs[i], 1);
    er_future_unref(c->fs[i]);
  }
  if (er_future_get_result(mf) != 0 || er_future_list_len(mf) != n) abort();
  er_future_unref(mf);
}

static void countdown(er_future_t *f, void *arg) { --*(uint64_t *)arg; }

static void by_hand_join(void *ctx, uint64_t n) {
  comb_t *c = ctx;
  uint64_t left = n;
  for (uint64_t i = 0; i < n; i++) {
    c->fs[i] = er_future_new(c->loop);
    if (!c->fs[i] || er_future_add_immediate_callback(c->fs[i], countdown, &left) != 0) abort();
  }
  for (uint64_t i = 0; i < n; i++) er_future_set_int(c->fs[i], 1);
  if (left != 0) abort();
  for (uint64_t i = 0; i < n; i++) er_future_unref(c->fs[i]);
}

static int sum(void *ud, er_future_t *const *values, size_t n, er_future_t *out) {
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) s += er_future_int(values[i]);
  return er_future_set_int(out, s);
}

static void reducing(void *ctx, uint64_t n) {
  comb_t *c = ctx;
  er_future_t *rf = er_reducing_future_new(c->loop, sum, NULL, c->batch);
  for (uint64_t i = 0; i < n; i++)
    if (er_reducing_future_putq_int(rf, (int64_t)i) != 0) abort();
  er_reducing_future_complete(rf);
  if (er_future_get_result(rf) != 0 || er_future_int(rf) != (int64_t)(n * (n - 1) / 2)) abort();
  er_future_unref(rf);
}

static void by_hand_sum(void *ctx, uint64_t n) {
  comb_t *c = ctx;
  int64_t s = 0;
  for (uint64_t i = 0; i < n; i++) {
    er_future_t *f = er_future_new_int(c->loop, (int64_t)i);
    if (!f) abort();
    s += er_future_int(f);
    er_future_unref(f);
  }
  if (s != (int64_t)(n * (n - 1) / 2)) abort();
}

void bench_combinators(void) {
  fprintf(stderr, "bench: combinators over 1M futures\n");
  comb_t c = {NULL, malloc(N * sizeof(er_future_t *)), 0};
  if (!c.fs || er_loop_new(&c.loop, NULL) != 0) abort();
  double mf = bench_fixed(multi, &c, N, 3);
  double join = bench_fixed(by_hand_join, &c, N, 3);
  c.batch = 20;
  double r20 = bench_fixed(reducing, &c, N, 3);
  c.batch = 1000;
  double r1k = bench_fixed(reducing, &c, N, 3);
  double hand = bench_fixed(by_hand_sum, &c, N, 3);
  er_loop_free(c.loop);
  free(c.fs);
  char note[64], t[32];
  snprintf(note, sizeof note, "1M in %s", bench_fmt(t, sizeof t, mf * N, "ns"));
  bench_row("MultiFuture over 1M pending futures, per future", mf, "ns",
            "same futures joined by hand", join, "ns", note);
  snprintf(note, sizeof note, "1M in %s", bench_fmt(t, sizeof t, r20 * N, "ns"));
  bench_row("ReducingFuture sum of 1M putq_int, batch 20, per value", r20, "ns",
            "1M er_future_new_int summed by hand", hand, "ns", note);
  snprintf(note, sizeof note, "1M in %s", bench_fmt(t, sizeof t, r1k * N, "ns"));
  bench_row("ReducingFuture sum of 1M putq_int, batch 1000, per value", r1k, "ns",
            "1M er_future_new_int summed by hand", hand, "ns", note);
}
