/* Timing, memory figures, child processes and row output for the benchmarks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_per_op(bench_fn fn, void *ctx, int reps, double target_ms) {
  uint64_t n = 64, t;
  for (;;) { /* calibrate; also warms caches and pools */
    uint64_t t0 = bench_now_ns();
    fn(ctx, n);
    t = bench_now_ns() - t0;
    if (t >= target_ms * 1e6 / 4 || n >= (1ull << 34)) break;
    n *= 2;
  }
  n = (uint64_t)((double)n * (target_ms * 1e6) / (double)(t ? t : 1));
  if (n < 1) n = 1;
  return bench_fixed(fn, ctx, n, reps);
}

char *bench_stack_new(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  return p;
}

void bench_stack_free(char *lo, size_t size) { munmap(lo, size); }

double bench_fixed(bench_fn fn, void *ctx, uint64_t n, int reps) {
  double best = 0;
  for (int i = 0; i < reps; i++) {
    uint64_t t0 = bench_now_ns();
    fn(ctx, n);
    double v = (double)(bench_now_ns() - t0) / (double)(n ? n : 1);
    if (i == 0 || v < best) best = v;
  }
  return best;
}

static uint64_t status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, klen) == 0) {
      kb = strtoull(line + klen, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb * 1024;
}

uint64_t bench_vm_hwm(void) { return status_kb("VmHWM:"); }
uint64_t bench_vm_rss(void) { return status_kb("VmRSS:"); }

int bench_child(const char *mode, uint64_t n, double *out, int max) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], 1);
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, n);
    execl("/proc/self/exe", "loop_bench", "--child", mode, num, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  FILE *f = fdopen(fd[0], "r");
  char line[1024] = "";
  if (!f || !fgets(line, sizeof line, f)) line[0] = 0;
  if (f) fclose(f);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  int k = 0;
  char *p = line, *end;
  while (k < max) {
    double v = strtod(p, &end);
    if (end == p) break;
    out[k++] = v;
    p = end;
  }
  return k;
}

const char *bench_fmt(char *buf, size_t size, double v, const char *unit) {
  static const struct {
    const char *unit;
    const char *names[4];
    double step;
  } scales[] = {
      {"ns", {"ns", "us", "ms", "s"}, 1000},
      {"B", {"B", "KiB", "MiB", "GiB"}, 1024},
  };
  const char *u = unit;
  for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++) {
    if (strcmp(unit, scales[i].unit) != 0) continue;
    int k = 0;
    while (k < 3 && v >= scales[i].step * (scales[i].step == 1024 ? 10 : 1)) {
      v /= scales[i].step;
      k++;
    }
    u = scales[i].names[k];
  }
  int prec = v < 10 ? 2 : v < 100 ? 1 : 0;
  snprintf(buf, size, "%.*f %s", prec, v, u);
  return buf;
}

static void print_row(const char *measure, const char *errand, const char *base,
                      const char *ratio, const char *note) {
  printf("row\t%s\t%s\t%s\t%s\t%s\n", measure, errand, base, ratio, note ? note : "");
  fflush(stdout);
}

void bench_row(const char *measure, double errand, const char *unit, const char *base_name,
               double base, const char *base_unit, const char *note) {
  char e[64], b[64], bb[192], r[32] = "";
  bench_fmt(e, sizeof e, errand, unit);
  bench_fmt(b, sizeof b, base, base_unit ? base_unit : unit);
  snprintf(bb, sizeof bb, "%s: %s", base_name, b);
  if (base > 0) snprintf(r, sizeof r, "%.2fx", errand / base);
  print_row(measure, e, bb, r, note);
}

void bench_row_na(const char *measure, double errand, const char *unit, const char *why,
                  const char *note) {
  char e[64];
  print_row(measure, bench_fmt(e, sizeof e, errand, unit), why, "", note);
}

void bench_row_goal(const char *measure, double errand, const char *unit, const char *base_name,
                    double base, double goal_ratio) {
  char note[64];
  bool ok = base > 0 && errand / base <= goal_ratio;
  snprintf(note, sizeof note, "goal <= %.2gx: %s", goal_ratio, ok ? "ok" : "MISS");
  bench_row(measure, errand, unit, base_name, base, unit, note);
}
