/* The loop suite: context switch, spawn, futures, a million suspended
 * tasklets, combinators; each beside its baselines, measured in this run.
 *
 *   loop_bench [switch|spawn|future|million|combinators]...   (default: all)
 *   loop_bench --child <mode> <n>     (internal: a clean process for (d))
 *
 * Rows go to stdout in the format of bench.h; bench/run prints them as a
 * table. BENCH_MILLION=n changes the size of the million test. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "fctx.h"

static const struct {
  const char *name;
  void (*run)(void);
} parts[] = {
    {"switch", bench_switch},   {"spawn", bench_spawn},
    {"future", bench_future},   {"million", bench_million},
    {"combinators", bench_combinators},
};
#define NPARTS (sizeof parts / sizeof parts[0])

/* Stay on one CPU: the figures are per-core costs, and migrations add noise. */
static void pin(void) {
  int cpu = sched_getcpu();
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0)
    return bench_million_child(argv[2], strtoull(argv[3], NULL, 10));
  pin();
  printf("meta\tcontext switch\t%s\n", BENCH_CTX_KIND);
#ifdef BENCH_HAVE_FCONTEXT
  printf("meta\tfcontext\tlibboost_context (jump_fcontext, make_fcontext)\n");
#else
  printf("meta\tfcontext\tnot found: the fcontext columns are missing\n");
#endif
  for (size_t i = 0; i < NPARTS; i++) {
    bool want = argc == 1;
    for (int a = 1; a < argc; a++) want |= strcmp(argv[a], parts[i].name) == 0;
    if (want) parts[i].run();
  }
  return 0;
}
