/*
 * The queue benchmark's task library: one task, "noop", that does nothing and
 * returns null, so the figures measure the queue and not the work.
 *
 *   errand worker -A build-qbench/bench/queue/libqbench_noop.so --store sqlite:/tmp/q.db
 *
 * Celery's and beanstalkd's sides of the benchmark run the same no-op
 * (qbench_celery.py, qbench_beanstalk.c).
 */
#include <errand/task.h>

static int noop(er_task_t *t, json_t **result) {
  (void)t;
  *result = NULL; /* null */
  return 0;
}
ER_TASK("noop", noop, .max_retries = ER_RETRIES_NONE)
