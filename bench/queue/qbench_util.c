/* See qbench_util.h. */
#include "qbench_util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double qb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void qb_sleep_ms(double ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000 * (double)(time_t)(ms / 1000)) * 1e6)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

void qb_result(const char *prefix, const char *key, double value) {
  printf("R\t%s%s\t%.6g\n", prefix ? prefix : "", key, value);
  fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double qb_percentile(double *v, size_t n, double p) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, cmp_double);
  size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999); /* nearest rank, 1-based */
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return v[rank - 1];
}

void qb_latency_results(const char *prefix, double *lat_s, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += lat_s[i];
  char key[128];
  snprintf(key, sizeof key, "p50_ms");
  qb_result(prefix, key, 1e3 * qb_percentile(lat_s, n, 50));
  qb_result(prefix, "p99_ms", 1e3 * qb_percentile(lat_s, n, 99));
  qb_result(prefix, "mean_ms", n ? 1e3 * sum / (double)n : 0);
  qb_result(prefix, "max_ms", n ? 1e3 * lat_s[n - 1] : 0);
}

const char *qb_opt(int argc, char **argv, const char *name, const char *dflt) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return dflt;
}

long qb_opt_long(int argc, char **argv, const char *name, long dflt) {
  const char *v = qb_opt(argc, argv, name, NULL);
  return v ? strtol(v, NULL, 10) : dflt;
}

void qb_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("qbench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

pid_t qb_spawn(char *const argv[]) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) qb_die("fork failed");
  if (pid == 0) {
    execv(argv[0], argv);
    perror(argv[0]);
    _exit(127);
  }
  return pid;
}

void qb_stop_child(pid_t pid, double grace_s) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  double deadline = qb_now() + grace_s;
  for (;;) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    if (qb_now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      return;
    }
    qb_sleep_ms(5);
  }
}

double qb_self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}
