/* The errand command and er_worker_new on bad input: every number in its
 * documented range (refused past it, never wrapped), unknown options and
 * malformed store URLs as one line and exit 2, a store that cannot be opened
 * as one line and exit 3 (docs/cli.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand/store.h>

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

/* A store no command can open (its directory does not exist): a worker
 * given it exits instead of running, whatever its options did. */
#define NO_STORE "sqlite:/nonexistent-errand-dir/x.db"

/* What a run of the command gave: its exit code, stdout and stderr (the
 * expect_ functions free them). */
typedef struct {
  int rc;
  char *out, *err;
} res_t;

/* Runs errand with args (NULL-ended, at most 16), then with store (when not
 * NULL) as --store. */
static res_t run_on(const char *store, const char *first, va_list ap) {
  char *argv[20] = {ERRAND_BIN, (char *)first};
  int n = 2;
  while (n < 17 && (argv[n] = va_arg(ap, char *))) n++;
  if (store) {
    argv[n++] = "--store";
    argv[n++] = (char *)store;
    argv[n] = NULL;
  }
  res_t r;
  r.rc = h_run(&r.out, &r.err, argv);
  return r;
}

/* errand with the args given, nothing added. */
static res_t run(const char *arg, ...) {
  va_list ap;
  va_start(ap, arg);
  res_t r = run_on(NULL, arg, ap);
  va_end(ap);
  return r;
}

/* errand with args on H's store. */
static res_t run_h(const char *arg, ...) {
  va_list ap;
  va_start(ap, arg);
  res_t r = run_on(H.url, arg, ap);
  va_end(ap);
  return r;
}

/* Exit code want, nothing on stdout, and stderr exactly the line line. */
static void expect_line(res_t r, int want, const char *line) {
  if (r.rc != want || strcmp(r.err, line) || *r.out)
    fail_msg("exit %d (want %d), stderr '%s' (want '%s'), stdout '%s'", r.rc, want, r.err, line,
             r.out);
  free(r.out);
  free(r.err);
}

/* Exit code want and one line on stderr, starting "errand: ", holding needle. */
static void expect_one_line(res_t r, int want, const char *needle) {
  const char *e = r.err;
  if (r.rc != want || strncmp(e, "errand: ", 8) || strchr(e, '\n') != e + strlen(e) - 1 ||
      !strstr(e, needle))
    fail_msg("exit %d (want %d), stderr '%s' (want one line with '%s')", r.rc, want, e, needle);
  free(r.out);
  free(r.err);
}

static void numbers_past_their_range_are_refused_with_the_range(void **s) {
  /* 2^63 - 1 seconds would overflow once made ms and added to now. */
  expect_line(run("send", "add", "--countdown", "9223372036854775807", "--store", NO_STORE,
                  NULL),
              2,
              "errand: --countdown: 9223372036854775807 is out of range (0..1000000000 seconds)\n");
  expect_line(run("send", "add", "--expires", "1000000000.5", "--store", NO_STORE, NULL),
              2, "errand: --expires: 1000000000.5 is out of range (0..1000000000 seconds)\n");
  expect_line(run("result", "x", "--wait", "--timeout", "99999999999999999999999", "--store",
                  NO_STORE, NULL),
              2,
              "errand: --timeout: 99999999999999999999999 is out of range (0..1000000000 seconds)\n");
  expect_line(run("send", "add", "--priority", "2147483648", "--store", NO_STORE, NULL), 2,
              "errand: --priority: 2147483648 is out of range (-2147483648..2147483647)\n");
  /* Workers on a store that does not open: an option wrongly taken (0 as
   * "the default lease") would reach the store and exit 3, not 2. */
  expect_line(run("worker", "--prefetch", "1001", "--store", NO_STORE, NULL), 2,
              "errand: --prefetch: 1001 is out of range (1..1000)\n");
  expect_line(run("worker", "-c", "99999999999999999999", "--store", NO_STORE, NULL), 2,
              "errand: --concurrency: 99999999999999999999 is out of range (1..4096)\n");
  expect_line(run("worker", "--lease", "0", "--store", NO_STORE, NULL), 2,
              "errand: --lease: 0 is out of range (0.1..86400 seconds)\n");
  expect_line(run("worker", "--lease", "0.0001", "--store", NO_STORE, NULL), 2,
              "errand: --lease: 0.0001 is out of range (0.1..86400 seconds)\n");
  expect_line(run("worker", "--grace", "0", "--store", NO_STORE, NULL), 2,
              "errand: --grace: 0 is out of range (0.001..86400 seconds)\n");
  expect_line(run("worker", "--grace", "86401", "--store", NO_STORE, NULL), 2,
              "errand: --grace: 86401 is out of range (0.001..86400 seconds)\n");
  /* The ends of each range pass (and reach the store, which is missing). */
  expect_one_line(run("worker", "-c", "4096", "--prefetch", "1000", "--lease", "0.1",
                      "--grace", "86400", "--store", NO_STORE, NULL),
                  3, "unable to open");
}

/* The record of the task whose id a successful send printed. */
static er_task_rec_t *sent(res_t send) {
  if (send.rc) fail_msg("send: exit %d: %s", send.rc, send.err);
  send.out[strcspn(send.out, "\n")] = 0;
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, send.out, NULL, &r), 0);
  free(send.out);
  free(send.err);
  return r;
}

static void send_takes_eta_and_expires(void **s) {
  /* A past eta runs now: the task is sent with it. */
  er_task_rec_t *r = sent(run_h("send", "add", "--eta", "2000-01-01T00:00:00.25Z", NULL));
  assert_int_equal(r->eta_ms, 946684800250LL);
  assert_int_equal(r->expires_ms, 0);
  er_task_rec_free(r);
  /* Any RFC 3339 time, its offset converted (the HTTP API's parser). */
  r = sent(run_h("send", "add", "--eta", "2000-01-01T01:00:00.250999+01:00", NULL));
  assert_int_equal(r->eta_ms, 946684800250LL);
  er_task_rec_free(r);
  r = sent(run_h("send", "add", "--expires", "60", NULL));
  assert_int_equal(r->expires_ms - r->created_ms, 60000);
  er_task_rec_free(r);
  static const char *const bad[] = {"2026-02-30T00:00:00Z", "2026-12-02 11:40:00Z",
                                    "2026-12-02T11:40:00",  "1969-12-31T23:59:59Z",
                                    "2026-12-02T11:40:00.Z", "2026-12-02T11:40:00+0100",
                                    "+026-12-02T11:40:00Z", "2026-12-02T24:00:00Z",
                                    "",                     NULL};
  for (int i = 0; bad[i]; i++)
    expect_one_line(run_h("send", "add", "--eta", bad[i], NULL), 2, "--eta");
  expect_line(run_h("send", "add", "--eta", "2030-01-01T00:00:00Z", "--countdown", "5",
                    NULL),
              2, "errand: give --countdown or --eta, not both\n");
  /* An expiry already past: the task never runs; the first reserve (a
   * worker's look, stood in for here) ends it expired, not kept waiting. */
  static const char *const past[] = {"2000-01-01T00:00:00Z", "0", NULL};
  for (int i = 0; past[i]; i++) {
    r = sent(run_h("send", "add", "--queue", "expiring", "--expires", past[i], NULL));
    assert_true(r->expires_ms > 0 && r->expires_ms - r->created_ms <= 1);
    er_store_t *st;
    assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
    const char *q[] = {"expiring"};
    er_reserve_req_t req = {.queues = q, .nqueues = 1, .worker = "test-worker",
                            .now_ms = er_now_wall_ms() + 1000, .lease_ms = 60000, .max = 1};
    er_task_rec_t **recs;
    size_t n;
    assert_int_equal(er_store_reserve(st, &req, &recs, &n), 0);
    er_task_rec_free_array(recs, n);
    er_store_close(st);
    res_t status = run_h("status", r->id, NULL);
    er_task_rec_free(r);
    if (status.rc || !strstr(status.out, "\"REVOKED\"") || !strstr(status.out, "expired"))
      fail_msg("exit %d: %s", status.rc, status.out);
    free(status.out);
    free(status.err);
  }
}

static void queues_past_the_limit_are_an_error(void **s) {
  char list[70 * 4] = "";
  for (int i = 0; i < 70; i++) snprintf(list + strlen(list), 8, "%sq%d", i ? "," : "", i);
  expect_line(run("worker", "-Q", list, "--store", NO_STORE, NULL), 2,
              "errand: -Q: 70 queues given, at most 64 supported\n");
  /* Across several -Q too; 64 is fine (and reaches the store). */
  *strstr(list, ",q64") = 0; /* q0..q63 */
  expect_line(run("worker", "-Q", list, "-Q", "x", "--store", NO_STORE, NULL), 2,
              "errand: -Q: 65 queues given, at most 64 supported\n");
  expect_one_line(run("worker", "-Q", list, "--store", NO_STORE, NULL), 3,
                  "unable to open");
  /* No name at all is not the default queue. */
  expect_line(run("worker", "-Q", ",", "--store", NO_STORE, NULL), 2,
              "errand: -Q takes queue names separated by commas, not ','\n");
}

static void worker_new_refuses_options_out_of_range(void **s) {
  const char *qs[ER_WORKER_MAX_QUEUES + 1];
  for (int i = 0; i <= ER_WORKER_MAX_QUEUES; i++) qs[i] = "q";
  const char *const empty[] = {"a", ""};
  const char *const null[] = {"a", NULL};
  const struct {
    er_worker_opts_t o;
    const char *says;
  } bad[] = {
      {{.concurrency = -1}, "concurrency"},
      {{.concurrency = ER_WORKER_MAX_CONCURRENCY + 1}, "concurrency"},
      {{.prefetch = -4}, "prefetch"},
      {{.prefetch = ER_WORKER_MAX_PREFETCH + 1}, "prefetch"},
      {{.lease_ms = -1}, "lease_ms"},
      {{.lease_ms = ER_WORKER_MIN_LEASE_MS - 1}, "lease_ms"},
      {{.lease_ms = INT64_MAX}, "lease_ms"},
      {{.heartbeat_ms = -2000}, "heartbeat_ms"},
      {{.heartbeat_ms = ER_WORKER_MAX_HEARTBEAT_MS + 1}, "heartbeat_ms"},
      {{.grace_ms = INT64_MIN}, "grace_ms"},
      {{.revoke_grace_ms = ER_WORKER_MAX_GRACE_MS + 1}, "revoke_grace_ms"},
      {{.pool = (er_pool_kind_t)7}, "pool"},
      {{.queues = qs, .nqueues = ER_WORKER_MAX_QUEUES + 1}, "65 queues given, at most 64"},
      {{.queues = empty, .nqueues = 2}, "queue 2 has no name"},
      {{.queues = null, .nqueues = 2}, "queue 2 has no name"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    er_worker_opts_t o = bad[i].o;
    o.store_url = H.url;
    o.quiet = true;
    er_worker_t *w = (er_worker_t *)&o; /* must be set to NULL */
    char msg[256] = "";
    int rc = er_worker_new(&o, &w, msg, sizeof msg);
    if (rc != ER_EINVAL || !strstr(msg, bad[i].says) || w)
      fail_msg("case %zu: rc %d, '%s' (want ER_EINVAL, '%s')", i, rc, msg, bad[i].says);
  }
  /* Each range's ends are taken. */
  er_worker_opts_t ok = {.store_url = H.url, .queues = qs, .nqueues = ER_WORKER_MAX_QUEUES,
                         .concurrency = ER_WORKER_MAX_CONCURRENCY, .prefetch = 1,
                         .lease_ms = ER_WORKER_MIN_LEASE_MS, .heartbeat_ms = ER_WORKER_MAX_HEARTBEAT_MS,
                         .grace_ms = 1, .revoke_grace_ms = ER_WORKER_MAX_GRACE_MS, .quiet = true};
  er_worker_t *w;
  char msg[256] = "";
  assert_int_equal(er_worker_new(&ok, &w, msg, sizeof msg), 0);
  er_worker_free(w);
}

static void unknown_options_are_one_line_pointing_to_help(void **s) {
  static const char *const cmds[] = {"worker", "send",    "status", "result",
                                     "revoke", "inspect", "purge"};
  char line[128];
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    snprintf(line, sizeof line, "errand: unknown option '--bogus'; see 'errand %s --help'\n",
             cmds[i]);
    expect_line(run(cmds[i], "x", "--bogus", NULL), 2, line);
    expect_line(run(cmds[i], "--bogus=3", "x", NULL), 2, line);
    snprintf(line, sizeof line, "errand: option '--store' needs a value; see 'errand %s --help'\n",
             cmds[i]);
    expect_line(run(cmds[i], "x", "--store", NULL), 2, line);
  }
  expect_line(run("--bogus", NULL), 2,
              "errand: unknown option '--bogus'; see 'errand --help'\n");
  expect_line(run("worker", "-Z", NULL), 2,
              "errand: unknown option '-Z'; see 'errand worker --help'\n");
  expect_line(run("worker", "-Q", NULL), 2,
              "errand: option '-Q' needs a value; see 'errand worker --help'\n");
  expect_line(run("send", "add", "--args", NULL), 2,
              "errand: option '--args' needs a value; see 'errand send --help'\n");
  /* --key belongs to status and result only. */
  expect_line(run("revoke", "x", "--key", "k", NULL), 2,
              "errand: unknown option '--key'; see 'errand revoke --help'\n");
}

static void malformed_store_urls_exit_2_an_absent_store_3(void **s) {
  static const char *const cmds[][3] = {{"worker", NULL}, {"send", "add"},   {"status", "x"},
                                        {"result", "x"},  {"revoke", "x"},   {"inspect", NULL},
                                        {"purge", "q"}};
  static const char *const urls[] = {"redis://host:notaport", "foo://x", "sqlite://",
                                     "redis://[::1", "redis://:hunter2@h:99999", "sqlite:x?busy_ms=-1",
                                     "sqlite:x?max_payload=99999999999999999999", NULL};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    for (int u = 0; urls[u]; u++) {
      res_t r = cmds[i][1] ? run(cmds[i][0], cmds[i][1], "--store", urls[u], NULL)
                           : run(cmds[i][0], "--store", urls[u], NULL);
      if (strstr(r.err, "hunter2")) fail_msg("%s: the password shown: %s", cmds[i][0], r.err);
      expect_one_line(r, 2, "store URL");
    }
    expect_one_line(cmds[i][1] ? run(cmds[i][0], cmds[i][1], "--store", NO_STORE, NULL)
                               : run(cmds[i][0], "--store", NO_STORE, NULL),
                    3, "unable to open");
  }
}

/* A store file cut short cannot be opened: one line and exit 3. */
static void truncated_database_is_one_line_exit_3(void **s) {
  er_id_t id;
  for (int i = 0; i < 50; i++) h_send(&H, "add", "[1, 2]", NULL, &id);
  er_client_close(H.client);
  H.client = NULL;
  char path[300], cmd[1000];
  snprintf(path, sizeof path, "%s/errand.db", H.dir);
  snprintf(cmd, sizeof cmd, "rm -f '%s-wal' '%s-shm'; truncate -s 8192 '%s'", path, path, path);
  assert_int_equal(system(cmd), 0);
  static const char *const cmds[][2] = {{"status", "x"}, {"send", "add"}, {"inspect", NULL}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    res_t r = cmds[i][1] ? run_h(cmds[i][0], cmds[i][1], NULL) : run_h(cmds[i][0], NULL);
    assert_non_null(strstr(r.err, "truncated"));
    expect_one_line(r, 3, "errand.db");
  }
}

/* Times in a heartbeat are whatever a worker wrote: the oldest one possible
 * is a very long time ago, not a wrapped subtraction shown as "0 ms". */
static void inspect_takes_any_time_a_heartbeat_holds(void **s) {
  er_store_t *st;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  json_t *info = json_pack("{s:s, s:s, s:i, s:i, s:i, s:[s], s:I, s:[{s:s, s:s, s:I}]}", "id",
                           "w:1:aaaa", "pool", "solo", "concurrency", 1, "active", 1, "processed", 0,
                           "queues", "default", "started_ms", (json_int_t)INT64_MIN, "active_tasks",
                           "id", "t1", "task", "add", "started_ms", (json_int_t)INT64_MIN);
  assert_int_equal(er_store_heartbeat(st, info, er_now_wall_ms(), 60000), 0);
  json_decref(info);
  er_store_close(st);
  res_t r = run_h("inspect", NULL);
  /* (The heartbeat's own "beat N ms ago" is recent, and may read "20 ms":
   * only the two started times are checked.) */
  if (r.rc || strstr(r.out, "up 0 ms") || strstr(r.out, "(0 ms") ||
      !strstr(r.out, "up 53375995583 d") ||
      !strstr(r.out, "(53375995583 d"))
    fail_msg("exit %d: %s%s", r.rc, r.out, r.err);
  free(r.out);
  free(r.err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(numbers_past_their_range_are_refused_with_the_range, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(send_takes_eta_and_expires, setup, teardown),
      cmocka_unit_test_setup_teardown(queues_past_the_limit_are_an_error, setup, teardown),
      cmocka_unit_test_setup_teardown(worker_new_refuses_options_out_of_range, setup, teardown),
      cmocka_unit_test_setup_teardown(unknown_options_are_one_line_pointing_to_help, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(malformed_store_urls_exit_2_an_absent_store_3, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(inspect_takes_any_time_a_heartbeat_holds, setup, teardown),
      cmocka_unit_test_setup_teardown(truncated_database_is_one_line_exit_3, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
