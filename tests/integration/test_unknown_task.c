/* A worker that reserves a task it has not registered gives it back while
 * another live worker serving the task's queue has it, and fails it "unknown
 * task" only when none has: real `errand worker` processes with two task
 * libraries (the examples', with "add"; other_tasks.c, with "mul" and no
 * "add") on one queue, on SQLite and on a private redis-server. */
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

#define RESERVE_BATCH 64   /* a worker's largest reservation */
#define GIVE_BACK_RATE 128 /* a second, and at once */
#define GIVE_BACK_WARNING "is not registered here; giving it back to workers that have it"

/* The workers a test started, stopped by the teardown even when it fails. */
static pid_t g_pids[8];
static size_t g_npids;

static int stop_workers(void **state) {
  for (size_t i = 0; i < g_npids; i++) {
    kill(g_pids[i], SIGCONT);
    h_stop(g_pids[i], SIGKILL);
  }
  g_npids = 0;
  return 0;
}

/* Stops the worker pid with sig and forgets it; returns its wait status. */
static int stop_worker(pid_t pid, int sig) {
  for (size_t i = 0; i < g_npids; i++)
    if (g_pids[i] == pid) g_pids[i] = g_pids[--g_npids];
  return h_stop(pid, sig);
}

/* Stops every worker cleanly: each must exit 0 (a sanitizer build exits
 * otherwise on a leak). */
static void stop_cleanly(void) {
  while (g_npids) {
    pid_t pid = g_pids[g_npids - 1];
    kill(pid, SIGCONT);
    int status = stop_worker(pid, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
}

/* Starts `errand worker -A lib` on queue q, its log (info level) in log. */
static pid_t start_worker(harness_t *h, const char *log, const char *lib, const char *q) {
  setenv("ERRAND_LOG", "info", 1);
  pid_t pid = h_cli_start(h, log, "worker", "-A", lib, "--pool", "threads", "--concurrency", "2",
                          "--queues", q, "--quiet", NULL);
  unsetenv("ERRAND_LOG");
  assert_true(pid > 0 && g_npids < 8);
  g_pids[g_npids++] = pid;
  return pid;
}

/* Waits until the worker whose pid is pid is listed; returns its id. */
static void wait_listed(harness_t *h, pid_t pid, char *id, size_t size) {
  for (int i = 0; i < 1500; i++) {
    json_t *info = h_worker_info(h, pid);
    if (info) {
      snprintf(id, size, "%s", json_string_value(json_object_get(info, "id")));
      json_decref(info);
      return;
    }
    usleep(20000);
  }
  fail_msg("worker %d never sent a heartbeat", (int)pid);
}

/* Worker A, with the examples' tasks ("add"), and worker B, with
 * other_tasks.c ("mul"), each listed once started; their logs in h's dir. */
typedef struct {
  pid_t a, b;
  char log_a[300], log_b[300], id_a[160], id_b[160];
} pair_t;

static void start_a(harness_t *h, pair_t *p, const char *q) {
  snprintf(p->log_a, sizeof p->log_a, "%s/a.log", h->dir);
  p->a = start_worker(h, p->log_a, TASKS_LIB, q);
  wait_listed(h, p->a, p->id_a, sizeof p->id_a);
}

static void start_b(harness_t *h, pair_t *p) {
  snprintf(p->log_b, sizeof p->log_b, "%s/b.log", h->dir);
  p->b = start_worker(h, p->log_b, OTHER_LIB, "q");
  wait_listed(h, p->b, p->id_b, sizeof p->id_b);
}

/* Sends n tasks named task with args [i, 2] on queue q. */
static er_id_t *send_n(harness_t *h, const char *task, const char *q, size_t n) {
  er_id_t *ids = calloc(n, sizeof *ids);
  er_send_req_t *reqs = calloc(n, sizeof *reqs);
  er_send_opts_t o = {.queue = q};
  for (size_t i = 0; i < n; i++)
    reqs[i] = (er_send_req_t){task, json_pack("[ii]", (int)i, 2), NULL, &o};
  int rc = er_send_batch(h->client, reqs, n, ids);
  if (rc) fprintf(stderr, "send: %s\n", er_client_last_error(h->client));
  assert_int_equal(rc, 0);
  for (size_t i = 0; i < n; i++) json_decref(reqs[i].args);
  free(reqs);
  return ids;
}

/* Waits for every task; checks it succeeded on the worker named by ran_by
 * with the result want(i); returns how often the tasks were given back (each
 * reservation counts an attempt). */
static long check_success(harness_t *h, const er_id_t *ids, size_t n, const char *ran_by,
                          int mul) {
  long given_back = 0;
  for (size_t i = 0; i < n; i++) {
    er_task_rec_t *r = h_wait(h, ids[i].text, 60000);
    if (r->state != ER_STATE_SUCCESS) {
      char *e = r->error ? json_dumps(r->error, 0) : NULL;
      fail_msg("task %s %s is %s: %s", r->task, r->id, er_state_name(r->state), e ? e : "");
    }
    assert_int_equal(json_integer_value(r->result), mul ? (json_int_t)i * 2 : (json_int_t)i + 2);
    assert_string_equal(r->worker, ran_by);
    given_back += r->attempt - 1;
    er_task_rec_free(r);
  }
  return given_back;
}

static size_t count_text(const char *path, const char *needle) {
  char *s = h_read_file(path);
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
  free(s);
  return n;
}

/* Worker A has "add", worker B has "mul", both on queue q. 2,000 add and 100
 * mul tasks wait while A is held (SIGSTOP: it stays live by its heartbeat):
 * B takes adds, gives them back instead of failing them, and runs the muls;
 * once A goes on, every add succeeds on A. B's give-backs are bounded by its
 * budget (128 a second), not one per task as fast as the store answers. */
static void two_workers(harness_t *h) {
  pair_t p;
  start_a(h, &p, "q");
  kill(p.a, SIGSTOP);
  er_id_t *adds = send_n(h, "add", "q", 2000);
  er_id_t *muls = send_n(h, "mul", "q", 100);
  uint64_t t0 = er_now_mono_ms();
  start_b(h, &p);
  assert_true(h_wait_text(p.log_b, "task 'add' " GIVE_BACK_WARNING, 30000));
  usleep(300000);
  kill(p.a, SIGCONT);
  long back_b = check_success(h, adds, 2000, p.id_a, 0);
  long back_a = check_success(h, muls, 100, p.id_b, 1);
  double secs = (double)(er_now_mono_ms() - t0) / 1000.0;
  /* The budget, and one reservation past it. */
  long bound = (long)(GIVE_BACK_RATE * (1 + secs)) + RESERVE_BATCH;
  if (getenv("ERRAND_TEST_VERBOSE"))
    fprintf(stderr, "given back: %ld adds, %ld muls in %.1f s (at most %ld each)\n", back_b,
            back_a, secs, bound);
  if (back_b > bound || back_a > bound)
    fail_msg("given back: %ld adds, %ld muls in %.1f s (at most %ld each)", back_b, back_a, secs,
             bound);
  assert_true(back_b > 0);
  assert_int_equal(count_text(p.log_b, GIVE_BACK_WARNING), 1); /* one line per name */
  assert_int_equal(count_text(p.log_b, "unknown task"), 0);
  assert_int_equal(count_text(p.log_a, "unknown task"), 0);
  free(adds);
  free(muls);
}

static void test_two_workers_sqlite(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  two_workers(&h);
  stop_cleanly();
  h_teardown(&h);
}

static void test_two_workers_redis(void **state) {
  harness_t h;
  if (!h_setup_redis(&h)) skip();
  two_workers(&h);
  stop_cleanly();
  h_teardown_redis(&h);
}

/* No live worker serving q has "add" (A has it, on another queue): B fails
 * the adds, saying so, and still runs its muls. */
static void test_none_has_it(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  pair_t p;
  start_a(&h, &p, "elsewhere");
  start_b(&h, &p);
  er_id_t *adds = send_n(&h, "add", "q", 200);
  er_id_t *muls = send_n(&h, "mul", "q", 20);
  for (size_t i = 0; i < 200; i++) {
    er_task_rec_t *r = h_wait(&h, adds[i].text, 60000);
    assert_int_equal(r->state, ER_STATE_FAILURE);
    assert_int_equal(json_integer_value(json_object_get(r->error, "code")), ER_EUNKNOWN_TASK);
    assert_string_equal(json_string_value(json_object_get(r->error, "message")),
                        "unknown task 'add': no live worker serving queue 'q' has registered it");
    assert_int_equal(r->attempt, 1); /* failed at once, never given back */
    er_task_rec_free(r);
  }
  assert_int_equal(check_success(&h, muls, 20, p.id_b, 1), 0);
  assert_int_equal(count_text(p.log_b, GIVE_BACK_WARNING), 0);
  stop_cleanly();
  free(adds);
  free(muls);
  h_teardown(&h);
}

/* A worker that had the task and has just gone (a clean stop removes its
 * heartbeat; a restart follows) still counts for two heartbeat expiries
 * (12 s at the default 2 s heartbeat) after its last heartbeat: B, which saw
 * it live, goes on giving the adds back past one expiry, and the restarted A
 * runs them all. */
static void test_restart_counts_as_live(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  pair_t p;
  start_a(&h, &p, "q");
  kill(p.a, SIGSTOP); /* its last heartbeat, the first, is older than now */
  uint64_t listed = er_now_mono_ms();
  er_id_t *adds = send_n(&h, "add", "q", 300);
  start_b(&h, &p);
  assert_true(h_wait_text(p.log_b, "task 'add' " GIVE_BACK_WARNING, 30000));
  /* A goes, holding nothing (it never ran): its heartbeat is removed as a
   * clean stop removes it */
  stop_worker(p.a, SIGKILL);
  er_store_t *st;
  assert_int_equal(er_store_open(h.url, &st, NULL, 0), 0);
  assert_int_equal(er_store_worker_gone(st, p.id_a), 0);
  er_store_close(st);
  assert_null(h_worker_info(&h, p.a));
  /* past one expiry (6 s) after A's last heartbeat, B looking at the
   * heartbeats (every 2 s) all along, A unlisted */
  while (er_now_mono_ms() < listed + 7500) usleep(50000);
  start_a(&h, &p, "q"); /* the restart: it runs them all */
  check_success(&h, adds, 300, p.id_a, 0);
  assert_int_equal(count_text(p.log_b, "unknown task"), 0);
  stop_cleanly();
  free(adds);
  h_teardown(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_two_workers_sqlite, stop_workers),
      cmocka_unit_test_teardown(test_two_workers_redis, stop_workers),
      cmocka_unit_test_teardown(test_none_has_it, stop_workers),
      cmocka_unit_test_teardown(test_restart_counts_as_live, stop_workers),
  };
  return cmocka_run_group_tests_name("unknown tasks", tests, NULL, NULL);
}
