/*
 * The timers benchmark's task library (qbench_timers.c):
 *   tick  does nothing: a delayed task whose start is measured
 *   spin  runs until revoked, looking every millisecond (er_task_check), so a
 *         revoke's latency is the worker's and not the task's
 */
#include <errand/task.h>
#include <time.h>

static int tick(er_task_t *t, json_t **result) {
  *result = NULL;
  return 0;
}
ER_TASK("tick", tick, .max_retries = ER_RETRIES_NONE)

static int spin(er_task_t *t, json_t **result) {
  struct timespec ms = {0, 1000000};
  for (;;) {
    int rc = er_task_check(t);
    if (rc) return er_task_fail(t, rc, "stopped");
    nanosleep(&ms, NULL);
  }
}
ER_TASK("spin", spin, .max_retries = ER_RETRIES_NONE)
