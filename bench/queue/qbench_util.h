/* Helpers shared by the queue benchmark's C programs: a monotonic clock,
 * percentiles, result lines and option parsing.
 *
 * Every program prints its figures as lines "R<TAB>key<TAB>value" on stdout;
 * bench/queue/run collects them into the table. Anything else is a comment. */
#ifndef QBENCH_UTIL_H
#define QBENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

double qb_now(void); /* seconds, CLOCK_MONOTONIC */
void qb_sleep_ms(double ms);
/* Prints "R\t<prefix><key>\t<value>". */
void qb_result(const char *prefix, const char *key, double value);
/* The p-th percentile (0..100) of v[0..n), nearest rank; sorts v. */
double qb_percentile(double *v, size_t n, double p);
/* Emits <prefix>p50_ms, p99_ms, mean_ms, max_ms for latencies in seconds. */
void qb_latency_results(const char *prefix, double *lat_s, size_t n);
/* "--name VALUE" from argv, or dflt. */
const char *qb_opt(int argc, char **argv, const char *name, const char *dflt);
long qb_opt_long(int argc, char **argv, const char *name, long dflt);
void qb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Starts argv[0] with argv (NULL-terminated) in a child; dies if it cannot
 * fork. The child exits 127 when the program cannot be run. */
pid_t qb_spawn(char *const argv[]);
/* Stops a child we started: SIGTERM, then SIGKILL after grace_s; reaps it. */
void qb_stop_child(pid_t pid, double grace_s);
/* CPU seconds (user + system) this process has used: the harness's own cost. */
double qb_self_cpu(void);

#endif
