/* The embedded worker (er_worker_start, er_worker_stop, er_worker_join) on a
 * real store, inside this test process as a web server would run it:
 *   - started and stopped 20 times in one process, each time running a task,
 *     leaving no thread or descriptor behind;
 *   - two at once on different queues, each running its own queue's tasks;
 *   - a warm stop while tasks run lets them finish (SUCCESS, not given back);
 *   - the process's signal dispositions are left as they were, and its
 *     threads, the tasks' included, take no signal meant for the process: a
 *     write to a closed pipe fails with EPIPE under SIGPIPE's default action;
 *   - prefork is refused (it would fork the host), as are a bad store URL and
 *     a join of a worker it did not start.
 * On SQLite, and on a private redis-server (ctest's _redis variant). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errand.h>
#include <errand/client.h>
#include <errand/worker.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "store_url.h"

static int echo(er_task_t *t, json_t **result) {
  *result = json_incref(json_array_get(er_task_args(t), 0));
  return 0;
}
ER_TASK("embed_echo", echo)

static int sleep_ms(er_task_t *t, json_t **result) {
  json_int_t ms = json_integer_value(json_array_get(er_task_args(t), 0));
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  *result = json_integer(ms);
  return 0;
}
ER_TASK("embed_sleep", sleep_ms)

/* What a task sees of signals on a worker thread. */
static int probe(er_task_t *t, json_t **result) {
  int fds[2];
  if (pipe(fds) < 0) return er_task_fail(t, ER_ESYS, "pipe");
  close(fds[0]);
  errno = 0;
  ssize_t n = write(fds[1], "x", 1); /* SIGPIPE's default action would end the process */
  int err = errno;
  close(fds[1]);
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  *result = json_pack("{s:I, s:i, s:b, s:b, s:b}", "written", (json_int_t)n, "errno", err,
                      "term_blocked", sigismember(&cur, SIGTERM), "int_blocked",
                      sigismember(&cur, SIGINT), "segv_blocked", sigismember(&cur, SIGSEGV));
  return 0;
}
ER_TASK("embed_probe", probe)

typedef struct fx {
  char dir[256], url[320];
  er_client_t *c;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  test_store_url("embed", NULL, f->dir, sizeof f->dir, f->url, sizeof f->url);
  char msg[256] = "";
  if (er_client_open(f->url, &f->c, msg, sizeof msg)) fail_msg("client: %s", msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  er_client_close(f->c);
  if (f->dir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd)) {}
  }
  free(f);
  return 0;
}

static er_worker_t *start(fx_t *f, const char *queue, int64_t grace_ms) {
  const char *qs[] = {queue};
  er_worker_opts_t o = {.store_url = f->url, .queues = qs, .nqueues = 1,
                        .pool = ER_POOL_THREADS, .concurrency = 2, .grace_ms = grace_ms,
                        .heartbeat_ms = 200, .quiet = true};
  er_worker_t *w = NULL;
  char msg[256] = "";
  int rc = er_worker_start(&o, &w, msg, sizeof msg);
  if (rc) fail_msg("er_worker_start: %s: %s", er_err_name(rc), msg);
  assert_non_null(w);
  return w;
}

static void stop(er_worker_t *w, bool now) {
  er_worker_stop(w, now);
  int rc = -1;
  assert_int_equal(er_worker_join(w, &rc), 0);
  assert_int_equal(rc, 0);
}

static void send_to(fx_t *f, const char *queue, const char *task, json_t *args, er_id_t *id) {
  er_send_opts_t o = {.queue = queue};
  int rc = er_send(f->c, task, args, NULL, &o, id);
  json_decref(args);
  if (rc) fail_msg("send %s: %s", task, er_client_last_error(f->c));
}

static json_t *result_of(fx_t *f, const char *id) {
  json_t *res = NULL, *err = NULL;
  int rc = er_result(f->c, id, NULL, 30000, &res, &err);
  if (rc) fail_msg("task %s: %s %s", id, er_err_name(rc), err ? json_dumps(err, 0) : "");
  return res;
}

/* Entries of a /proc directory: this process's descriptors or threads. */
static int count_entries(const char *path) {
  DIR *d = opendir(path);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* The live workers the store lists. */
static size_t live_workers(fx_t *f) {
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(f->url, &s, NULL, 0), 0);
  json_t *all = NULL;
  assert_int_equal(er_store_workers(s, er_now_wall_ms(), &all), 0);
  size_t n = json_array_size(all);
  json_decref(all);
  er_store_close(s);
  return n;
}

static void start_and_stop_20_times(void **state) {
  fx_t *f = *state;
  int fds = 0, threads = 0;
  for (int i = 0; i < 20; i++) {
    er_worker_t *w = start(f, "cycle", 0);
    er_id_t id;
    send_to(f, "cycle", "embed_echo", json_pack("[i]", i), &id);
    json_t *res = result_of(f, id.text);
    assert_int_equal(json_integer_value(res), i);
    json_decref(res);
    stop(w, false);
    assert_int_equal(live_workers(f), 0); /* each one said it was gone */
    /* The first cycles may leave what lives as long as the process: the
     * stores' one-time set-up, and the test's client keeping the queue's
     * bell open once a worker's watcher has made it (sqlite_wake.c), which
     * the first cycle's send may find missing. Every later one must leave
     * nothing. */
    if (i == 1) {
      fds = count_entries("/proc/self/fd");
      threads = count_entries("/proc/self/task");
    }
  }
  assert_int_equal(count_entries("/proc/self/fd"), fds);
  assert_int_equal(count_entries("/proc/self/task"), threads);
}

static void two_at_once_on_different_queues(void **state) {
  fx_t *f = *state;
  er_worker_t *a = start(f, "qa", 0), *b = start(f, "qb", 0);
  assert_string_not_equal(er_worker_id(a), er_worker_id(b));
  enum { N = 10 };
  er_id_t ids[2][N];
  for (int i = 0; i < N; i++) {
    send_to(f, "qa", "embed_echo", json_pack("[i]", i), &ids[0][i]);
    send_to(f, "qb", "embed_echo", json_pack("[i]", 100 + i), &ids[1][i]);
  }
  for (int q = 0; q < 2; q++)
    for (int i = 0; i < N; i++) {
      json_t *res = result_of(f, ids[q][i].text);
      assert_int_equal(json_integer_value(res), q * 100 + i);
      json_decref(res);
      er_task_rec_t *rec = NULL;
      assert_int_equal(er_status(f->c, ids[q][i].text, NULL, &rec), 0);
      assert_string_equal(rec->worker, er_worker_id(q ? b : a));
      er_task_rec_free(rec);
    }
  stop(a, false);
  stop(b, false);
}

static void wait_started(fx_t *f, const char *id) {
  for (int i = 0; i < 3000; i++) {
    er_task_rec_t *rec = NULL;
    assert_int_equal(er_status(f->c, id, NULL, &rec), 0);
    er_task_state_t s = rec->state;
    er_task_rec_free(rec);
    if (s == ER_STATE_STARTED) return;
    assert_int_equal(s, ER_STATE_PENDING);
    usleep(10000);
  }
  fail_msg("task %s never started", id);
}

static void warm_stop_lets_running_tasks_finish(void **state) {
  fx_t *f = *state;
  er_worker_t *w = start(f, "warm", 60000);
  er_id_t ids[2];
  for (int i = 0; i < 2; i++) send_to(f, "warm", "embed_sleep", json_pack("[i]", 1500), &ids[i]);
  for (int i = 0; i < 2; i++) wait_started(f, ids[i].text);
  stop(w, false); /* returns once both have finished */
  for (int i = 0; i < 2; i++) {
    er_task_rec_t *rec = NULL;
    assert_int_equal(er_status(f->c, ids[i].text, NULL, &rec), 0);
    assert_int_equal(rec->state, ER_STATE_SUCCESS);
    er_task_rec_free(rec);
  }
}

static void same_action(int sig, const struct sigaction *before) {
  struct sigaction now;
  assert_int_equal(sigaction(sig, NULL, &now), 0);
  if (now.sa_handler != before->sa_handler) fail_msg("signal %d's disposition changed", sig);
}

static void leaves_the_process_signals_alone(void **state) {
  fx_t *f = *state;
  static const int sigs[] = {SIGPIPE, SIGTERM, SIGINT, SIGXFSZ, SIGSEGV, SIGBUS, SIGCHLD};
  enum { NS = sizeof sigs / sizeof sigs[0] };
  struct sigaction before[NS];
  signal(SIGPIPE, SIG_DFL); /* a write to a closed pipe would end this process */
  for (int i = 0; i < NS; i++) assert_int_equal(sigaction(sigs[i], NULL, &before[i]), 0);
  er_worker_t *w = start(f, "signals", 0);
  er_id_t id;
  send_to(f, "signals", "embed_probe", NULL, &id);
  json_t *res = result_of(f, id.text);
  assert_int_equal(json_integer_value(json_object_get(res, "written")), -1);
  assert_int_equal(json_integer_value(json_object_get(res, "errno")), EPIPE);
  assert_true(json_is_true(json_object_get(res, "term_blocked")));
  assert_true(json_is_true(json_object_get(res, "int_blocked")));
  assert_true(json_is_false(json_object_get(res, "segv_blocked")));
  json_decref(res);
  for (int i = 0; i < NS; i++) same_action(sigs[i], &before[i]);
  stop(w, false);
  for (int i = 0; i < NS; i++) same_action(sigs[i], &before[i]);
}

static void refusals(void **state) {
  fx_t *f = *state;
  char msg[256] = "";
  er_worker_t *w = (er_worker_t *)f; /* must be set to NULL */
  er_worker_opts_t o = {.store_url = f->url, .pool = ER_POOL_PREFORK, .quiet = true};
  assert_int_equal(er_worker_start(&o, &w, msg, sizeof msg), ER_EINVAL);
  assert_null(w);
  assert_non_null(strstr(msg, "prefork"));
  o.pool = ER_POOL_SOLO;
  o.store_url = "nosuch:store";
  msg[0] = 0;
  assert_int_equal(er_worker_start(&o, &w, msg, sizeof msg), ER_EINVAL);
  assert_null(w);
  assert_true(msg[0] != 0);
  assert_int_equal(er_worker_start(NULL, &w, msg, sizeof msg), ER_EINVAL);
  assert_int_equal(er_worker_join(NULL, NULL), ER_EINVAL);
  o.store_url = f->url;
  er_worker_t *plain = NULL;
  assert_int_equal(er_worker_new(&o, &plain, NULL, 0), 0);
  assert_int_equal(er_worker_join(plain, NULL), ER_EINVAL); /* not started: left alone */
  er_worker_free(plain);
  /* solo runs too */
  o.store_url = f->url;
  assert_int_equal(er_worker_start(&o, &w, msg, sizeof msg), 0);
  er_id_t id;
  send_to(f, NULL, "embed_echo", json_pack("[s]", "solo"), &id);
  json_t *res = result_of(f, id.text);
  assert_string_equal(json_string_value(res), "solo");
  json_decref(res);
  stop(w, true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(start_and_stop_20_times, setup, teardown),
      cmocka_unit_test_setup_teardown(two_at_once_on_different_queues, setup, teardown),
      cmocka_unit_test_setup_teardown(warm_stop_lets_running_tasks_finish, setup, teardown),
      cmocka_unit_test_setup_teardown(leaves_the_process_signals_alone, setup, teardown),
      cmocka_unit_test_setup_teardown(refusals, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
