/* (d) A million coroutines suspended at once, each in a child process of its
 * own so that the memory figures are clean (VmHWM before and after, over n).
 * errand: n tasklets each in er_sleep(10), spawned and unreferenced, then the
 * loop runs them all to completion. Baseline: n Boost fcontext coroutines on
 * 64 KiB stacks carved 64 to an mmap, each jumped into once and parked, then
 * each resumed to its end: the floor (one touched page per stack). */
#include <errand.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "bench.h"
#include "fctx.h"

#define GOAL_BYTES 4096.0

static uint64_t g_done;

static uint64_t minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_minflt;
}

/* The one line a child prints: count, peak bytes, spawn ns, completion ns (per
 * coroutine), RSS after (bytes), page faults per coroutine in each phase. */
static void report(uint64_t n, uint64_t hwm0, uint64_t hwm1, const uint64_t t[3],
                   const uint64_t pf[3]) {
  double k = n ? (double)n : 1;
  printf("%" PRIu64 " %.1f %.1f %.1f %" PRIu64 " %.2f %.2f\n", n, (double)(hwm1 - hwm0) / k,
         (double)(t[1] - t[0]) / k, (double)(t[2] - t[1]) / k, bench_vm_rss(),
         (double)(pf[1] - pf[0]) / k, (double)(pf[2] - pf[1]) / k);
}

static int sleeper(void *arg) {
  er_sleep(10);
  g_done++;
  return 0;
}

/* stack_size 0: errand's default (64 KiB); else Go-sized stacks, packed. */
static int child_errand(uint64_t n, size_t stack_size) {
  er_loop_t *loop;
  if (er_loop_new(&loop, &(er_loop_opts_t){.stack_size = stack_size}) != 0) return 1;
  uint64_t hwm0 = bench_vm_hwm(), t[3], pf[3], spawned = 0;
  pf[0] = minor_faults();
  t[0] = bench_now_ns();
  for (; spawned < n; spawned++) {
    er_future_t *f = er_tasklet_spawn(loop, sleeper, NULL, NULL);
    if (!f) {
      fprintf(stderr, "bench: spawn %" PRIu64 " failed\n", spawned);
      break;
    }
    er_future_unref(f);
  }
  t[1] = bench_now_ns();
  pf[1] = minor_faults();
  uint64_t hwm1 = bench_vm_hwm();
  er_loop_run(loop);
  t[2] = bench_now_ns();
  pf[2] = minor_faults();
  if (g_done != spawned) {
    fprintf(stderr, "bench: %" PRIu64 " of %" PRIu64 " tasklets completed\n", g_done, spawned);
    return 1;
  }
  report(spawned, hwm0, hwm1, t, pf); /* before er_loop_free: RSS as the pool keeps it */
  er_loop_free(loop);
  return 0;
}

#ifdef BENCH_HAVE_FCONTEXT
#define FSTACK (64 * 1024)
#define FSLAB 64

static void fc_sleeper(transfer_t t) {
  t = jump_fcontext(t.fctx, NULL); /* parked until resumed */
  g_done++;
  jump_fcontext(t.fctx, NULL); /* never resumed */
}

static int child_fcontext(uint64_t n) {
  uint64_t hwm0 = bench_vm_hwm(), t[3], pf[3];
  pf[0] = minor_faults();
  t[0] = bench_now_ns();
  fcontext_t *cs = malloc(n * sizeof *cs);
  char *slab = NULL;
  if (!cs) return 1;
  for (uint64_t i = 0; i < n; i++) {
    if (i % FSLAB == 0) {
      slab = mmap(NULL, (size_t)FSTACK * FSLAB, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (slab == MAP_FAILED) return 1;
    }
    char *top = slab + (i % FSLAB + 1) * (size_t)FSTACK;
    cs[i] = jump_fcontext(make_fcontext(top, FSTACK, fc_sleeper), NULL).fctx;
  }
  t[1] = bench_now_ns();
  pf[1] = minor_faults();
  uint64_t hwm1 = bench_vm_hwm();
  for (uint64_t i = 0; i < n; i++) jump_fcontext(cs[i], NULL);
  t[2] = bench_now_ns();
  pf[2] = minor_faults();
  if (g_done != n) return 1;
  report(n, hwm0, hwm1, t, pf);
  return 0; /* the slabs go with the process */
}
#endif

int bench_million_child(const char *mode, uint64_t n) {
  if (strcmp(mode, "million-errand") == 0) return child_errand(n, 0);
  if (strcmp(mode, "million-errand-2k") == 0) return child_errand(n, 2048);
#ifdef BENCH_HAVE_FCONTEXT
  if (strcmp(mode, "million-fcontext") == 0) return child_fcontext(n);
#endif
  fprintf(stderr, "bench: unknown child mode %s\n", mode);
  return 2;
}

void bench_million(void) {
  uint64_t n = 1000000;
  const char *env = getenv("BENCH_MILLION");
  if (env && *env) n = strtoull(env, NULL, 10);
  char m[4][128];
  snprintf(m[0], sizeof m[0], "%" PRIu64 " tasklets suspended in er_sleep: all spawned", n);
  snprintf(m[1], sizeof m[1], "%" PRIu64 " suspended: peak RSS per tasklet", n);
  snprintf(m[2], sizeof m[2], "%" PRIu64 " suspended: spawn, per tasklet (cold pool)", n);
  snprintf(m[3], sizeof m[3], "%" PRIu64 " suspended: completion (run loop), per tasklet", n);
  fprintf(stderr, "bench: %" PRIu64 " suspended tasklets (child process)\n", n);
  double e[7] = {0}, f[7] = {0};
  if (bench_child("million-errand", n, e, 7) != 7) {
    printf("row\t%s\tFAILED (child)\t\t\tgoal: all fit: MISS\n", m[0]);
    return;
  }
  bool have_f = false;
  const char *why = BENCH_NO_FCONTEXT_WHY;
#ifdef BENCH_HAVE_FCONTEXT
  fprintf(stderr, "bench: %" PRIu64 " suspended fcontext coroutines (child process)\n", n);
  have_f = bench_child("million-fcontext", n, f, 7) == 7;
  why = "fcontext: n/a (its child failed)";
#endif
  char note[160], rss[32], fs[2][32] = {"", ""};
  if (have_f) {
    snprintf(fs[0], sizeof fs[0], " (fcontext %.2f)", f[5]);
    snprintf(fs[1], sizeof fs[1], " (fcontext %.2f)", f[6]);
  }
  snprintf(note, sizeof note, "goal: all fit: %s", e[0] == (double)n ? "ok" : "MISS");
  printf("row\t%s\t%.0f\t\t\t%s\n", m[0], e[0], note);
  bench_row_goal(m[1], e[1], "B", "goal", GOAL_BYTES, 1.0);
  /* The same with 2 KiB stacks (.stack_size = 2048, where goroutines start):
   * packed without guard pages, so two tasklets share a page. */
  double e2[7] = {0};
  char m2[128];
  snprintf(m2, sizeof m2, "%" PRIu64 " suspended, 2 KiB stacks: peak RSS per tasklet", n);
  if (bench_child("million-errand-2k", n, e2, 7) == 7 && e2[0] == (double)n)
    bench_row_goal(m2, e2[1], "B", "goal", GOAL_BYTES, 1.0);
  else
    printf("row\t%s\tFAILED (child)\t\t\tgoal: all fit: MISS\n", m2);
  if (have_f) bench_row(m[1], e[1], "B", "fcontext coroutine, 64 KiB stack", f[1], "B", NULL);
  snprintf(note, sizeof note, "page faults per tasklet %.2f%s", e[5], fs[0]);
  if (have_f)
    bench_row(m[2], e[2], "ns", "fcontext make+jump in+out", f[2], "ns", note);
  else
    bench_row_na(m[2], e[2], "ns", why, note);
  snprintf(note, sizeof note, "page faults per tasklet %.2f%s; RSS after: %s", e[6], fs[1],
           bench_fmt(rss, sizeof rss, e[4], "B"));
  if (have_f)
    bench_row(m[3], e[3], "ns", "fcontext resume to end", f[3], "ns", note);
  else
    bench_row_na(m[3], e[3], "ns", why, note);
}
