/* libpbench_tasks.so: the plain task the pipeline benchmark sets beside its
 * stages, Celery's `add`: [x, y] gives x + y. */
#include <errand/task.h>

static int add(er_task_t *t, json_t **result) {
  json_t *args = er_task_args(t);
  *result = json_integer(json_integer_value(json_array_get(args, 0)) +
                         json_integer_value(json_array_get(args, 1)));
  return 0;
}
ER_TASK("add", add)
