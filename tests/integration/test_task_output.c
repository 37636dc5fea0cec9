/* What prefork tasks print: a worker in a process of its own (forked from
 * this test, so it has the tasks below) on a real SQLite file.
 *
 *   - a task's stdout and stderr lines reach the worker's log, each with the
 *     task's name and id, a last line without its newline too, a long line
 *     cut, control characters escaped;
 *   - a task printing 10 MB ends, the tasks beside it go on, and what is
 *     over the rate is dropped with a note saying how much;
 *   - a worker whose stdout and stderr are a pipe nobody reads still runs
 *     such a task to its end, and the tasks after it. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static harness_t H;
static pid_t g_worker = -1;
static char g_log[300];

static int setup(void **state) {
  h_setup(&H, NULL);
  snprintf(g_log, sizeof g_log, "%s/worker.log", H.dir);
  return 0;
}

static int teardown(void **state) {
  if (g_worker > 0) h_stop(g_worker, SIGKILL);
  g_worker = -1;
  h_teardown(&H);
  return 0;
}

/* ---- the tasks ---- */

static int add1(er_task_t *t, json_t **result) {
  *result = json_integer(json_integer_value(json_array_get(er_task_args(t), 0)) + 1);
  return 0;
}
ER_TASK("add1", add1)

/* A line on each stream, a line of 5000 x, an escape, and a last line with
 * no newline. */
static int say(er_task_t *t, json_t **result) {
  printf("hello from say\n");
  fprintf(stderr, "a warning from say\n");
  char big[5001];
  memset(big, 'x', 5000);
  big[5000] = 0;
  printf("%s\n", big);
  printf("bell\a here\n");
  printf("no newline at the end");
  *result = json_true();
  return 0;
}
ER_TASK("say", say)

/* args[0] lines of 100 bytes, on stdout and stderr in turn: 10 MB for
 * 100,000. */
static int flood(er_task_t *t, json_t **result) {
  json_int_t n = json_integer_value(json_array_get(er_task_args(t), 0));
  char line[101];
  memset(line, 'f', 99);
  line[99] = '\n';
  line[100] = 0;
  for (json_int_t i = 0; i < n; i++) fputs(line, i % 2 ? stderr : stdout);
  *result = json_integer(n);
  return 0;
}
ER_TASK("flood", flood)

/* ---- helpers ---- */

static void start_worker(int concurrency, int out_fd, int err_fd) {
  er_worker_opts_t o = {.pool = ER_POOL_PREFORK, .concurrency = concurrency, .quiet = true};
  g_worker = h_worker_fork(&H, o, out_fd, err_fd);
}

static void start_worker_logging(int concurrency) {
  int fd = open(g_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  assert_true(fd >= 0);
  start_worker(concurrency, fd, fd);
  close(fd);
}

static void stop_worker(void) {
  assert_true(WIFEXITED(h_stop(g_worker, SIGTERM)));
  g_worker = -1;
}

static void assert_succeeds(const er_id_t *id) {
  er_task_rec_t *r = h_wait(&H, id->text, 60000);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  er_task_rec_free(r);
}

static size_t count(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p++) n++;
  return n;
}

/* ---- tests ---- */

static void output_reaches_the_log(void **s) {
  start_worker_logging(1);
  er_id_t id;
  h_send(&H, "say", NULL, NULL, &id);
  assert_succeeds(&id);
  stop_worker();
  char *log = h_read_file(g_log);
  char want[300];
  snprintf(want, sizeof want, "task say[%s] stdout: hello from say\n", id.text);
  assert_non_null(strstr(log, want));
  snprintf(want, sizeof want, "task say[%s] stderr: a warning from say\n", id.text);
  assert_non_null(strstr(log, want));
  snprintf(want, sizeof want, "task say[%s] stdout: bell\\x07 here\n", id.text);
  assert_non_null(strstr(log, want));
  snprintf(want, sizeof want, "task say[%s] stdout: no newline at the end\n", id.text);
  assert_non_null(strstr(log, want));
  /* The long line: cut, said so, and none of its rest logged as a line. */
  snprintf(want, sizeof want, "task say[%s] stdout: xxxx", id.text);
  const char *cut = strstr(log, want);
  assert_non_null(cut);
  const char *eol = strchr(cut, '\n');
  assert_true(eol - cut < 1100);
  assert_non_null(strstr(cut, " [line cut]\n"));
  assert_int_equal(count(log, "stdout: xxxx"), 1);
  free(log);
}

static void a_flood_is_dropped_with_a_note(void **s) {
  start_worker_logging(2);
  er_id_t big, small[5];
  h_send(&H, "flood", "[100000]", NULL, &big);
  for (int i = 0; i < 5; i++) h_send(&H, "add1", "[1]", NULL, &small[i]);
  for (int i = 0; i < 5; i++) assert_succeeds(&small[i]);
  assert_succeeds(&big);
  stop_worker();
  char *log = h_read_file(g_log);
  char want[300];
  snprintf(want, sizeof want, "task flood[%s] stdout: ffff", big.text);
  assert_non_null(strstr(log, want));
  snprintf(want, sizeof want, "task flood[%s]: ", big.text);
  const char *note = strstr(log, want);
  assert_non_null(note);
  assert_non_null(strstr(note, " lines of output dropped"));
  size_t shown = count(log, "out: ffff") + count(log, "err: ffff");
  print_message("%zu of 100000 lines logged\n", shown);
  assert_true(shown < 50000);
  /* Every line is either logged or counted in a note. */
  unsigned long long dropped = 0;
  for (const char *p = log; (p = strstr(p, want)); p++) dropped += strtoull(p + strlen(want), NULL, 10);
  assert_int_equal(dropped + shown, 100000);
  free(log);
}

static void a_worker_nobody_reads_does_not_block(void **s) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  start_worker(1, fds[1], fds[1]);
  close(fds[1]); /* fds[0] stays open, unread: writes fill the pipe, then would block */
  er_id_t big, after;
  h_send(&H, "flood", "[100000]", NULL, &big);
  h_send(&H, "add1", "[1]", NULL, &after);
  assert_succeeds(&big);
  assert_succeeds(&after);
  stop_worker();
  close(fds[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(output_reaches_the_log, setup, teardown),
      cmocka_unit_test_setup_teardown(a_flood_is_dropped_with_a_note, setup, teardown),
      cmocka_unit_test_setup_teardown(a_worker_nobody_reads_does_not_block, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
