/* Faults: workers and senders killed with -9, a corrupt store file. Nothing
 * acknowledged is lost; every task ends with its result stored once. */
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
#include <sqlite3.h>

#include "harness.h"

static harness_t H;

static int setup(void **state) {
  h_setup(&H, NULL);
  return 0;
}

static int teardown(void **state) {
  h_teardown(&H);
  return 0;
}

static long count_state(const char *state) { return h_count_state(&H, state); }

#define N_TASKS 10000

static void kill9_worker_mid_run_loses_nothing(void **s) {
  /* 10,000 tasks in batches of 500. */
  er_send_req_t reqs[500];
  json_t *args[500];
  er_id_t ids[500];
  for (int b = 0; b < N_TASKS / 500; b++) {
    for (int i = 0; i < 500; i++) {
      args[i] = json_pack("[i, i]", b * 500 + i, 1);
      reqs[i] = (er_send_req_t){"add", args[i], NULL, NULL};
    }
    assert_int_equal(er_send_batch(H.client, reqs, 500, ids), 0);
    for (int i = 0; i < 500; i++) json_decref(args[i]);
  }
  /* A short lease, so the dead worker's tasks come back quickly. */
  pid_t w1 = h_worker(&H, "prefork", 2, "--lease", "1", NULL);
  while (count_state("SUCCESS") < N_TASKS / 5) usleep(5000);
  int status = h_stop(w1, SIGKILL);
  assert_true(WIFSIGNALED(status));
  long done_at_kill = count_state("SUCCESS");
  assert_true(done_at_kill < N_TASKS);
  pid_t w2 = h_worker(&H, "prefork", 2, "--lease", "1", NULL);
  for (int i = 0; i < 6000 && count_state("SUCCESS") < N_TASKS; i++) usleep(10000);
  assert_int_equal(count_state("SUCCESS"), N_TASKS);
  assert_int_equal(count_state("STARTED"), 0);
  assert_int_equal(count_state("PENDING"), 0);
  h_stop(w2, SIGTERM);
  /* Every result is the right one, stored once (the row's attempt fenced it). */
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, ids[499].text, NULL, &r), 0);
  assert_int_equal(json_integer_value(r->result), (N_TASKS / 500 - 1) * 500 + 499 + 1);
  er_task_rec_free(r);
}

static void kill9_sender_right_after_send(void **s) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    er_client_t *c;
    if (er_client_open(H.url, &c, NULL, 0) < 0) _exit(1);
    er_id_t id;
    if (er_send(c, "add", NULL, NULL, NULL, &id) < 0) _exit(2);
    if (write(fds[1], id.text, ER_ID_LEN) != ER_ID_LEN) _exit(3);
    raise(SIGKILL); /* no close, no flush, no atexit */
  }
  close(fds[1]);
  char id[ER_ID_LEN + 1] = {0};
  assert_int_equal(read(fds[0], id, ER_ID_LEN), ER_ID_LEN);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, id, NULL, &r), 0);
  assert_int_equal(r->state, ER_STATE_PENDING);
  er_task_rec_free(r);
}

static void corrupt_file_is_a_clear_error(void **s) {
  char path[400];
  snprintf(path, sizeof path, "%s/garbage.db", H.dir);
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 1000; i++) fputs("this is not a database ", f);
  fclose(f);
  char url[420], msg[256] = "";
  snprintf(url, sizeof url, "sqlite:%s", path);
  er_client_t *c = NULL;
  assert_int_equal(er_client_open(url, &c, msg, sizeof msg), ER_ECORRUPT);
  assert_null(c);
  assert_true(strlen(msg) > 0 && !strchr(msg, '\n'));
  char dir_url[420];
  snprintf(dir_url, sizeof dir_url, "sqlite:%s/no/such/dir/x.db", H.dir);
  assert_true(er_client_open(dir_url, &c, msg, sizeof msg) < 0);
}

static void locked_database_is_a_clear_error_and_writes_nothing(void **s) {
  char path[400], url[440];
  snprintf(path, sizeof path, "%s/errand.db", H.dir);
  snprintf(url, sizeof url, "sqlite:%s?busy_ms=200", path);
  er_client_t *c;
  assert_int_equal(er_client_open(url, &c, NULL, 0), 0);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
  er_id_t id;
  int rc = er_send(c, "add", NULL, NULL, NULL, &id);
  assert_int_equal(rc, ER_EBUSY);
  const char *msg = er_client_last_error(c);
  assert_true(strlen(msg) > 0 && !strchr(msg, '\n'));
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(db);
  assert_int_equal(count_state("PENDING"), 0);
  /* Once the lock is gone the same call works. */
  assert_int_equal(er_send(c, "add", NULL, NULL, NULL, &id), 0);
  assert_int_equal(count_state("PENDING"), 1);
  er_client_close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(kill9_sender_right_after_send, setup, teardown),
      cmocka_unit_test_setup_teardown(corrupt_file_is_a_clear_error, setup, teardown),
      cmocka_unit_test_setup_teardown(locked_database_is_a_clear_error_and_writes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(kill9_worker_mid_run_loses_nothing, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
