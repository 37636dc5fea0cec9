/* A second task library for the tests, with a task set that differs from
 * the examples' (no "add"): a worker started with it on the same queue as
 * one with the examples lacks some of the queue's tasks. */
#include <errand.h>

static int mul(er_task_t *t, json_t **result) {
  json_t *args = er_task_args(t);
  *result = json_integer(json_integer_value(json_array_get(args, 0)) *
                         json_integer_value(json_array_get(args, 1)));
  return 0;
}
ER_TASK("mul", mul)
