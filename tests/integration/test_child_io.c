/* What a worker takes from its tasks, results and output: a worker in a
 * process of its own (forked from this test, so it has the tasks below) on a
 * real SQLite file; for results one slot, so that "the next task runs"
 * proves the slot was freed.
 *
 *   - a string result with a NUL byte is carried intact through a prefork
 *     child's pipe;
 *   - a result nested 100,000 deep fails its task (it is checked, and freed,
 *     without recursion, so neither the child nor a thread overflows);
 *   - one 1,999 deep, at --loglevel info, succeeds and its start is logged in
 *     every pool, a tasklet task's 64 KiB stack too; a tasklet task failing
 *     with such a result frees it there;
 *   - args and context as deep as a send takes (ER_SEND_MAX_DEPTH) reach a
 *     prefork child, the job line carrying each as a JSON text of its own;
 *   - a result no store can keep (a string that is not UTF-8, a key with a
 *     NUL byte) fails its task in every pool, naming where (on a thread the
 *     worker retried writing it for ever);
 *   - a result past the size limit fails its task naming the size and the
 *     limit; one under a raised limit crosses the pipe whole;
 *   - `errand worker --max-result-size` sets the limit;
 *   - a prefork child that answers with garbage, or with half a line, and
 *     exits fails its task, and a new child takes the next;
 *   - a prefork task's stdout and stderr lines reach the worker's log, each
 *     with the task's name and id, a last line without its newline too, a
 *     long line cut, control characters escaped;
 *   - or to a file of their own (opts.task_output);
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "queue/result_check.h"

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

static int nul_result(er_task_t *t, json_t **result) {
  *result = json_stringn("a\0b", 3);
  return 0;
}
ER_TASK("nul_result", nul_result)

/* [[[...[1]...]]], args[0] deep, built from the inside out (jansson would
 * recurse through it to build it any other way). */
static int deep_result(er_task_t *t, json_t **result) {
  json_int_t depth = json_integer_value(json_array_get(er_task_args(t), 0));
  json_t *v = json_integer(1);
  for (json_int_t i = 0; i < depth; i++) {
    json_t *a = json_array();
    json_array_append_new(a, v);
    v = a;
  }
  *result = v;
  return 0;
}
ER_TASK("deep_result", deep_result)
ER_TASK("deep_result_tasklet", deep_result, .tasklet = true)

/* {"a":{"a":...{"a":1}...}}, args[0] deep (jansson frees an object with
 * more stack a level than an array), and the task fails (args[1] 0) or asks
 * for a retry (1): the worker drops the result where the task ran. */
static int deep_result_fails(er_task_t *t, json_t **result) {
  json_int_t depth = json_integer_value(json_array_get(er_task_args(t), 0));
  json_t *v = json_integer(1);
  for (json_int_t i = 0; i < depth; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "a", v);
    v = o;
  }
  *result = v;
  if (json_integer_value(json_array_get(er_task_args(t), 1)))
    return er_task_retry(t, 0, ER_EFAIL, "again");
  return er_task_fail(t, ER_EFAIL, "failed with a deep result");
}
ER_TASK("deep_result_fails_tasklet", deep_result_fails, .tasklet = true, .max_retries = 1)

/* [levels of args, levels of context]: arrays and objects, each member's
 * first. */
static int depths(er_task_t *t, json_t **result) {
  json_int_t a = 0, c = 0;
  for (json_t *v = er_task_args(t); json_is_array(v); v = json_array_get(v, 0)) a++;
  for (json_t *v = er_task_context(t); json_is_object(v); v = json_object_get(v, "a")) c++;
  *result = json_pack("[I, I]", a, c);
  return 0;
}
ER_TASK("depths", depths)

/* {"ok":[1,"a\xff"]} (args[0] 0) or {"ok":1,"a\0b":2} (1): built with the
 * setters that do not check. */
static int unstorable(er_task_t *t, json_t **result) {
  json_t *o = json_object();
  if (json_integer_value(json_array_get(er_task_args(t), 0))) {
    json_object_set_new(o, "ok", json_integer(1));
    json_object_setn_nocheck(o, "a\0b", 3, json_integer(2));
  } else {
    json_object_set_new(o, "ok", json_pack("[i, o]", 1, json_stringn_nocheck("a\xff", 2)));
  }
  *result = o;
  return 0;
}
ER_TASK("unstorable", unstorable)
ER_TASK("unstorable_tasklet", unstorable, .tasklet = true)

/* A string of args[0] bytes: args[0] + 2 bytes of JSON. */
static int big_result(er_task_t *t, json_t **result) {
  size_t n = (size_t)json_integer_value(json_array_get(er_task_args(t), 0));
  char *s = malloc(n);
  if (!s) return ER_ENOMEM;
  memset(s, 'x', n);
  *result = json_stringn_nocheck(s, n);
  free(s);
  return 0;
}
ER_TASK("big_result", big_result)
ER_TASK("big_result_tasklet", big_result, .tasklet = true)

/* A prefork child gone wrong: writes args[0] on its answer socket (the only
 * socket a child has) where its answer should be, then exits. */
static int bad_answer(er_task_t *t, json_t **result) {
  const char *text = json_string_value(json_array_get(er_task_args(t), 0));
  for (int fd = 3; fd < 1024; fd++) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
      if (write(fd, text, strlen(text)) < 0) break;
      _exit(3);
    }
  }
  return er_task_fail(t, ER_EFAIL, "no answer socket found");
}
ER_TASK("bad_answer", bad_answer)

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

/* ---- a worker in a process of its own ---- */

/* One slot, one task at a time, on pool, with that limit. */
static void start_worker(er_pool_kind_t pool, size_t max_result_bytes) {
  er_worker_opts_t o = {.pool = pool,
                        .concurrency = 1,
                        .prefetch = 1,
                        .max_result_bytes = max_result_bytes,
                        .quiet = true};
  g_worker = h_worker_fork(&H, o, -1, -1);
}

/* A prefork worker writing its stdout and stderr to fd, or to g_log (-1). */
static void start_printing_worker(int concurrency, int fd) {
  int log = fd < 0 ? open(g_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600) : fd;
  assert_true(log >= 0);
  er_worker_opts_t o = {.pool = ER_POOL_PREFORK, .concurrency = concurrency, .quiet = true};
  g_worker = h_worker_fork(&H, o, log, log);
  if (fd < 0) close(log);
}

static void stop_worker(void) {
  assert_true(WIFEXITED(h_stop(g_worker, SIGTERM)));
  g_worker = -1;
}

/* Sends task(args) and waits for it; its record. */
static er_task_rec_t *run(const char *task, const char *args) {
  er_id_t id;
  h_send(&H, task, args, NULL, &id);
  return h_wait(&H, id.text, 60000);
}

/* The task failed with an error message containing want. */
static void assert_failed_with(er_task_rec_t *r, const char *want) {
  assert_int_equal(r->state, ER_STATE_FAILURE);
  const char *msg = json_string_value(json_object_get(r->error, "message"));
  assert_non_null(msg);
  if (!strstr(msg, want)) fail_msg("error '%s' lacks '%s'", msg, want);
  er_task_rec_free(r);
}

/* add1 runs on the one slot after whatever happened before. */
static void assert_slot_free(void) {
  er_task_rec_t *r = run("add1", "[41]");
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  assert_int_equal(json_integer_value(r->result), 42);
  er_task_rec_free(r);
}

static void assert_succeeds(const er_id_t *id) {
  er_task_rec_t *r = h_wait(&H, id->text, 60000);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  er_task_rec_free(r);
}

/* The log has "task <task>[<id>] <what>". */
static void assert_logged(const char *log, const char *task, const er_id_t *id, const char *what) {
  char want[300];
  snprintf(want, sizeof want, "task %s[%s] %s", task, id->text, what);
  if (!strstr(log, want)) fail_msg("the log lacks '%s'", want);
}

static size_t count(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p++) n++;
  return n;
}

/* ---- a NUL byte ---- */

/* Read from the file itself: what the store wrote, whatever it reads back. */
static char *stored_result(const char *id, int *state) {
  char path[300];
  snprintf(path, sizeof path, "%s/errand.db", H.dir);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(
      sqlite3_prepare_v2(db, "SELECT state, result FROM tasks WHERE id = ?1", -1, &st, NULL),
      SQLITE_OK);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  char *text = NULL;
  *state = -1;
  if (sqlite3_step(st) == SQLITE_ROW) {
    *state = sqlite3_column_int(st, 0);
    const char *t = (const char *)sqlite3_column_text(st, 1);
    text = t ? strdup(t) : NULL;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return text;
}

static void nul_in_a_result_is_carried(void **s) {
  start_worker(ER_POOL_PREFORK, 0);
  er_id_t id;
  h_send(&H, "nul_result", NULL, NULL, &id);
  char *text = NULL;
  int state = -1;
  for (int i = 0; i < 3000 && state != ER_STATE_SUCCESS && state != ER_STATE_FAILURE; i++) {
    free(text);
    usleep(10000);
    text = stored_result(id.text, &state);
  }
  assert_int_equal(state, ER_STATE_SUCCESS);
  assert_non_null(text);
  assert_string_equal(text, "\"a\\u0000b\"");
  free(text);
  assert_slot_free();
  stop_worker();
}

/* ---- the size, counted without encoding ---- */

/* What the check counts is what jansson writes: each value passes at its
 * compact size and fails one byte under it. */
static void result_sizes_are_jansson_s(void **s) {
  static const char *const texts[] = {
      "10", "-12345678901234", "0.1", "1e300", "-2.5e-7", "true", "false", "null", "\"\"",
      "\"q\\\"b\\\\s\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f/\u00e9\u4e2d\"", "[]", "{}",
      "[1,[2,[3,{}]],\"x\"]", "{\"a\":1,\"k\\\"\\n\\u0002\":[true,null],\"\":{\"z\":\"\"}}"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    json_t *v = json_loads(texts[i], JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    size_t size = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    char why[200] = "";
    if (er__result_check(v, size, why, sizeof why) != 0) fail_msg("%s: %s", texts[i], why);
    assert_int_equal(er__result_check(v, size - 1, why, sizeof why), ER_ETOOBIG);
    char want[64];
    snprintf(want, sizeof want, "result too large: %zu bytes (limit %zu;", size, size - 1);
    if (!strstr(why, want)) fail_msg("%s: '%s', not '%s'", texts[i], why, want);
    json_decref(v);
  }
  /* A value that shares its parts: 2^40 leaves as JSON, judged at once. */
  json_t *v = json_array();
  json_array_append_new(v, json_integer(1));
  for (int i = 0; i < 40; i++) {
    json_t *a = json_array();
    json_array_append(a, v);
    json_array_append_new(a, v);
    v = a;
  }
  char why[200];
  assert_int_equal(er__result_check(v, 1000, why, sizeof why), ER_ETOOBIG);
  assert_non_null(strstr(why, "result too large: more than 16000 bytes (limit 1000;"));
  json_decref(v);
}

/* ---- too deep ---- */

static void too_deep(er_pool_kind_t pool, const char *task) {
  start_worker(pool, 0);
  char want[64];
  snprintf(want, sizeof want, "result nested deeper than %d", ER__RESULT_MAX_DEPTH);
  assert_failed_with(run(task, "[100000]"), want);
  /* Just past the limit is as refused; at the limit, taken. */
  char args[32];
  snprintf(args, sizeof args, "[%d]", ER__RESULT_MAX_DEPTH + 1);
  assert_failed_with(run(task, args), want);
  snprintf(args, sizeof args, "[%d]", ER__RESULT_MAX_DEPTH);
  er_task_rec_t *r = run(task, args);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  er_task_rec_free(r);
  assert_slot_free();
  stop_worker();
}

static void too_deep_prefork(void **s) { too_deep(ER_POOL_PREFORK, "deep_result"); }
static void too_deep_threads(void **s) { too_deep(ER_POOL_THREADS, "deep_result"); }
static void too_deep_solo(void **s) { too_deep(ER_POOL_SOLO, "deep_result"); }
static void too_deep_tasklet(void **s) { too_deep(ER_POOL_PREFORK, "deep_result_tasklet"); }

/* ---- deep args ---- */

/* A send takes args and context ER_SEND_MAX_DEPTH levels deep, jansson's
 * limit: a prefork child reads them (wrapped in its job message they were
 * one level past it: "worker child cannot read its job"). */
static void sendable_depths_reach_a_child(void **s) {
  start_worker(ER_POOL_PREFORK, 0);
  char *args = malloc(2 * ER_SEND_MAX_DEPTH + 1);
  memset(args, '[', ER_SEND_MAX_DEPTH);
  memset(args + ER_SEND_MAX_DEPTH, ']', ER_SEND_MAX_DEPTH);
  args[2 * ER_SEND_MAX_DEPTH] = 0;
  json_t *ctx = json_object();
  for (int i = 1; i < ER_SEND_MAX_DEPTH; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "a", ctx);
    ctx = o;
  }
  er_id_t id;
  h_send(&H, "depths", args, &(er_send_opts_t){.context = ctx}, &id);
  free(args);
  json_decref(ctx);
  er_task_rec_t *r = h_wait(&H, id.text, 60000);
  const char *msg = json_string_value(json_object_get(r->error, "message"));
  if (r->state != ER_STATE_SUCCESS) fail_msg("state %d: %s", r->state, msg ? msg : "");
  assert_int_equal(json_integer_value(json_array_get(r->result, 0)), ER_SEND_MAX_DEPTH);
  assert_int_equal(json_integer_value(json_array_get(r->result, 1)), ER_SEND_MAX_DEPTH);
  er_task_rec_free(r);
  stop_worker();
}

/* ---- deep, at info level ---- */

/* At info level the worker logs each result's start: for a tasklet task on
 * the tasklet's stack, where json_dumps recursing through 1,999 levels
 * overflowed it and the worker died. The other pools run tasks on thread
 * stacks of megabytes, the worker's loop too. */
static void deep_logged(er_pool_kind_t pool, const char *task) {
  int log = open(g_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  assert_true(log >= 0);
  er_worker_opts_t o = {.pool = pool, .concurrency = 1, .prefetch = 1, .quiet = true};
  er_log_level_t was = er_log_get_level();
  er_log_set_level(ER_LOG_INFO); /* the forked worker's level */
  g_worker = h_worker_fork(&H, o, log, log);
  er_log_set_level(was);
  close(log);
  char args[32];
  snprintf(args, sizeof args, "[%d]", ER__RESULT_MAX_DEPTH - 1);
  er_id_t id;
  h_send(&H, task, args, NULL, &id);
  er_task_rec_t *r = h_wait(&H, id.text, 60000);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  er_task_rec_free(r);
  /* Failing, and retried then failing, with the same result. */
  if (strstr(task, "tasklet")) {
    snprintf(args, sizeof args, "[%d, 0]", ER__RESULT_MAX_DEPTH - 1);
    assert_failed_with(run("deep_result_fails_tasklet", args), "failed with a deep result");
    snprintf(args, sizeof args, "[%d, 1]", ER__RESULT_MAX_DEPTH - 1);
    assert_failed_with(run("deep_result_fails_tasklet", args), "again");
  }
  assert_slot_free();
  stop_worker();
  /* The first 80 bytes of the result's JSON, and "..." for the rest. */
  char want[128] = "";
  memset(want, '[', 80);
  strcat(want, "...\n");
  char *text = h_read_file(g_log);
  assert_logged(text, task, &id, "succeeded in ");
  if (!strstr(text, want)) fail_msg("the log lacks the result's start:\n%s", text);
  free(text);
}

static void deep_logged_prefork(void **s) { deep_logged(ER_POOL_PREFORK, "deep_result"); }
static void deep_logged_threads(void **s) { deep_logged(ER_POOL_THREADS, "deep_result"); }
static void deep_logged_solo(void **s) { deep_logged(ER_POOL_SOLO, "deep_result"); }
static void deep_logged_tasklet(void **s) { deep_logged(ER_POOL_SOLO, "deep_result_tasklet"); }

/* ---- what no store can keep ---- */

static void unstorable_in(er_pool_kind_t pool, const char *task) {
  start_worker(pool, 0);
  assert_failed_with(run(task, "[0]"),
                     "result cannot be stored as JSON: result.ok[1]: invalid UTF-8");
  assert_failed_with(run(task, "[1]"),
                     "result cannot be stored as JSON: result.a\\x00b: a key with a NUL byte");
  assert_slot_free();
  stop_worker();
}

static void unstorable_prefork(void **s) { unstorable_in(ER_POOL_PREFORK, "unstorable"); }
static void unstorable_threads(void **s) { unstorable_in(ER_POOL_THREADS, "unstorable"); }
static void unstorable_solo(void **s) { unstorable_in(ER_POOL_SOLO, "unstorable"); }
static void unstorable_tasklet(void **s) { unstorable_in(ER_POOL_PREFORK, "unstorable_tasklet"); }

/* ---- too large ---- */

#define LIMIT (1u << 20)

static void too_large(er_pool_kind_t pool, const char *task) {
  start_worker(pool, LIMIT);
  char args[32], want[200];
  /* 2 MiB of x: 2 MiB + 2 bytes of JSON. */
  snprintf(args, sizeof args, "[%u]", 2 * LIMIT);
  snprintf(want, sizeof want,
           "result too large: %u bytes (limit %u; set --max-result-size / "
           "opts.max_result_bytes)",
           2 * LIMIT + 2, LIMIT);
  assert_failed_with(run(task, args), want);
  /* At the limit exactly: taken, and whole. */
  snprintf(args, sizeof args, "[%u]", LIMIT - 2);
  er_task_rec_t *r = run(task, args);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  assert_int_equal(json_string_length(r->result), LIMIT - 2);
  er_task_rec_free(r);
  snprintf(args, sizeof args, "[%u]", LIMIT - 1);
  snprintf(want, sizeof want, "result too large: %u bytes (limit %u;", LIMIT + 1, LIMIT);
  assert_failed_with(run(task, args), want);
  assert_slot_free();
  stop_worker();
}

static void too_large_prefork(void **s) { too_large(ER_POOL_PREFORK, "big_result"); }
static void too_large_threads(void **s) { too_large(ER_POOL_THREADS, "big_result"); }
static void too_large_solo(void **s) { too_large(ER_POOL_SOLO, "big_result"); }
static void too_large_tasklet(void **s) { too_large(ER_POOL_SOLO, "big_result_tasklet"); }

/* Without a limit set: 16 MiB, the store's max_payload being less. */
static void default_limit(void **s) {
  start_worker(ER_POOL_PREFORK, 0);
  char args[32], want[200];
  snprintf(args, sizeof args, "[%u]", 16u << 20);
  snprintf(want, sizeof want, "result too large: %u bytes (limit %u;", (16u << 20) + 2, 16u << 20);
  assert_failed_with(run("big_result", args), want);
  assert_slot_free();
  stop_worker();
}

/* `errand worker --max-result-size`: "5" is 1 byte, "50" is 2. */
static void the_command_takes_a_limit(void **s) {
  g_worker = h_worker(&H, "prefork", 1, "--max-result-size", "1", NULL);
  er_task_rec_t *r = run("add", "[2, 3]");
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  er_task_rec_free(r);
  assert_failed_with(run("add", "[20, 30]"), "result too large: 2 bytes (limit 1;");
  stop_worker();
  char *err = NULL;
  assert_int_equal(h_cli(&H, NULL, &err, "worker", "--max-result-size", "0", NULL), 2);
  assert_non_null(strstr(err, "--max-result-size: 0 is out of range"));
  free(err);
}

/* ---- a child that answers wrong ---- */

static void garbage_answer(void **s) {
  start_worker(ER_POOL_PREFORK, 0);
  assert_failed_with(run("bad_answer", "[\"this is not JSON\\n\"]"),
                     "worker child sent an unreadable answer");
  assert_slot_free();
  /* Half a line, then gone: the child's death is what the task hears. */
  assert_failed_with(run("bad_answer", "[\"{\\\"id\\\":\\\"\"]"),
                     "worker child exited with status 3");
  assert_slot_free();
  stop_worker();
}

/* ---- what tasks print ---- */

static void output_reaches_the_log(void **s) {
  start_printing_worker(1, -1);
  er_id_t id;
  h_send(&H, "say", NULL, NULL, &id);
  assert_succeeds(&id);
  stop_worker();
  char *log = h_read_file(g_log);
  assert_logged(log, "say", &id, "stdout: hello from say\n");
  assert_logged(log, "say", &id, "stderr: a warning from say\n");
  assert_logged(log, "say", &id, "stdout: bell\\x07 here\n");
  assert_logged(log, "say", &id, "stdout: no newline at the end\n");
  /* The long line: cut, said so, and none of its rest logged as a line. */
  assert_logged(log, "say", &id, "stdout: xxxx");
  const char *cut = strstr(log, "stdout: xxxx");
  assert_non_null(cut);
  const char *eol = strchr(cut, '\n');
  assert_true(eol - cut < 1100);
  assert_non_null(strstr(cut, " [line cut]\n"));
  assert_int_equal(count(log, "stdout: xxxx"), 1);
  free(log);
}

/* opts.task_output: the lines go to that file, not to the log. */
static void output_to_a_file(void **s) {
  char path[300];
  snprintf(path, sizeof path, "%s/tasks.out", H.dir);
  int log = open(g_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  assert_true(log >= 0);
  er_worker_opts_t o = {.concurrency = 1, .task_output = path, .quiet = true};
  g_worker = h_worker_fork(&H, o, log, log);
  close(log);
  er_id_t id;
  h_send(&H, "say", NULL, NULL, &id);
  assert_succeeds(&id);
  stop_worker();
  char *text = h_read_file(path);
  assert_logged(text, "say", &id, "stdout: hello from say\n");
  assert_logged(text, "say", &id, "stderr: a warning from say\n");
  free(text);
  text = h_read_file(g_log);
  assert_null(strstr(text, "hello from say"));
  free(text);
}

static void a_flood_is_dropped_with_a_note(void **s) {
  start_printing_worker(2, -1);
  er_id_t big, small[5];
  h_send(&H, "flood", "[100000]", NULL, &big);
  for (int i = 0; i < 5; i++) h_send(&H, "add1", "[1]", NULL, &small[i]);
  for (int i = 0; i < 5; i++) assert_succeeds(&small[i]);
  assert_succeeds(&big);
  stop_worker();
  char *log = h_read_file(g_log);
  assert_logged(log, "flood", &big, "stdout: ffff");
  char want[300];
  snprintf(want, sizeof want, "task flood[%s]: ", big.text);
  assert_non_null(strstr(strstr(log, want), " lines of output dropped"));
  size_t shown = count(log, "out: ffff") + count(log, "err: ffff");
  print_message("%zu of 100000 lines logged\n", shown);
  assert_true(shown < 50000);
  /* Every line is either logged or counted in a note. */
  unsigned long long dropped = 0;
  for (const char *p = log; (p = strstr(p, want)); p++)
    dropped += strtoull(p + strlen(want), NULL, 10);
  assert_int_equal(dropped + shown, 100000);
  free(log);
}

static void a_worker_nobody_reads_does_not_block(void **s) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  start_printing_worker(1, fds[1]);
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
      cmocka_unit_test(result_sizes_are_jansson_s),
      cmocka_unit_test_setup_teardown(nul_in_a_result_is_carried, setup, teardown),
      cmocka_unit_test_setup_teardown(too_deep_prefork, setup, teardown),
      cmocka_unit_test_setup_teardown(too_deep_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(too_deep_solo, setup, teardown),
      cmocka_unit_test_setup_teardown(too_deep_tasklet, setup, teardown),
      cmocka_unit_test_setup_teardown(sendable_depths_reach_a_child, setup, teardown),
      cmocka_unit_test_setup_teardown(deep_logged_prefork, setup, teardown),
      cmocka_unit_test_setup_teardown(deep_logged_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(deep_logged_solo, setup, teardown),
      cmocka_unit_test_setup_teardown(deep_logged_tasklet, setup, teardown),
      cmocka_unit_test_setup_teardown(unstorable_prefork, setup, teardown),
      cmocka_unit_test_setup_teardown(unstorable_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(unstorable_solo, setup, teardown),
      cmocka_unit_test_setup_teardown(unstorable_tasklet, setup, teardown),
      cmocka_unit_test_setup_teardown(too_large_prefork, setup, teardown),
      cmocka_unit_test_setup_teardown(too_large_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(too_large_solo, setup, teardown),
      cmocka_unit_test_setup_teardown(too_large_tasklet, setup, teardown),
      cmocka_unit_test_setup_teardown(default_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(the_command_takes_a_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(garbage_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(output_reaches_the_log, setup, teardown),
      cmocka_unit_test_setup_teardown(output_to_a_file, setup, teardown),
      cmocka_unit_test_setup_teardown(a_flood_is_dropped_with_a_note, setup, teardown),
      cmocka_unit_test_setup_teardown(a_worker_nobody_reads_does_not_block, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
