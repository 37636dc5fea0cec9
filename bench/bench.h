/* What every benchmark file shares: a clock, a repeat-and-take-the-best
 * timer, the peak RSS of this process, a child-process runner, and the one
 * output format bench/run turns into a table.
 *
 * Output: one line per table row on stdout, tab-separated:
 *   row <measurement> <errand figure> <baseline: figure> <ratio> <note>
 * A measurement with several baselines repeats its name; bench/run blanks the
 * repeats. Progress goes to stderr. */
#ifndef ER_BENCH_H
#define ER_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint64_t bench_now_ns(void);

/* Runs fn(ctx, n) for some n, growing n until one run lasts about target_ms,
 * then repeats it `reps` times and returns the best (least) nanoseconds per
 * op: the best run is the one least disturbed by whatever else the machine
 * does, which makes same-run ratios stable on a shared box. */
typedef void (*bench_fn)(void *ctx, uint64_t n);
double bench_per_op(bench_fn fn, void *ctx, int reps, double target_ms);

/* Runs fn(ctx, n) reps times with this n; the best nanoseconds per op. */
double bench_fixed(bench_fn fn, void *ctx, uint64_t n, int reps);

/* Peak resident set (VmHWM) and current one (VmRSS) of this process, bytes. */
uint64_t bench_vm_hwm(void);
uint64_t bench_vm_rss(void);

/* A stack of size bytes for the baselines' coroutines (mmap, no guard);
 * returns its lowest byte. */
char *bench_stack_new(size_t size);
void bench_stack_free(char *lo, size_t size);

/* Runs this program again as `loop_bench --child <mode> <n>` and reads up to
 * max numbers from the one line it prints. Returns how many it read, or -1
 * when the child failed (its stderr is passed through). */
int bench_child(const char *mode, uint64_t n, double *out, int max);

/* "12.3 ns", "4.02 KiB", "1.20 s": three significant digits and the unit. */
const char *bench_fmt(char *buf, size_t size, double v, const char *unit);

/* Prints a row with ratio errand/base (no ratio when base <= 0). base_name
 * names the baseline ("fcontext jump_fcontext"); note may be NULL. */
void bench_row(const char *measure, double errand, const char *unit, const char *base_name,
               double base, const char *base_unit, const char *note);
/* A row whose baseline is unavailable (reason in the baseline cell). */
void bench_row_na(const char *measure, double errand, const char *unit, const char *why,
                  const char *note);
/* A row checked against a goal: ratio errand/goal, note "goal <= G: ok/MISS". */
void bench_row_goal(const char *measure, double errand, const char *unit, const char *base_name,
                    double base, double goal_ratio);

/* The suites' parts, one file each. */
void bench_switch(void);      /* switch_bench.c: context switch round trip */
void bench_spawn(void);       /* spawn_bench.c: spawn to completion */
void bench_future(void);      /* future_bench.c: future create, resolve, callback */
void bench_million(void);     /* million_bench.c: 1M suspended tasklets (children) */
void bench_combinators(void); /* combinator_bench.c: MultiFuture, ReducingFuture */
int bench_million_child(const char *mode, uint64_t n); /* the child's side */

#endif
