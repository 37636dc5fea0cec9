/* `errand up` as a user runs it: a real process on a free loopback port,
 * on a fresh SQLite file and on a private redis-server, spoken to over HTTP
 * (tests/http's client): a task sent and its result read, an async
 * pipeline completed through the callback URL its worker made (which must
 * point at up's own address), a worker killed and replaced, SIGTERM and
 * exit 0; its refusals (bad flags, a port in use); and the HTTP API's eta
 * as an RFC 3339 time. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand/http.h>

#include "up_util.h"

/* The whole round on H's store: task, callback at up's own address, stop. */
static void round_trip(void) {
  int port;
  pid_t up = start(&port, "up", "--listen", "127.0.0.1:0", "-c", "2", NULL);
  add_over_http(port);
  char root[ER_ID_LEN + 1], want[64];
  char *link = approve_link(port, root);
  snprintf(want, sizeof want, "http://127.0.0.1:%d/callback?", port);
  assert_true(!strncmp(link, want, strlen(want)));
  char *body = NULL;
  assert_int_equal(get(port, path_of(link), &body), 200);
  assert_string_equal(body, "approved");
  free(body);
  free(link);
  wait_status(port, root, "done");
  pid_t worker = worker_pid();
  assert_true(worker > 0);
  /* The errand lines it prints reach this store. */
  char line[700];
  snprintf(line, sizeof line, "send add --args '[2, 3]' --wait --store '%s'\n", H.url);
  assert_true(h_wait_text(g_log, line, 1000));
  expect_exit(up, SIGTERM, 0);
  /* The worker went with it (up reaped it): no process is left. */
  assert_int_equal(kill(worker, 0), -1);
  assert_int_equal(errno, ESRCH);
  assert_true(h_wait_text(g_log, "stopping", 1000));
}

static void up_on_sqlite(void **state) { round_trip(); }

static void up_on_redis(void **state) {
  h_teardown(&H);
  if (!h_setup_redis(&H)) {
    h_setup(&H, NULL); /* for teardown */
    skip();
  }
  snprintf(g_log, sizeof g_log, "%s/out.log", H.dir);
  round_trip();
  h_teardown_redis(&H);
  h_setup(&H, NULL);
}

/* A worker killed under it is replaced; the server answers throughout. */
static void up_replaces_a_killed_worker(void **state) {
  int port;
  pid_t up = start(&port, "up", "--listen", "127.0.0.1:0", "-c", "2", "-P", "threads", NULL);
  pid_t first = worker_pid();
  h_wait_workers(&H, 1, 60000);
  kill(first, SIGKILL);
  assert_true(h_wait_text(g_log, "killed by signal 9: starting another", 30000));
  assert_int_equal(get(port, "/healthz", NULL), 200);
  add_over_http(port); /* run by the new worker */
  expect_exit(up, SIGINT, 0);
}

static void up_refuses_bad_input(void **state) {
  char *const bogus[] = {ERRAND_BIN, "up", "--bogus", "--store", H.url, NULL};
  refused(2, "unknown option '--bogus'", bogus);
  char *const pool[] = {ERRAND_BIN, "up", "-P", "forks", "--store", H.url, NULL};
  refused(2, "unknown pool 'forks'", pool);
  char *const conc[] = {ERRAND_BIN, "up", "-c", "0", "--store", H.url, NULL};
  refused(2, "--concurrency", conc);
  char *const lib[] = {ERRAND_BIN, "up", "-A", "/nonexistent/libx.so", "--store", H.url, NULL};
  refused(2, "libx.so", lib);
  char *const shortsec[] = {ERRAND_BIN, "up", "--secret", "short", "--store", H.url, NULL};
  refused(2, "at least 16", shortsec);
  char *const nofile[] = {ERRAND_BIN, "up", "--secret-file", "/nonexistent/s", "--store", H.url,
                          NULL};
  refused(2, "--secret-file /nonexistent/s", nofile);
  char *const envsec[] = {"/usr/bin/env", "ERRAND_SECRET=tooshort", ERRAND_BIN, "up",
                          "--store", H.url, NULL};
  refused(2, "$ERRAND_SECRET", envsec);
  char *const listen[] = {ERRAND_BIN, "up", "--listen", "nowhere", "--store", H.url, NULL};
  refused(2, "listen address", listen);
  char bad_store[400];
  snprintf(bad_store, sizeof bad_store, "sqlite:%s/no/such/dir/x.db", H.dir);
  char *const store[] = {ERRAND_BIN, "up", "--listen", "127.0.0.1:0", "--store", bad_store, NULL};
  refused(3, "errand:", store);
  /* The same checks on the other commands that take a secret. */
  char *const worker[] = {ERRAND_BIN, "worker", "--secret", "short", "--store", H.url, NULL};
  refused(2, "at least 16", worker);
  char *const serve[] = {ERRAND_BIN, "serve", "--secret", "short", "--store", H.url, NULL};
  refused(2, "at least 16", serve);
}

/* A port another socket holds: one line, exit 2 (as serve), no worker. */
static void up_port_in_use(void **state) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  char where[32];
  snprintf(where, sizeof where, "127.0.0.1:%d", ntohs(a.sin_port));
  char *const argv[] = {ERRAND_BIN, "up", "--listen", where, "--store", H.url, NULL};
  refused(2, "cannot listen on", argv);
  close(fd);
}

/* POST /api/v1/tasks takes eta as ms or as an RFC 3339 time (offsets
 * converted); a bad time is a 400 naming the field, and nothing is sent. */
static void http_eta_as_time(void **state) {
  er_http_opts_t o = {.store_url = H.url, .listen = "127.0.0.1:0"};
  er_http_server_t *s = NULL;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  int port = er_http_server_port(s);
  static const struct {
    const char *eta;
    long long ms;
  } good[] = {{"\"2026-12-02T15:41:32.934Z\"", 1796226092934LL},
              {"\"2026-12-02T15:41:32Z\"", 1796226092000LL},
              {"\"2026-12-02T16:41:32.934123+01:00\"", 1796226092934LL},
              {"\"2026-12-02T15:41:32.934+00:00\"", 1796226092934LL},
              {"1796226092934", 1796226092934LL}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char body[200];
    snprintf(body, sizeof body, "{\"task\": \"add\", \"eta\": %s}", good[i].eta);
    json_t *a = request(port, "POST", "/api/v1/tasks", body, 202);
    er_task_rec_t *r = NULL;
    assert_int_equal(er_status(H.client, json_string_value(json_object_get(a, "id")), NULL, &r), 0);
    assert_int_equal(r->eta_ms, good[i].ms);
    er_task_rec_free(r);
    json_decref(a);
  }
  static const char *const bad[] = {"\"2026-12-02T15:41:32\"", "\"2026-02-30T00:00:00Z\"",
                                    "\"tomorrow\"", "\"\"", "-1", "1.5", "true"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char body[200];
    snprintf(body, sizeof body, "{\"task\": \"add\", \"eta\": %s}", bad[i]);
    tc_resp_t r = tc_req(port, "POST", "/api/v1/tasks", body);
    assert_int_equal(r.status, 400);
    assert_true(tc_is_error(&r));
    assert_non_null(strstr(r.body, "'eta' must be"));
    tc_free(&r);
  }
  assert_int_equal(h_count_state(&H, "PENDING"), (long)(sizeof good / sizeof good[0]));
  er_http_server_free(s);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(up_on_sqlite, setup, teardown),
      cmocka_unit_test_setup_teardown(up_on_redis, setup, teardown),
      cmocka_unit_test_setup_teardown(up_replaces_a_killed_worker, setup, teardown),
      cmocka_unit_test_setup_teardown(up_refuses_bad_input, setup, teardown),
      cmocka_unit_test_setup_teardown(up_port_in_use, setup, teardown),
      cmocka_unit_test_setup_teardown(http_eta_as_time, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
