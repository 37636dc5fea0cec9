/* The task queue end to end: real worker processes on a real SQLite file,
 * driven through the client API and the errand command. */
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

static int setup(void **state) {
  h_setup(&H, "?tombstone_ms=200");
  return 0;
}

static int teardown(void **state) {
  h_teardown(&H);
  return 0;
}

static void expect_add(const char *pool) {
  pid_t w = h_worker(&H, pool, 2, NULL);
  er_id_t id;
  h_send(&H, "add", "[2, 3]", NULL, &id);
  json_t *res = NULL, *err = NULL;
  assert_int_equal(er_result(H.client, id.text, NULL, 10000, &res, &err), 0);
  assert_int_equal(json_integer_value(res), 5);
  json_decref(res);
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, id.text, NULL, &r), 0);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  assert_int_equal(r->attempt, 1);
  assert_true(r->finished_ms >= r->started_ms && r->started_ms >= r->created_ms);
  er_task_rec_free(r);
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));
}

static void add_prefork(void **s) { expect_add("prefork"); }
static void add_threads(void **s) { expect_add("threads"); }
static void add_solo(void **s) { expect_add("solo"); }

static void unknown_task_fails_loudly(void **s) {
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t id;
  h_send(&H, "no_such_task", "[]", NULL, &id);
  json_t *res = NULL, *err = NULL;
  assert_int_equal(er_result(H.client, id.text, NULL, 10000, &res, &err), ER_EFAIL);
  assert_string_equal(json_string_value(json_object_get(err, "message")),
                      "unknown task 'no_such_task': no live worker serving queue 'default' "
                      "has registered it");
  json_decref(err);
  h_stop(w, SIGTERM);
}

static void failing_and_crashing_tasks_leave_the_pool_serving(void **s) {
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t f, c, a;
  h_send(&H, "fail", "[\"no luck\"]", NULL, &f);
  h_send(&H, "crash", "[]", NULL, &c);
  h_send(&H, "add", "[1, 1]", NULL, &a);
  json_t *res = NULL, *err = NULL;
  assert_int_equal(er_result(H.client, f.text, NULL, 10000, &res, &err), ER_EFAIL);
  assert_string_equal(json_string_value(json_object_get(err, "message")), "no luck");
  json_decref(err);
  err = NULL;
  assert_int_equal(er_result(H.client, c.text, NULL, 10000, &res, &err), ER_EFAIL);
  const char *msg = json_string_value(json_object_get(err, "message"));
  assert_non_null(strstr(msg, "SIGSEGV"));
  assert_int_equal(json_integer_value(json_object_get(err, "signal")), SIGSEGV);
  json_decref(err);
  assert_int_equal(er_result(H.client, a.text, NULL, 10000, &res, &err), 0);
  assert_int_equal(json_integer_value(res), 2);
  json_decref(res);
  h_stop(w, SIGTERM);
}

static void hard_time_limit_kills_the_attempt(void **s) {
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t slow, a;
  h_send(&H, "sleep", "[30]", &(er_send_opts_t){.hard_limit_ms = 300, .max_retries = ER_RETRIES_NONE}, &slow);
  h_send(&H, "add", "[4, 4]", NULL, &a);
  json_t *res = NULL, *err = NULL;
  assert_int_equal(er_result(H.client, slow.text, NULL, 10000, &res, &err), ER_EFAIL);
  assert_string_equal(json_string_value(json_object_get(err, "name")), "ETIMEDOUT");
  assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "SIGKILL"));
  json_decref(err);
  assert_int_equal(er_result(H.client, a.text, NULL, 10000, &res, &err), 0);
  json_decref(res);
  h_stop(w, SIGTERM);
}

static void retries_back_off_then_succeed(void **s) {
  pid_t w = h_worker(&H, "threads", 1, NULL);
  er_id_t id;
  h_send(&H, "flaky", "[2]", NULL, &id);
  json_t *res = NULL, *err = NULL;
  assert_int_equal(er_result(H.client, id.text, NULL, 10000, &res, &err), 0);
  assert_int_equal(json_integer_value(res), 2);
  json_decref(res);
  er_task_rec_t *r;
  er_status(H.client, id.text, NULL, &r);
  assert_int_equal(r->retries, 2);
  assert_int_equal(r->attempt, 3);
  er_task_rec_free(r);
  /* Past max_retries (5 for flaky): FAILURE with the task's own message. */
  h_send(&H, "flaky", "[9]", NULL, &id);
  assert_int_equal(er_result(H.client, id.text, NULL, 20000, &res, &err), ER_EFAIL);
  assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "not yet"));
  json_decref(err);
  h_stop(w, SIGTERM);
}

static void progress_is_visible_while_running(void **s) {
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t id;
  h_send(&H, "progress", "[1.0]", NULL, &id);
  double seen = -1;
  for (int i = 0; i < 100 && seen <= 0; i++) {
    er_task_rec_t *r;
    er_status(H.client, id.text, NULL, &r);
    if (r->state == ER_STATE_STARTED && r->progress > 0 && r->progress < 1) seen = r->progress;
    er_task_rec_free(r);
    usleep(20000);
  }
  assert_true(seen > 0 && seen < 1);
  er_task_rec_t *r = h_wait(&H, id.text, 10000);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  assert_true(r->progress == 1.0);
  er_task_rec_free(r);
  h_stop(w, SIGTERM);
}

static void revoke_pending_and_running(void **s) {
  er_id_t later, running;
  h_send(&H, "add", "[1, 2]", &(er_send_opts_t){.countdown_ms = 60000}, &later);
  assert_int_equal(er_revoke(H.client, later.text), 0);
  pid_t w = h_worker(&H, "prefork", 1, "--lease", "3", NULL);
  h_send(&H, "sleep", "[30]", NULL, &running);
  h_wait_state(&H, running.text, ER_STATE_STARTED, 2000);
  assert_int_equal(er_revoke(H.client, running.text), 0);
  /* The worker sees the revoke at its next lease renewal (lease 3 s: every
   * second) and kills the child after the grace period. */
  json_t *res = NULL, *err = NULL;
  assert_int_equal(er_result(H.client, running.text, NULL, 15000, &res, &err), ER_EREVOKED);
  json_decref(err);
  er_task_rec_t *r;
  er_status(H.client, later.text, NULL, &r);
  assert_int_equal(r->state, ER_STATE_REVOKED);
  assert_int_equal(r->attempt, 0); /* never ran */
  er_task_rec_free(r);
  h_stop(w, SIGTERM);
}

static void countdown_delays_the_start(void **s) {
  pid_t w = h_worker(&H, "threads", 1, NULL);
  er_id_t id;
  int64_t t0 = er_now_wall_ms();
  h_send(&H, "add", "[3, 3]", &(er_send_opts_t){.countdown_ms = 600}, &id);
  er_task_rec_t *r = h_wait(&H, id.text, 10000);
  assert_int_equal(r->state, ER_STATE_SUCCESS);
  assert_true(r->started_ms - t0 >= 600);
  er_task_rec_free(r);
  h_stop(w, SIGTERM);
}

static void keys_names_and_if_absent(void **s) {
  er_id_t a, b, n1, n2;
  bool existed = false;
  er_send_opts_t ko = {.key = "report-42", .if_absent = true, .countdown_ms = 60000};
  h_send(&H, "add", "[1, 1]", &ko, &a);
  assert_int_equal(er_send_ex(H.client, "add", NULL, NULL, &ko, &b, &existed), 0);
  assert_true(existed);
  assert_string_equal(a.text, b.text);
  er_id_t byk;
  assert_int_equal(er_id_for_key(H.client, "report-42", &byk), 0);
  assert_string_equal(byk.text, a.text);
  char *key = NULL;
  assert_int_equal(er_key_for_id(H.client, a.text, &key), 0);
  assert_string_equal(key, "report-42");
  er_free(key);
  er_send_opts_t no = {.name = "nightly"};
  h_send(&H, "add", "[1, 1]", &no, &n1);
  assert_int_equal(er_send(H.client, "add", NULL, NULL, &no, &n2), ER_EEXIST);
}

static void bad_input_is_refused_whole(void **s) {
  json_t *notarray = json_object();
  assert_int_equal(er_send(H.client, "add", notarray, NULL, NULL, NULL), ER_EINVAL);
  json_decref(notarray);
  char *big = malloc(2 << 20);
  memset(big, 'x', (2 << 20) - 1);
  big[(2 << 20) - 1] = 0;
  json_t *args = json_pack("[s]", big);
  free(big);
  assert_int_equal(er_send(H.client, "add", args, NULL, NULL, NULL), ER_ETOOBIG);
  json_decref(args);
  json_t *stats;
  er_store_t *st;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  assert_int_equal(er_store_stats(st, &stats), 0);
  assert_int_equal(json_object_size(json_object_get(stats, "queues")), 0); /* nothing written */
  json_decref(stats);
  er_store_close(st);
  er_client_t *c = NULL;
  char msg[256] = "";
  assert_int_equal(er_client_open("nosuch://x", &c, msg, sizeof msg), ER_EINVAL);
  assert_non_null(strstr(msg, "nosuch://x"));
}

static void cli_round_trip_and_errors(void **s) {
  pid_t w = h_worker(&H, "prefork", 2, NULL);
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--args", "[20, 22]", "--wait", NULL), 0);
  assert_string_equal(out, "42\n");
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--args", "[1,", NULL), 2);
  assert_non_null(strstr(err, "--args is not valid JSON"));
  assert_null(strchr(err, '\n') == err + strlen(err) - 1 ? NULL : "more than one line");
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "send", "fail", "--args", "[\"bad\"]", "--wait", NULL), 1);
  assert_non_null(strstr(err, "bad"));
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--args", "[5, 5]", "--key", "k1", NULL), 0);
  out[strcspn(out, "\n")] = 0;
  char id[64];
  snprintf(id, sizeof id, "%s", out);
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "result", "--key", "k1", "--wait", "--timeout", "10", NULL), 0);
  assert_string_equal(out, "10\n");
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "status", id, NULL), 0);
  assert_non_null(strstr(out, "\"SUCCESS\""));
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "status", "0190a0a0-0000-7000-8000-000000000000", NULL), 4);
  assert_non_null(strstr(out, "UNKNOWN"));
  free(out);
  free(err);
  usleep(300000);
  assert_int_equal(h_cli(&H, &out, &err, "inspect", NULL), 0);
  assert_non_null(strstr(out, "pool=prefork"));
  assert_non_null(strstr(out, "SUCCESS="));
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "bogus", NULL), 2);
  free(out);
  free(err);
  h_stop(w, SIGTERM);
}

/* On a terminal, `errand result --wait` draws a progress bar while the task
 * reports progress; script(1) gives it one. */
static void result_draws_a_progress_bar_on_a_terminal(void **s) {
  if (system("command -v script >/dev/null 2>&1") != 0) {
    skip(); /* util-linux's script is part of every Debian system */
  }
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t id;
  h_send(&H, "progress", "[1.5]", NULL, &id);
  char cmd[1024], out_path[300];
  snprintf(out_path, sizeof out_path, "%s/tty.txt", H.dir);
  snprintf(cmd, sizeof cmd,
           "script -qfec '%s result %s --wait --store %s' /dev/null > %s 2>&1 </dev/null",
           ERRAND_BIN, id.text, H.url, out_path);
  assert_int_equal(system(cmd), 0);
  FILE *f = fopen(out_path, "r");
  char buf[8192] = {0};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  assert_true(n > 0);
  assert_non_null(strstr(buf, "[###"));
  assert_non_null(strstr(buf, "% working"));
  assert_non_null(strstr(buf, "20")); /* the result, after the bar */
  h_stop(w, SIGTERM);
}

static void cli_purge_removes_waiting_tasks(void **s) {
  er_id_t id;
  h_send(&H, "add", "[1, 1]", &(er_send_opts_t){.queue = "later"}, &id);
  h_send(&H, "add", "[1, 1]", &(er_send_opts_t){.queue = "later"}, &id);
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "purge", "later", NULL), 0);
  assert_non_null(strstr(out, "purged 2 tasks"));
  free(out);
  free(err);
  assert_int_equal(h_state(&H, id.text), ER_STATE_UNKNOWN);
}

static void tasklet_task_fans_out(void **s) {
  pid_t w = h_worker(&H, "prefork", 2, NULL);
  er_id_t id;
  h_send(&H, "fanout", "[20]", NULL, &id);
  json_t *res = NULL, *err = NULL;
  int rc = er_result(H.client, id.text, NULL, 20000, &res, &err);
  if (rc) fprintf(stderr, "fanout: %s\n", json_dumps(err, 0));
  assert_int_equal(rc, 0);
  assert_int_equal(json_integer_value(res), 2 * (19 * 20 / 2)); /* sum of i+i */
  json_decref(res);
  h_stop(w, SIGTERM);
}

static void warm_shutdown_finishes_running_tasks(void **s) {
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t id;
  h_send(&H, "sleep", "[0.5]", NULL, &id);
  h_wait_state(&H, id.text, ER_STATE_STARTED, 2000);
  int status = h_stop(w, SIGTERM);
  assert_true(WIFEXITED(status));
  assert_int_equal(h_state(&H, id.text), ER_STATE_SUCCESS);
}

/* A worker reserves ahead (prefetch); at a warm stop what it reserved but did
 * not start goes back to the queue at once, for other workers. */
static void warm_shutdown_gives_back_reserved_tasks(void **s) {
  /* One child takes 8 tasks at most (the sleep and 7 adds); with a prefetch
   * of 16 the worker reserves the other 5 adds too and holds them back. */
  er_id_t slow, ids[12];
  h_send(&H, "sleep", "[0.6]", NULL, &slow);
  for (int i = 0; i < 12; i++) h_send(&H, "add", "[1, 1]", NULL, &ids[i]);
  pid_t w = h_worker(&H, "prefork", 1, "--prefetch", "16", NULL);
  h_wait_state(&H, slow.text, ER_STATE_STARTED, 2000);
  usleep(100000);
  int status = h_stop(w, SIGTERM);
  assert_true(WIFEXITED(status));
  int pending = 0;
  for (int i = 0; i < 12; i++) {
    er_task_rec_t *r;
    er_status(H.client, ids[i].text, NULL, &r);
    assert_true(r->state == ER_STATE_PENDING || r->state == ER_STATE_SUCCESS);
    pending += r->state == ER_STATE_PENDING;
    er_task_rec_free(r);
  }
  assert_int_equal(pending, 5); /* given back unstarted; the child's 7 ran */
  assert_int_equal(h_state(&H, slow.text), ER_STATE_SUCCESS);
}

static void second_signal_gives_tasks_back(void **s) {
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  er_id_t id;
  h_send(&H, "sleep", "[30]", NULL, &id);
  h_wait_state(&H, id.text, ER_STATE_STARTED, 2000);
  kill(w, SIGTERM);
  usleep(100000);
  int status = h_stop(w, SIGINT);
  assert_true(WIFEXITED(status));
  assert_int_equal(h_state(&H, id.text), ER_STATE_PENDING);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(add_prefork, setup, teardown),
      cmocka_unit_test_setup_teardown(add_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(add_solo, setup, teardown),
      cmocka_unit_test_setup_teardown(unknown_task_fails_loudly, setup, teardown),
      cmocka_unit_test_setup_teardown(failing_and_crashing_tasks_leave_the_pool_serving, setup, teardown),
      cmocka_unit_test_setup_teardown(hard_time_limit_kills_the_attempt, setup, teardown),
      cmocka_unit_test_setup_teardown(retries_back_off_then_succeed, setup, teardown),
      cmocka_unit_test_setup_teardown(progress_is_visible_while_running, setup, teardown),
      cmocka_unit_test_setup_teardown(revoke_pending_and_running, setup, teardown),
      cmocka_unit_test_setup_teardown(countdown_delays_the_start, setup, teardown),
      cmocka_unit_test_setup_teardown(keys_names_and_if_absent, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_input_is_refused_whole, setup, teardown),
      cmocka_unit_test_setup_teardown(cli_round_trip_and_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(tasklet_task_fans_out, setup, teardown),
      cmocka_unit_test_setup_teardown(result_draws_a_progress_bar_on_a_terminal, setup, teardown),
      cmocka_unit_test_setup_teardown(cli_purge_removes_waiting_tasks, setup, teardown),
      cmocka_unit_test_setup_teardown(warm_shutdown_finishes_running_tasks, setup, teardown),
      cmocka_unit_test_setup_teardown(warm_shutdown_gives_back_reserved_tasks, setup, teardown),
      cmocka_unit_test_setup_teardown(second_signal_gives_tasks_back, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
