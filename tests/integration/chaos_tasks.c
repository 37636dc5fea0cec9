/* The chaos test's task library (test_chaos.c loads it into its workers).
 *
 * chaos.add [a, b]  returns a + b, after appending "ID ATTEMPT\n" to the file
 *                   named by $ERRAND_CHAOS_LOG: one record per execution, so
 *                   the test can count how often each task ran and in which
 *                   attempt. It sleeps 2 * (a % 5) ms first, so that a worker
 *                   killed at random often has a task running. */
#include <errand.h>
#include <errand/task.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One write per execution on an O_APPEND descriptor: records from processes
 * writing at once never interleave, and one killed mid-task leaves either its
 * whole line or none. */
static int record(er_task_t *t) {
  const char *path = getenv("ERRAND_CHAOS_LOG");
  if (!path) return er_task_fail(t, ER_EINVAL, "ERRAND_CHAOS_LOG is not set");
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return er_task_fail(t, ER_EIO, "open %s: %s", path, strerror(errno));
  char line[96];
  int n = snprintf(line, sizeof line, "%s %d\n", er_task_id(t), er_task_attempt(t));
  ssize_t w = write(fd, line, (size_t)n);
  close(fd);
  if (w != n) return er_task_fail(t, ER_EIO, "write %s: %s", path, strerror(errno));
  return 0;
}

static int chaos_add(er_task_t *t, json_t **result) {
  json_t *args = er_task_args(t);
  json_t *a = json_array_get(args, 0), *b = json_array_get(args, 1);
  if (json_array_size(args) != 2 || !json_is_integer(a) || !json_is_integer(b))
    return er_task_fail(t, ER_EINVAL, "chaos.add takes two integers");
  int64_t x = json_integer_value(a), y = json_integer_value(b);
  struct timespec ts = {0, (long)(x % 5) * 2000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  int rc = record(t);
  if (rc) return rc;
  *result = json_integer(x + y);
  return 0;
}
ER_TASK("chaos.add", chaos_add)
