/* Histograms of task durations a worker keeps (run time, round trip from
 * created to finished) and publishes in its heartbeat; the HTTP server's
 * /metrics sums the live workers' ones. Fixed buckets, so that adding one
 * duration is a few compares and an increment on the worker's loop thread,
 * and so that every worker's histograms add up bucket by bucket. */
#ifndef ER_QUEUE_HISTOGRAM_H
#define ER_QUEUE_HISTOGRAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The buckets' upper bounds in seconds (1 ms .. 60 s), then +Inf. */
#define ER__HIST_NB 15
extern const double er__hist_le[ER__HIST_NB];

/* One histogram: counts per bucket (the last one past every bound), all in
 * all, and the sum of the durations. Zero-initialised: empty. Not
 * thread-safe: one thread adds to it. */
typedef struct er__hist {
  uint64_t bucket[ER__HIST_NB + 1];
  uint64_t count;
  int64_t sum_ms;
} er__hist_t;

/* Counts one duration of ms milliseconds (a negative one as 0). */
void er__hist_add(er__hist_t *h, int64_t ms);
/* The histogram as a heartbeat carries it (new; NULL when out of memory):
 * {"le": [bounds...], "buckets": [cumulative counts, one per bound and one
 * for +Inf], "count": n, "sum_ms": n}. */
json_t *er__hist_json(const er__hist_t *h);

/* A sum of histograms as /metrics shows it: cumulative counts. */
typedef struct er__hist_sum {
  uint64_t cum[ER__HIST_NB + 1];
  uint64_t count;
  int64_t sum_ms;
} er__hist_sum_t;
/* Adds a heartbeat's histogram o (er__hist_json's shape) to sum; false,
 * adding nothing, when o has another shape (another errand's buckets). */
bool er__hist_sum_add(er__hist_sum_t *sum, const json_t *o);

#endif
