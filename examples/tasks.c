/*
 * Example tasks, built into a library a worker loads:
 *
 *   errand worker -A ./build/libexample_tasks.so
 *   errand send add --args '[2, 3]' --wait          # prints 5
 *
 * add       returns the sum of its two arguments
 * sleep     sleeps for args[0] seconds (fractions allowed), returns them
 * fail      fails with the message in args[0]
 * crash     dies by SIGSEGV: the worker fails the task and replaces its child
 * progress  reports progress while it sleeps args[0] seconds
 * flaky     asks for a retry until it has been retried args[0] times
 * fanout    a tasklet task: sends args[0] `add` subtasks, awaits them all and
 *           returns the sum of their results, without holding a worker slot
 * xsum      the sum of a JSON array of numbers (args[0]): the usual chord
 *           callback, which gets its header's results as that array
 * send_email "mails" the user its context names (sent by examples/webapp.c with
 *           the caller of POST /signup): logs and returns "mail to USER: welcome"
 */
#include <errand.h>
#include <errand/client.h>
#include <errand/task.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

static int64_t arg_int(er_task_t *t, size_t i) {
  return json_integer_value(json_array_get(er_task_args(t), i));
}

static double arg_number(er_task_t *t, size_t i) {
  return json_number_value(json_array_get(er_task_args(t), i));
}

/* Sleeps the whole time, even when a signal (such as the revocation notice)
 * interrupts it. */
static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static int add(er_task_t *t, json_t **result) {
  json_t *args = er_task_args(t);
  if (json_array_size(args) != 2 || !json_is_integer(json_array_get(args, 0)) ||
      !json_is_integer(json_array_get(args, 1)))
    return er_task_fail(t, ER_EINVAL, "add takes two integers");
  *result = json_integer(arg_int(t, 0) + arg_int(t, 1));
  return 0;
}
ER_TASK("add", add)

static int sleep_task(er_task_t *t, json_t **result) {
  double s = arg_number(t, 0);
  sleep_s(s);
  *result = json_real(s);
  return 0;
}
ER_TASK("sleep", sleep_task)

static int fail(er_task_t *t, json_t **result) {
  const char *msg = json_string_value(json_array_get(er_task_args(t), 0));
  return er_task_fail(t, ER_EFAIL, "%s", msg ? msg : "this task always fails");
}
ER_TASK("fail", fail, .max_retries = ER_RETRIES_NONE)

static int crash(er_task_t *t, json_t **result) {
  raise(SIGSEGV);
  return 0;
}
ER_TASK("crash", crash, .max_retries = ER_RETRIES_NONE)

static int progress(er_task_t *t, json_t **result) {
  double s = arg_number(t, 0);
  int steps = 20;
  for (int i = 1; i <= steps; i++) {
    int rc = er_task_check(t); /* revoked, or past the soft time limit */
    if (rc) return er_task_fail(t, rc, "stopped at step %d", i);
    sleep_s(s / steps);
    er_task_progress(t, (double)i / steps, i < steps ? "working" : "done");
  }
  *result = json_integer(steps);
  return 0;
}
ER_TASK("progress", progress)

static int flaky(er_task_t *t, json_t **result) {
  int want = (int)arg_int(t, 0);
  if (er_task_retries(t) < want)
    return er_task_retry(t, 10, ER_EUNAVAILABLE, "not yet (retry %d of %d)", er_task_retries(t), want);
  *result = json_integer(er_task_retries(t));
  return 0;
}
ER_TASK("flaky", flaky, .max_retries = 5)

static int fanout(er_task_t *t, json_t **result) {
  int64_t n = arg_int(t, 0);
  if (n <= 0 || n > 1000) return er_task_fail(t, ER_EINVAL, "fanout takes 1..1000");
  er_client_t *c = er_task_client(t);
  er_loop_t *loop = er_task_loop(t);
  er_future_t **subs = calloc((size_t)n, sizeof *subs);
  if (!subs) return er_task_fail(t, ER_ENOMEM, "out of memory");
  int rc = 0;
  for (int64_t i = 0; i < n; i++) {
    json_t *args = json_pack("[I, I]", (json_int_t)i, (json_int_t)i);
    er_future_t *sent = er_send_async(c, loop, "add", args, NULL, NULL);
    json_decref(args);
    rc = er_await(sent); /* the send, on the thread pool: the loop goes on */
    if (rc == 0) subs[i] = er_result_future(c, loop, json_string_value(er_future_json(sent)), -1);
    er_future_unref(sent);
    if (rc < 0) break;
  }
  int64_t sum = 0;
  if (rc == 0) rc = er_await_all(subs, (size_t)n); /* suspends; holds no worker slot */
  for (int64_t i = 0; i < n; i++) {
    if (subs[i]) sum += json_integer_value(er_future_json(subs[i]));
    er_future_unref(subs[i]);
  }
  free(subs);
  if (rc < 0) return er_task_fail(t, rc, "a subtask failed: %s", er_error_message(er_last_error()));
  *result = json_integer(sum);
  return 0;
}
ER_TASK("fanout", fanout, .tasklet = true)

/* The user comes in the task's context, put there by the web request that
 * sent it (examples/webapp.c), not in its args: the task reads who asked the
 * way pymacaron's async tasks do. A real one would call a mail service. */
static int send_email(er_task_t *t, json_t **result) {
  const char *user = json_string_value(json_object_get(er_task_context(t), "user"));
  if (!user) return er_task_fail(t, ER_EINVAL, "send_email: the task's context names no user");
  er_log(ER_LOG_INFO, "mail to %s: welcome", user);
  *result = json_sprintf("mail to %s: welcome", user);
  return *result ? 0 : er_task_fail(t, ER_ENOMEM, "out of memory");
}
ER_TASK("send_email", send_email, .max_retries = ER_RETRIES_NONE)

static int xsum(er_task_t *t, json_t **result) {
  json_t *nums = json_array_get(er_task_args(t), 0), *v;
  if (!json_is_array(nums)) return er_task_fail(t, ER_EINVAL, "xsum takes an array of numbers");
  size_t i;
  json_int_t isum = 0;
  double dsum = 0;
  bool real = false;
  json_array_foreach(nums, i, v) {
    if (!json_is_number(v)) return er_task_fail(t, ER_EINVAL, "xsum: item %zu is not a number", i);
    real |= json_is_real(v);
    if (json_is_integer(v)) isum += json_integer_value(v);
    dsum += json_number_value(v);
  }
  *result = real ? json_real(dsum) : json_integer(isum);
  return 0;
}
ER_TASK("xsum", xsum, .max_retries = ER_RETRIES_NONE)
