/* A real worker meets a stored task that cannot be decoded (a corrupted row,
 * a foreign script): it drains the queue past it, the task ends FAILURE
 * saying why, and the worker then idles instead of spinning. On a SQLite
 * file, and on a private redis-server (skipped when none is installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#ifdef ER_HAVE_REDIS
#include <hiredis/hiredis.h>
#endif

#include "harness.h"

static harness_t H;
static bool g_redis, g_have_redis;
static pid_t g_worker = -1;

static int setup_sqlite(void **state) {
  h_setup(&H, NULL);
  g_redis = false;
  return 0;
}

static int setup_redis(void **state) {
  g_redis = true;
  g_have_redis = h_setup_redis(&H); /* else the test skips */
  return 0;
}

static int teardown(void **state) {
  if (g_worker > 0) h_stop(g_worker, SIGKILL);
  g_worker = -1;
  if (!g_redis) h_teardown(&H);
  else if (g_have_redis) h_teardown_redis(&H);
  return 0;
}

/* Overwrites the stored args of task id with text, behind the store's back. */
static void corrupt_args(const char *id, const char *text) {
  if (!g_redis) {
    char path[400];
    snprintf(path, sizeof path, "%s/errand.db", H.dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *sql = sqlite3_mprintf("UPDATE tasks SET args = %Q WHERE id = %Q", text, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_free(sql);
    sqlite3_close(db);
    return;
  }
#ifdef ER_HAVE_REDIS
  /* redis://127.0.0.1:PORT/0?prefix=t: the task hash is errand:{t}:task:ID */
  const char *colon = strrchr(H.url, ':');
  assert_non_null(colon);
  redisContext *c = redisConnect("127.0.0.1", atoi(colon + 1));
  assert_true(c && !c->err);
  redisReply *r = redisCommand(c, "HSET errand:{t}:task:%s args %s", id, text);
  assert_true(r && r->type == REDIS_REPLY_INTEGER);
  freeReplyObject(r);
  redisFree(c);
#else
  fail_msg("built without Redis");
#endif
}

/* CPU seconds the process has used (user + system), from /proc. */
static double cpu_seconds(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* past the command name */
  assert_non_null(p);
  unsigned long ut = 0, st = 0;
  /* fields after ')': state(3) ... utime(14) stime(15) */
  assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
                   2);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

#define NGOOD 12

static void worker_drains_past_a_poisoned_task(void **state) {
  if (g_redis && !g_have_redis) skip(); /* redis-server is not installed */
  er_id_t good[NGOOD], bad[2];
  for (int i = 0; i < NGOOD; i++) {
    h_send(&H, "add", "[1, 2]", NULL, &good[i]);
    if (i % 6 == 2) h_send(&H, "add", "[3, 4]", NULL, &bad[i / 6]);
  }
  corrupt_args(bad[0].text, "[1,");
  corrupt_args(bad[1].text, "{\"not\": \"an array\"}");
  g_worker = h_worker(&H, "threads", 2, NULL);
  for (int i = 0; i < NGOOD; i++) h_wait_state(&H, good[i].text, ER_STATE_SUCCESS, 60000);
  static const char *const why[] = {"task record cannot be decoded: args:",
                                    "task record cannot be decoded: args: not an array"};
  for (int i = 0; i < 2; i++) {
    h_wait_state(&H, bad[i].text, ER_STATE_FAILURE, 60000);
    er_task_rec_t *r = NULL;
    assert_int_equal(er_status(H.client, bad[i].text, NULL, &r), 0);
    const char *msg = json_string_value(json_object_get(r->error, "message"));
    if (!msg || !strstr(msg, why[i])) fail_msg("error: %s", msg ? msg : "(none)");
    er_task_rec_free(r);
  }
  /* and `errand status` tells it */
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "status", bad[0].text, NULL), 0);
  if (!strstr(out, "FAILURE") || !strstr(out, "cannot be decoded"))
    fail_msg("status:\n%s%s", out, err);
  free(out);
  free(err);
  /* Idle now: an idle worker uses next to no CPU, one that spins on the
   * task a whole core (a loaded machine only makes the idle one idler). */
  double before = cpu_seconds(g_worker);
  sleep(2);
  double used = cpu_seconds(g_worker) - before;
  if (used > 0.5) fail_msg("the idle worker used %.2f s of CPU in 2 s", used);
  /* new work still runs */
  er_id_t more;
  h_send(&H, "add", "[5, 6]", NULL, &more);
  h_wait_state(&H, more.text, ER_STATE_SUCCESS, 60000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(worker_drains_past_a_poisoned_task, setup_sqlite, teardown),
#ifdef ER_HAVE_REDIS
      cmocka_unit_test_setup_teardown(worker_drains_past_a_poisoned_task, setup_redis, teardown),
#endif
  };
  return cmocka_run_group_tests_name("a poisoned task on a real worker", tests, NULL, NULL);
}
