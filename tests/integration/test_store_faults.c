/* A store that fails under a running worker: locked by another process, its
 * disk full (a file size limit put on the worker), its file corrupted, its
 * file deleted. The worker survives, says why once (not once per attempt),
 * and finishes the queued tasks when the fault clears; a deleted file stops
 * it with an error. Each worker's log is read back. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"

#define N 20
#define WARNED "store calls fail:"
#define RECOVERED "store recovered after"

static harness_t H;
static char LOG[400], DB[400];
static er_id_t IDS[N];

static int setup(void **state) {
  /* A short busy wait: a locked store answers within 100 ms. */
  h_setup(&H, "?busy_ms=100");
  snprintf(LOG, sizeof LOG, "%s/worker.log", H.dir);
  snprintf(DB, sizeof DB, "%s/errand.db", H.dir);
  return 0;
}

static int teardown(void **state) {
  h_teardown(&H);
  return 0;
}

static int count(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

/* Sends N tasks, due after countdown_ms. */
static void send_all(int64_t countdown_ms) {
  er_send_opts_t o = {.countdown_ms = countdown_ms};
  for (int i = 0; i < N; i++) {
    char args[32];
    snprintf(args, sizeof args, "[%d, 1]", i);
    h_send(&H, "add", args, &o, &IDS[i]);
  }
}

static void wait_all_done(void) {
  for (int i = 0; i < N; i++) {
    er_task_rec_t *r = h_wait(&H, IDS[i].text, 60000);
    assert_int_equal(r->state, ER_STATE_SUCCESS);
    assert_int_equal(json_integer_value(r->result), i + 1);
    er_task_rec_free(r);
  }
}

/* The log says the cause once, and that the store recovered once. */
/* Where the log stands once no store trouble is under way (every warning
 * has its recovery): on a loaded machine the test's own sends can hold the
 * write lock past the worker's busy timeout, a short incident of its own,
 * logged and over before the fault the test makes. */
static size_t log_settled(void) {
  for (int i = 0; i < 200; i++) {
    char *log = h_read_file(LOG);
    size_t len = strlen(log);
    bool settled = count(log, WARNED) == count(log, RECOVERED);
    free(log);
    if (settled) return len;
    usleep(50000);
  }
  fail_msg("a store incident before the fault never ended");
  return 0;
}

/* One warning, one recovery, naming cause, in the log from offset `from`. */
static void check_log_once_from(size_t from, const char *cause) {
  char *all = h_read_file(LOG);
  const char *log = all + (strlen(all) >= from ? from : strlen(all));
  if (getenv("ERRAND_TEST_VERBOSE")) fprintf(stderr, "%s", all);
  if (count(log, "errand warn") != 1 || count(log, WARNED) != 1 || count(log, RECOVERED) != 1 ||
      !strstr(log, cause))
    fail_msg("want one warning naming '%s' and one recovery; the log:\n%s", cause, log);
  /* A few seconds of failures cost tens of calls, not one per turn of the
   * loop (the back-off waits up to 5 s between rounds). */
  unsigned fails = 0;
  assert_int_equal(sscanf(strstr(log, RECOVERED), RECOVERED " %u failures", &fails), 1);
  assert_in_range(fails, 1, 100);
  free(all);
}

static void check_log_once(const char *cause) { check_log_once_from(0, cause); }

static sqlite3 *open_db(void) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(DB, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  return db;
}

static void locked_store_backs_off_and_warns_once(void **s) {
  pid_t w = h_worker_log(&H, LOG, true, "threads", 2, NULL);
  h_wait_workers(&H, 1, 10000);
  /* Two tasks that end under the lock: their outcomes wait in the worker. */
  er_id_t slow[2];
  for (int i = 0; i < 2; i++) h_send(&H, "sleep", "[1.5]", NULL, &slow[i]);
  for (int i = 0; i < 2; i++) h_wait_state(&H, slow[i].text, ER_STATE_STARTED, 10000);
  send_all(1000);
  size_t from = log_settled();
  sqlite3 *db = open_db();
  assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
  /* The tasks come due under the lock; reserve, outcomes, heartbeats and
   * housekeeping all fail for seconds. */
  assert_true(h_wait_text(LOG, WARNED, 10000));
  sleep(4);
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  wait_all_done();
  for (int i = 0; i < 2; i++) h_wait_state(&H, slow[i].text, ER_STATE_SUCCESS, 10000);
  assert_true(h_wait_text(LOG, RECOVERED, 10000));
  assert_int_equal(WEXITSTATUS(h_stop(w, SIGTERM)), 0);
  check_log_once_from(from, "locked");
}

/* The worker with its stderr through a pipe to `cat`, which appends it to
 * LOG: under a file size limit the worker could not write a log file. */
static pid_t worker_log_piped(pid_t *cat) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  int fd = open(LOG, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  assert_true(fd >= 0);
  *cat = fork();
  assert_true(*cat >= 0);
  if (*cat == 0) {
    dup2(p[0], 0);
    dup2(fd, 1);
    close(p[1]);
    execlp("cat", "cat", (char *)NULL);
    _exit(127);
  }
  close(fd);
  close(p[0]);
  setenv("ERRAND_LOG", "info", 1);
  pid_t w = fork();
  assert_true(w >= 0);
  if (w == 0) {
    dup2(p[1], 2);
    execl(ERRAND_BIN, ERRAND_BIN, "worker", "-A", TASKS_LIB, "--store", H.url, "--pool",
          "threads", "--concurrency", "2", "--quiet", (char *)NULL);
    _exit(127);
  }
  unsetenv("ERRAND_LOG");
  close(p[1]);
  return w;
}

static void set_fsize(pid_t pid, rlim_t max) {
  struct rlimit cur;
  assert_int_equal(prlimit(pid, RLIMIT_FSIZE, NULL, &cur), 0);
  struct rlimit lim = {max == RLIM_INFINITY ? cur.rlim_max : max, cur.rlim_max};
  assert_int_equal(prlimit(pid, RLIMIT_FSIZE, &lim, NULL), 0);
}

static void full_disk_backs_off_and_warns_once(void **s) {
  pid_t cat;
  pid_t w = worker_log_piped(&cat);
  h_wait_workers(&H, 1, 10000);
  /* No write of the worker's may go past byte 0 of any file: a full disk to
   * SQLite (a write fails with EFBIG). The worker must not die of SIGXFSZ. */
  set_fsize(w, 0);
  send_all(0);
  assert_true(h_wait_text(LOG, WARNED, 10000));
  sleep(3);
  assert_int_equal(h_state(&H, IDS[0].text), ER_STATE_PENDING);
  set_fsize(w, RLIM_INFINITY);
  wait_all_done();
  assert_true(h_wait_text(LOG, RECOVERED, 10000));
  assert_int_equal(WEXITSTATUS(h_stop(w, SIGTERM)), 0);
  int status;
  waitpid(cat, &status, 0);
  check_log_once("sqlite");
}

/* Every page but the first overwritten with 0xff: no b-tree page reads. */
static char *corrupt(size_t *size) {
  sqlite3 *db = open_db();
  /* Everything in the main file, so that reads go to the broken pages. */
  /* (a connection knows the file is in WAL mode once it has read it) */
  assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL),
                   SQLITE_OK);
  int nlog = -1, nckpt = -1;
  assert_int_equal(sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt),
                   SQLITE_OK);
  assert_int_equal(nlog, 0); /* truncated: every page is in the main file */
  sqlite3_close(db);
  char *saved = h_read_file(DB);
  struct stat st;
  assert_int_equal(stat(DB, &st), 0);
  *size = (size_t)st.st_size;
  assert_true(*size > 4096);
  char *junk = malloc(*size);
  memset(junk, 0xff, *size);
  int fd = open(DB, O_WRONLY);
  assert_int_equal(pwrite(fd, junk, *size - 4096, 4096), (ssize_t)(*size - 4096));
  close(fd);
  free(junk);
  return saved;
}

static void corrupt_file_backs_off_and_warns_once(void **s) {
  pid_t w = h_worker_log(&H, LOG, true, "threads", 2, NULL);
  h_wait_workers(&H, 1, 10000);
  send_all(1500);
  size_t from = log_settled();
  size_t size;
  char *saved = corrupt(&size);
  assert_true(h_wait_text(LOG, WARNED, 10000));
  sleep(3);
  /* The fault clears: the file as it was. */
  int fd = open(DB, O_WRONLY);
  assert_int_equal(pwrite(fd, saved, size, 0), (ssize_t)size);
  close(fd);
  free(saved);
  /* A write of another process: the worker's connection reads the file
   * afresh rather than from its cache. */
  er_id_t id;
  h_send(&H, "add", "[0, 0]", NULL, &id);
  wait_all_done();
  assert_true(h_wait_text(LOG, RECOVERED, 10000));
  assert_int_equal(WEXITSTATUS(h_stop(w, SIGTERM)), 0);
  check_log_once_from(from, "malformed");
}

static void deleted_file_stops_the_worker_with_an_error(void **s) {
  pid_t w = h_worker_log(&H, LOG, true, "threads", 2, NULL);
  h_wait_workers(&H, 1, 10000);
  assert_int_equal(unlink(DB), 0);
  /* A send on a handle opened before is refused, not written where no one
   * will ever read it. */
  er_id_t id;
  assert_int_equal(er_send(H.client, "add", NULL, NULL, NULL, &id), ER_ENOENT);
  assert_non_null(strstr(er_client_last_error(H.client), "was deleted"));
  assert_true(h_wait_text(LOG, "was deleted", 15000));
  /* It stops by itself, with an error. */
  int status = -1;
  for (int i = 0; i < 1000 && waitpid(w, &status, WNOHANG) == 0; i++) usleep(10000);
  if (status == -1) status = h_stop(w, SIGKILL);
  assert_true(WIFEXITED(status));
  assert_int_not_equal(WEXITSTATUS(status), 0);
  char *log = h_read_file(LOG);
  if (getenv("ERRAND_TEST_VERBOSE")) fprintf(stderr, "%s", log);
  char want[520];
  snprintf(want, sizeof want, "store file %s was deleted", DB);
  if (count(log, want) != 1 || count(log, "stopping") != 1)
    fail_msg("want one line naming '%s' and saying it stops; the log:\n%s", want, log);
  free(log);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(locked_store_backs_off_and_warns_once, setup, teardown),
      cmocka_unit_test_setup_teardown(full_disk_backs_off_and_warns_once, setup, teardown),
      cmocka_unit_test_setup_teardown(corrupt_file_backs_off_and_warns_once, setup, teardown),
      cmocka_unit_test_setup_teardown(deleted_file_stops_the_worker_with_an_error, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
