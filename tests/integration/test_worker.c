/* The worker end to end: real `errand worker` processes on a real SQLite file
 * (and on a private redis-server where one is installed):
 *
 *   - a store held still (SQLite locked by another connection, redis-server
 *     stopped) does not stop the worker's loop: the tasks it holds still run,
 *     and their outcomes are written after;
 *   - revoking a running task reaches it within the revoke grace period,
 *     not at the next lease renewal;
 *   - a prefork child applies a revoke to the job it was sent for only, not
 *     to the job after (a revoke that came late) nor before (one that came
 *     early);
 *   - a reserved task whose lease was lost (the worker was stopped, the task
 *     taken by another attempt) is dropped without running;
 *   - a task its pool cannot take goes back to the queue (a worker in this
 *     process, its pool refusing a task by fault injection), and a pool
 *     that refuses everything for a while is not asked again at once;
 *   - er_worker_new out of memory answers an error and leaks nothing;
 *   - ER_RETRIES_NONE on a send means no retries;
 *   - the worker logs one line per task event, lists its tasks at start-up
 *     and shows its running and reserved tasks in its heartbeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "queue/pool.h"

static harness_t H;
static bool g_redis;
static pid_t g_child = -1; /* a worker forked by a test: killed if the test failed first */

static int setup(void **state) {
  h_setup(&H, NULL);
  return 0;
}

static int teardown(void **state) {
  if (g_child > 0) h_stop(g_child, SIGKILL);
  g_child = -1;
  h_teardown(&H);
  return 0;
}

static int setup_redis(void **state) {
  g_redis = h_setup_redis(&H);
  return 0;
}

static int teardown_redis(void **state) {
  if (g_redis) h_teardown_redis(&H);
  return 0;
}

/* ---- a stalled store ---- */

/* Holds the store still for 2.5 s, shorter than a call waits (busy_ms,
 * timeout_ms: 5 s): the worker's writes wait, then go in. Sets the times it
 * began and ended. */
static void stall_sqlite(int64_t *from, int64_t *to) {
  char path[300];
  snprintf(path, sizeof path, "%s/errand.db", H.dir);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
  *from = er_now_wall_ms();
  usleep(2500000);
  *to = er_now_wall_ms();
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static void stall_redis(int64_t *from, int64_t *to) {
  char path[300];
  snprintf(path, sizeof path, "%s/redis.pid", H.dir);
  char *text = h_read_file(path);
  pid_t pid = (pid_t)atoi(text);
  free(text);
  assert_true(pid > 0);
  assert_int_equal(kill(pid, SIGSTOP), 0);
  *from = er_now_wall_ms();
  usleep(2500000);
  *to = er_now_wall_ms();
  assert_int_equal(kill(pid, SIGCONT), 0);
}

static void a_stalled_store_does_not_stop_the_pool(void (*stall)(int64_t *, int64_t *)) {
  er_id_t ids[4];
  for (int i = 0; i < 4; i++) h_send(&H, "sleep", "[0.4]", NULL, &ids[i]);
  /* One thread, prefetch 4: the worker holds all four, two in the pool and
   * two waiting for it. */
  pid_t w = h_worker(&H, "threads", 1, NULL);
  for (int i = 0; i < 4; i++) h_wait_state(&H, ids[i].text, ER_STATE_STARTED, 10000);
  int64_t from, to;
  stall(&from, &to);
  /* Each outcome is stamped when its task ended. A worker whose loop waits
   * on the store (writing the first outcome) starts nothing meanwhile, so at
   * most that first one ends inside the stall; here the thread goes on to
   * the tasks waiting for it. */
  int inside = 0;
  for (int i = 0; i < 4; i++) {
    er_task_rec_t *r = h_wait(&H, ids[i].text, 10000);
    assert_int_equal(r->state, ER_STATE_SUCCESS);
    inside += r->finished_ms > from && r->finished_ms < to;
    er_task_rec_free(r);
  }
  print_message("%d of 4 tasks ended while the store was held still\n", inside);
  assert_true(inside >= 2);
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));
}

static void stalled_sqlite(void **s) { a_stalled_store_does_not_stop_the_pool(stall_sqlite); }

static void stalled_redis(void **s) {
  if (!g_redis) skip();
  a_stalled_store_does_not_stop_the_pool(stall_redis);
}

/* ---- revoking a running task ---- */

static void revoke_reaches_the_running_task(void) {
  /* The default lease (30 s) is renewed every 10 s: a revoke seen only at a
   * renewal would take up to that long, plus the 2 s grace. */
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t id;
  h_send(&H, "sleep", "[30]", NULL, &id);
  h_wait_state(&H, id.text, ER_STATE_STARTED, 10000);
  uint64_t t0 = er_now_mono_ms();
  assert_int_equal(er_revoke(H.client, id.text), 0);
  h_wait_state(&H, id.text, ER_STATE_REVOKED, 6000);
  print_message("revoked after %llu ms\n", (unsigned long long)(er_now_mono_ms() - t0));
  er_task_rec_t *r = h_wait(&H, id.text, 1000);
  assert_int_equal(json_integer_value(json_object_get(r->error, "signal")), SIGKILL);
  er_task_rec_free(r);
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));
}

static void revoke_sqlite(void **s) { revoke_reaches_the_running_task(); }

/* The Redis store tells a worker of revokes only with precise wake-ups. */
static void revoke_redis(void **s) {
  if (!g_redis) skip();
  er_store_t *st = NULL;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  er_watch_t watch = {.control = true};
  int rc = er_store_watch(st, &watch);
  er_store_close(st);
  if (rc == ER_ENOTSUP) {
    print_message("skipped: this Redis store has no precise wake-ups\n");
    skip();
  }
  revoke_reaches_the_running_task();
}

/* ---- revokes in a prefork child, job by job ---- */

int er__child_main(int fd, const char *store_url); /* prefork_child.c */
int er__child_revoke(pid_t pid, int seq);

/* Runs for args[0] ms, looking at er_task_check on the way. */
static int revoke_probe(er_task_t *t, json_t **result) {
  uint64_t end = er_now_mono_ms() + (uint64_t)json_integer_value(json_array_get(er_task_args(t), 0));
  do {
    int rc = er_task_check(t);
    if (rc) return rc;
    usleep(5000);
  } while (er_now_mono_ms() < end);
  *result = json_true();
  return 0;
}
ER_TASK("revoke_probe", revoke_probe)

/* Writes job number n (its id "job-n") running for ms: a header, then args,
 * kwargs and context, on one line; returns its answer's rc. */
static void child_send(FILE *to, int n, int ms) {
  fprintf(to,
          "{\"id\":\"job-%d\",\"task\":\"revoke_probe\",\"attempt\":1,\"retries\":0,"
          "\"soft\":0,\"max_retries\":0}[%d]{}{}\n",
          n, ms);
  fflush(to);
}

static int child_answer(FILE *from, int n) {
  char line[4096];
  assert_non_null(fgets(line, sizeof line, from));
  json_t *a = json_loads(line, 0, NULL);
  assert_non_null(a);
  char id[32];
  snprintf(id, sizeof id, "job-%d", n);
  assert_string_equal(json_string_value(json_object_get(a, "id")), id);
  int rc = (int)json_integer_value(json_object_get(a, "rc"));
  json_decref(a);
  return rc;
}

static void prefork_revokes_name_their_job(void **s) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  pid_t c = g_child = fork();
  assert_true(c >= 0);
  if (c == 0) {
    close(sv[0]);
    _exit(er__child_main(sv[1], H.url));
  }
  close(sv[1]);
  FILE *to = fdopen(sv[0], "w"), *from = fdopen(dup(sv[0]), "r");
  assert_non_null(to);
  assert_non_null(from);

  /* Late: a revoke for job 1 that comes after it answered. */
  child_send(to, 1, 0);
  assert_int_equal(child_answer(from, 1), 0);
  assert_int_equal(er__child_revoke(c, 1), 0);
  usleep(100000); /* let it land while the child waits for job 2 */
  child_send(to, 2, 200);
  assert_int_equal(child_answer(from, 2), 0);

  /* Early: a revoke for job 3 before it is written stops job 3 (not 2). */
  assert_int_equal(er__child_revoke(c, 3), 0);
  usleep(100000);
  child_send(to, 3, 20000);
  assert_int_equal(child_answer(from, 3), ER_EREVOKED);

  /* While it runs, and the job after is not touched. */
  child_send(to, 4, 20000);
  child_send(to, 5, 200);
  usleep(100000);
  assert_int_equal(er__child_revoke(c, 4), 0);
  assert_int_equal(child_answer(from, 4), ER_EREVOKED);
  assert_int_equal(child_answer(from, 5), 0);

  fclose(to);
  fclose(from);
  int status = 0;
  assert_int_equal(waitpid(c, &status, 0), c);
  g_child = -1;
  assert_true(WIFEXITED(status));
}

/* ---- a lost lease ---- */

static bool in_log(const char *log, const char *what, const char *id) {
  char needle[200];
  snprintf(needle, sizeof needle, "[%s] %s", id, what);
  return strstr(log, needle) != NULL;
}

static void lease_lost(void) {
  er_id_t ids[3];
  for (int i = 0; i < 3; i++) h_send(&H, "sleep", "[2]", NULL, &ids[i]);
  char log[300];
  snprintf(log, sizeof log, "%s/worker.log", H.dir);
  /* One thread, prefetch 4: one task runs, one waits in the pool, one in the
   * backlog. A 1 s lease, renewed every 333 ms. */
  pid_t w = h_worker_log(&H, log, true, "threads", 1, "--lease", "1", NULL);
  for (int i = 0; i < 3; i++) h_wait_state(&H, ids[i].text, ER_STATE_STARTED, 10000);
  kill(w, SIGSTOP);
  /* The leases end; housekeeping puts the tasks back; another worker takes
   * them (attempt 2). */
  er_store_t *st = NULL;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  size_t requeued = 0;
  for (int i = 0; i < 100 && requeued < 3; i++) {
    usleep(100000);
    er_maint_counts_t mc = {0};
    assert_int_equal(er_store_maintain(st, er_now_wall_ms(), &mc), 0);
    requeued += mc.requeued;
  }
  assert_int_equal(requeued, 3);
  const char *queues[] = {"default"};
  er_reserve_req_t req = {queues, 1, "another-worker", er_now_wall_ms(), 60000, 10};
  er_task_rec_t **recs = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(st, &req, &recs, &n), 0);
  assert_int_equal(n, 3);
  er_task_rec_free_array(recs, n);
  kill(w, SIGCONT);

  /* At its next renewal the worker learns the leases are lost: what it had
   * not started is dropped, what runs is stopped (a thread is told; this one
   * sleeps on). Each says so in the log when it is let go, so the log is
   * waited on first: the heartbeat alone may be one written before the
   * tasks were taken, and would say "nothing held" too early. */
  for (int i = 0; i < 150; i++) {
    char *now = h_read_file(log);
    int seen = 0;
    for (int k = 0; k < 3; k++) seen += now && in_log(now, "lease lost", ids[k].text);
    free(now);
    if (seen == 3) break;
    usleep(100000);
  }
  json_t *info = NULL;
  for (int i = 0; i < 100; i++) {
    usleep(100000);
    json_decref(info);
    info = h_worker_info(&H, w);
    if (info && !json_array_size(json_object_get(info, "active_tasks")) &&
        !json_array_size(json_object_get(info, "reserved_tasks")) &&
        json_integer_value(json_object_get(info, "active")) == 0)
      break;
  }
  assert_non_null(info);
  assert_int_equal(json_array_size(json_object_get(info, "active_tasks")), 0);
  assert_int_equal(json_array_size(json_object_get(info, "reserved_tasks")), 0);
  json_decref(info);
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));

  char *text = h_read_file(log);
  /* None of them ended here as if it were still this worker's; the one that
   * waited in the backlog never started. */
  int before = 0;
  for (int i = 0; i < 3; i++) {
    if (in_log(text, "succeeded", ids[i].text) || !in_log(text, "lease lost", ids[i].text))
      fprintf(stderr, "worker log, task %s:\n%s\n", ids[i].text, text);
    assert_false(in_log(text, "succeeded", ids[i].text));
    assert_true(in_log(text, "lease lost", ids[i].text));
    before += in_log(text, "lease lost before it started", ids[i].text);
  }
  assert_true(before >= 1);
  free(text);
  /* Each is still the other worker's, at attempt 2, untouched. */
  for (int i = 0; i < 3; i++) {
    er_task_rec_t *r = NULL;
    assert_int_equal(er_store_get(st, ids[i].text, NULL, &r), 0);
    assert_int_equal(r->state, ER_STATE_STARTED);
    assert_int_equal(r->attempt, 2);
    assert_string_equal(r->worker, "another-worker");
    er_task_rec_free(r);
  }
  er_store_close(st);
}

static void lease_lost_sqlite(void **s) { lease_lost(); }

static void lease_lost_redis(void **s) {
  if (!g_redis) skip();
  lease_lost();
}

/* ---- a pool that cannot take a task ---- */

static int in_process_add(er_task_t *t, json_t **result) {
  *result = json_integer(json_integer_value(json_array_get(er_task_args(t), 0)) + 1);
  return 0;
}
ER_TASK("in_process_add", in_process_add)

static const er__pool_ops_t *g_solo_ops;
static er__pool_ops_t g_refusing_ops;
static int g_refused;
static uint64_t g_refuse_ms, g_refuse_from; /* refuse everything for that long */

/* The solo pool, refusing the first task it is given, or every task for
 * g_refuse_ms from the first. */
static int refusing_submit(er__pool_t *p, er__job_t *j) {
  if (!g_refused++) {
    g_refuse_from = er_now_mono_ms();
    return ER_EBUSY;
  }
  if (er_now_mono_ms() - g_refuse_from < g_refuse_ms) return ER_EBUSY;
  return g_solo_ops->submit(p, j);
}

static er__pool_t *refusing_pool(er_pool_kind_t kind) {
  er__pool_t *p = er__pool_solo_new();
  g_solo_ops = p->ops;
  g_refusing_ops = *p->ops;
  g_refusing_ops.submit = refusing_submit;
  p->ops = &g_refusing_ops;
  return p;
}

/* Runs a worker in a child process on the refusing pool; returns its pid. */
static pid_t refused_worker(uint64_t refuse_ms) {
  pid_t w = g_child = fork();
  assert_true(w >= 0);
  if (w == 0) {
    g_refuse_ms = refuse_ms;
    er__pool_new_hook = refusing_pool;
    er_worker_opts_t o = {.store_url = H.url, .pool = ER_POOL_SOLO, .concurrency = 1,
                          .quiet = true};
    er_worker_t *wk = NULL;
    if (er_worker_new(&o, &wk, NULL, 0) < 0) _exit(1);
    er_worker_run(wk);
    er_worker_free(wk);
    _exit(0);
  }
  return w;
}

/* Sends in_process_add(41) to a worker on the refusing pool; answers the
 * task's record once it succeeded, the worker stopped. */
static er_task_rec_t *refused_then_run(uint64_t refuse_ms) {
  er_id_t id;
  h_send(&H, "in_process_add", "[41]", NULL, &id);
  pid_t w = refused_worker(refuse_ms);
  er_task_rec_t *r = h_wait(&H, id.text, 15000);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  assert_int_equal(json_integer_value(r->result), 42);
  assert_int_equal(r->retries, 0); /* not a retry: the task did nothing wrong */
  g_child = -1;
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));
  return r;
}

static void a_task_the_pool_refuses_goes_back(void **s) {
  er_task_rec_t *r = refused_then_run(0);
  assert_int_equal(r->attempt, 2); /* the refused attempt, then the one that ran */
  er_task_rec_free(r);
}

/* A pool that refuses everything for a while: the worker backs off instead
 * of taking the task back and being refused as fast as the store answers. */
static void a_refusing_pool_is_not_hammered(void **s) {
  er_task_rec_t *r = refused_then_run(1000);
  print_message("ran at attempt %d\n", r->attempt);
  assert_true(r->attempt >= 2);
  assert_true(r->attempt < 20);
  er_task_rec_free(r);
}

/* ---- making a worker, out of memory ---- */

static long g_alloc_calls, g_alloc_fail_at, g_alloc_live;
static bool g_alloc_failed;

/* Counts a call; true for the one to fail. */
static bool fail_this_one(void) {
  if (++g_alloc_calls != g_alloc_fail_at) return false;
  g_alloc_failed = true;
  return true;
}

static void *failing_malloc(size_t n) {
  if (fail_this_one()) return NULL;
  void *p = malloc(n);
  if (p) g_alloc_live++;
  return p;
}

static void *failing_realloc(void *p, size_t n) {
  if (fail_this_one()) return NULL;
  void *q = realloc(p, n);
  if (q && !p) g_alloc_live++;
  return q;
}

static void failing_free(void *p) {
  if (p) g_alloc_live--;
  free(p);
}

/* Each allocation er_worker_new makes, failed in turn: it answers an error
 * (never a worker short of its queues) and gives back all it took. */
static void worker_new_out_of_memory(void **s) {
  static const er_allocator_t failing = {failing_malloc, failing_realloc, failing_free};
  const char *queues[] = {"a", "b", "c"};
  er_worker_opts_t o = {.store_url = H.url, .queues = queues, .nqueues = 3, .quiet = true};
  for (long n = 1;; n++) {
    g_alloc_calls = g_alloc_live = 0;
    g_alloc_fail_at = n;
    g_alloc_failed = false;
    er_set_allocator(&failing);
    er_worker_t *wk = NULL;
    int rc = er_worker_new(&o, &wk, NULL, 0);
    er_worker_free(wk);
    er_set_allocator(NULL);
    if (!g_alloc_failed) {
      assert_int_equal(rc, 0);
      print_message("er_worker_new makes %ld allocations\n", n - 1);
      break;
    }
    if (rc == 0) print_message("allocation %ld failed, yet er_worker_new succeeded\n", n);
    assert_int_not_equal(rc, 0);
    assert_null(wk);
    assert_int_equal(g_alloc_live, 0);
    assert_true(n < 100000);
  }
}

/* ---- retries ---- */

static void retries_none_means_none(void **s) {
  pid_t w = h_worker(&H, "threads", 1, NULL);
  er_id_t none, one;
  /* flaky asks for a retry until it has had args[0]; its own default is 5. */
  h_send(&H, "flaky", "[9]", &(er_send_opts_t){.max_retries = ER_RETRIES_NONE}, &none);
  h_send(&H, "flaky", "[9]", &(er_send_opts_t){.max_retries = 1}, &one);
  er_task_rec_t *r = h_wait(&H, none.text, 10000);
  assert_int_equal(r->state, ER_STATE_FAILURE);
  assert_int_equal(r->attempt, 1);
  assert_int_equal(r->retries, 0);
  er_task_rec_free(r);
  r = h_wait(&H, one.text, 10000);
  assert_int_equal(r->state, ER_STATE_FAILURE);
  assert_int_equal(r->attempt, 2);
  assert_int_equal(r->retries, 1);
  er_task_rec_free(r);
  h_stop(w, SIGTERM);
}

/* ---- what the worker says ---- */

static bool has_string(json_t *array, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(array, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
  return false;
}

static void logs_banner_and_heartbeat(void **s) {
  char log[300];
  snprintf(log, sizeof log, "%s/worker.log", H.dir);
  pid_t w = h_worker_log(&H, log, false, "prefork", 1, NULL);
  er_id_t add, fail, flaky, slow, waiting;
  h_send(&H, "add", "[2, 3]", NULL, &add);
  h_send(&H, "fail", "[\"no luck\"]", NULL, &fail);
  h_send(&H, "flaky", "[1]", NULL, &flaky);
  er_task_rec_free(h_wait(&H, add.text, 10000));
  er_task_rec_free(h_wait(&H, fail.text, 10000));
  er_task_rec_free(h_wait(&H, flaky.text, 10000));

  /* One child: one sleep runs, the next waits behind it in the child's
   * socket, reserved but not started. */
  h_send(&H, "sleep", "[6]", NULL, &slow);
  h_wait_state(&H, slow.text, ER_STATE_STARTED, 10000);
  h_send(&H, "sleep", "[0.1]", NULL, &waiting);
  h_wait_state(&H, waiting.text, ER_STATE_STARTED, 10000);
  json_t *info = NULL;
  for (int i = 0; i < 60; i++) {
    json_decref(info);
    info = h_worker_info(&H, w);
    /* A heartbeat (every 2 s) from after both were reserved. */
    if (info && json_array_size(json_object_get(info, "active_tasks")) >= 1 &&
        json_array_size(json_object_get(info, "reserved_tasks")) >= 1)
      break;
    usleep(100000);
  }
  assert_non_null(info);
  assert_true(has_string(json_object_get(info, "registered"), "add"));
  assert_true(has_string(json_object_get(info, "registered"), "fanout"));
  json_t *active = json_object_get(info, "active_tasks");
  assert_int_equal(json_array_size(active), 1);
  json_t *first = json_array_get(active, 0);
  assert_string_equal(json_string_value(json_object_get(first, "task")), "sleep");
  assert_string_equal(json_string_value(json_object_get(first, "id")), slow.text);
  assert_true(json_integer_value(json_object_get(first, "started_ms")) > 0);
  json_t *reserved = json_object_get(info, "reserved_tasks");
  assert_int_equal(json_array_size(reserved), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(reserved, 0), "id")),
                      waiting.text);
  /* The counts agree with the lists. */
  assert_int_equal(json_integer_value(json_object_get(info, "active")), 1);
  assert_int_equal(json_integer_value(json_object_get(info, "reserved")), 1);
  json_decref(info);
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));

  char *text = h_read_file(log);
  assert_non_null(strstr(text, "tasks ("));
  assert_non_null(strstr(text, "add, crash"));
  assert_true(in_log(text, "received", add.text));
  assert_true(in_log(text, "succeeded in", add.text));
  char want[200];
  snprintf(want, sizeof want, "task add[%s] succeeded in ", add.text);
  const char *line = strstr(text, want);
  assert_non_null(line);
  assert_non_null(strstr(line, "s: 5\n"));
  snprintf(want, sizeof want, "task fail[%s] failed in ", fail.text);
  assert_non_null(line = strstr(text, want));
  assert_non_null(strstr(line, ": no luck\n"));
  snprintf(want, sizeof want, "task flaky[%s] retry in 10 ms: not yet", flaky.text);
  assert_non_null(strstr(text, want));
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(stalled_sqlite, setup, teardown),
      cmocka_unit_test_setup_teardown(stalled_redis, setup_redis, teardown_redis),
      cmocka_unit_test_setup_teardown(revoke_sqlite, setup, teardown),
      cmocka_unit_test_setup_teardown(revoke_redis, setup_redis, teardown_redis),
      cmocka_unit_test_setup_teardown(prefork_revokes_name_their_job, setup, teardown),
      cmocka_unit_test_setup_teardown(lease_lost_sqlite, setup, teardown),
      cmocka_unit_test_setup_teardown(lease_lost_redis, setup_redis, teardown_redis),
      cmocka_unit_test_setup_teardown(a_task_the_pool_refuses_goes_back, setup, teardown),
      cmocka_unit_test_setup_teardown(a_refusing_pool_is_not_hammered, setup, teardown),
      cmocka_unit_test_setup_teardown(worker_new_out_of_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(retries_none_means_none, setup, teardown),
      cmocka_unit_test_setup_teardown(logs_banner_and_heartbeat, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
