/* `errand up` as a user runs it: a real process on a free loopback port,
 * on a fresh SQLite file and on a private redis-server, spoken to over HTTP
 * (tests/http's client): a task sent and its result read, an async
 * pipeline completed through the callback URL its worker made (which must
 * point at up's own address), a worker killed and replaced, SIGTERM and
 * exit 0. Then its refusals (bad flags, a port in use), callback secrets
 * of the server's own (shared by worker and server, or not), and the HTTP
 * API's eta as an RFC 3339 time. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include <errand.h>
#include <errand/http.h>

#include "harness.h"
#include "http_client.h"

#define SECRET_A "a-secret-of-twenty-four!"
#define SECRET_B "another-secret-of-24-b!!"

static harness_t H;
static char g_log[400];

static int setup(void **state) {
  h_setup(&H, NULL);
  snprintf(g_log, sizeof g_log, "%s/out.log", H.dir);
  return 0;
}

static int teardown(void **state) {
  h_teardown(&H);
  return 0;
}

/* ERRAND_BIN with args (NULL-ended) and --store H's URL, its stdout and
 * stderr appended to g_log. */
static pid_t launchv(const char *first, va_list ap) {
  const char *argv[40];
  int n = 0;
  argv[n++] = ERRAND_BIN;
  for (const char *a = first; a && n < 36; a = va_arg(ap, const char *)) argv[n++] = a;
  argv[n++] = "--store";
  argv[n++] = H.url;
  argv[n] = NULL;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(g_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(ERRAND_BIN, (char *const *)argv);
    _exit(127);
  }
  return pid;
}

static pid_t launch(const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  pid_t pid = launchv(first, ap);
  va_end(ap);
  return pid;
}

/* The port in the first "http://127.0.0.1:PORT" the log shows after
 * from (bytes already there before the process started). */
static int wait_port(size_t from) {
  for (int i = 0; i < 1200; i++) {
    char *log = h_read_file(g_log);
    const char *p = strlen(log) > from ? strstr(log + from, "http://127.0.0.1:") : NULL;
    int port = p ? atoi(p + 17) : 0;
    free(log);
    if (port > 0) return port;
    usleep(50000);
  }
  fail_msg("no URL in %s", g_log);
  return 0;
}

static size_t log_size(void) {
  char *log = h_read_file(g_log);
  size_t n = strlen(log);
  free(log);
  return n;
}

/* The command (args NULL-ended) started as launch does; *port gets the
 * port of the first URL it prints. */
static pid_t start(int *port, const char *first, ...) {
  size_t from = log_size();
  va_list ap;
  va_start(ap, first);
  pid_t pid = launchv(first, ap);
  va_end(ap);
  *port = wait_port(from);
  return pid;
}

static json_t *request(int port, const char *method, const char *path, const char *body,
                       int want) {
  tc_resp_t r = tc_req(port, method, path, body);
  if (r.status != want) fprintf(stderr, "%s %s: %d %s\n", method, path, r.status, r.body);
  assert_int_equal(r.status, want);
  json_t *j = tc_json(&r);
  tc_free(&r);
  return j;
}

static void add_over_http(int port) {
  json_t *a = request(port, "POST", "/api/v1/tasks", "{\"task\": \"add\", \"args\": [2, 3]}", 202);
  char path[160];
  snprintf(path, sizeof path, "/api/v1/tasks/%s?wait=60",
           json_string_value(json_object_get(a, "id")));
  json_decref(a);
  for (int i = 0; i < 10; i++) { /* a loaded machine: wait again */
    json_t *s = request(port, "GET", path, NULL, 200);
    const char *state = json_string_value(json_object_get(s, "state"));
    if (!strcmp(state, "SUCCESS")) {
      assert_int_equal(json_integer_value(json_object_get(s, "result")), 5);
      json_decref(s);
      return;
    }
    json_decref(s);
  }
  fail_msg("add never finished");
}

/* Starts approve_demo over HTTP; its root id into root, its approve link
 * (new string) returned once its worker has made it. */
static char *approve_link(int port, char root[ER_ID_LEN + 1]) {
  json_t *a = request(port, "POST", "/api/v1/pipelines", "{\"pipeline\": \"approve_demo\"}", 202);
  snprintf(root, ER_ID_LEN + 1, "%s", json_string_value(json_object_get(a, "id")));
  json_decref(a);
  char path[160];
  snprintf(path, sizeof path, "/api/v1/pipelines/%s", root);
  for (int i = 0; i < 1200; i++) {
    json_t *t = request(port, "GET", path, NULL, 200);
    json_t *rec = json_object_get(json_object_get(t, "pipelines"), root);
    const char *link = json_string_value(json_object_get(json_object_get(rec, "links"), "approve"));
    char *out = link ? strdup(link) : NULL;
    json_decref(t);
    if (out) return out;
    usleep(50000);
  }
  fail_msg("pipeline %s shows no links", root);
  return NULL;
}

static const char *path_of(const char *url) { return strchr(url + 7, '/'); }

static void wait_status(int port, const char *root, const char *want) {
  char path[160];
  snprintf(path, sizeof path, "/api/v1/pipelines/%s", root);
  for (int i = 0; i < 1200; i++) {
    json_t *t = request(port, "GET", path, NULL, 200);
    const char *st =
        json_string_value(json_object_get(json_object_get(json_object_get(t, "pipelines"), root),
                                          "status"));
    bool done = st && !strcmp(st, want);
    json_decref(t);
    if (done) return;
    usleep(50000);
  }
  fail_msg("pipeline %s never %s", root, want);
}

/* GET path on port: its status, its body into body (new; may be NULL). */
static int get(int port, const char *path, char **body) {
  tc_resp_t r = tc_req(port, "GET", path, NULL);
  int st = r.status;
  if (body) *body = strdup(r.body ? r.body : "");
  tc_free(&r);
  return st;
}

/* The pid after "worker pid " in the log, the latest one. */
static pid_t worker_pid(void) {
  char *log = h_read_file(g_log), *p = log, *last = NULL;
  while ((p = strstr(p, "worker pid "))) last = p += 11;
  pid_t pid = last ? atoi(last) : 0;
  free(log);
  return pid;
}

static void expect_exit(pid_t pid, int sig, int code) {
  int st = h_stop(pid, sig);
  if (!WIFEXITED(st)) {
    char *log = h_read_file(g_log);
    fprintf(stderr, "%s", log);
    free(log);
  }
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), code);
}

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

/* One errand: line on stderr and exit code want. */
static void refused(int want, const char *needle, char *const argv[]) {
  char *out = NULL, *err = NULL;
  int rc = h_run(&out, &err, argv);
  if (rc != want || !strstr(err, needle)) fprintf(stderr, "got %d: %s", rc, err);
  assert_int_equal(rc, want);
  assert_non_null(strstr(err, needle));
  assert_int_equal(strchr(err, '\n') - err + 1, (long)strlen(err)); /* one line */
  assert_string_equal(out, "");
  free(out);
  free(err);
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

/* Tokens made under a secret of up's own are accepted by a server given the
 * same, and refused (403) by one given another or none; tokens made under
 * the store's secret are refused by a server given its own. */
static void secrets_of_their_own(void **state) {
  char file[400];
  snprintf(file, sizeof file, "%s/secret", H.dir);
  FILE *f = fopen(file, "w");
  fprintf(f, "%s\n", SECRET_A);
  fclose(f);
  int port;
  pid_t up = start(&port, "up", "--listen", "127.0.0.1:0", "-c", "2", "--secret-file", file, NULL);
  char r1[ER_ID_LEN + 1], r2[ER_ID_LEN + 1];
  char *l1 = approve_link(port, r1), *l2 = approve_link(port, r2);
  char *body = NULL;
  assert_int_equal(get(port, path_of(l1), &body), 200); /* worker and server agree */
  assert_string_equal(body, "approved");
  free(body);
  expect_exit(up, SIGTERM, 0);
  /* The store's secret made nothing here: a server without one refuses. */
  int sp;
  pid_t serve = start(&sp, "serve", "--listen", "127.0.0.1:0", NULL);
  assert_int_equal(get(sp, path_of(l2), NULL), 403);
  expect_exit(serve, SIGTERM, 0);
  serve = start(&sp, "serve", "--listen", "127.0.0.1:0", "--secret", SECRET_B, NULL);
  assert_int_equal(get(sp, path_of(l2), NULL), 403);
  expect_exit(serve, SIGTERM, 0);
  /* The same secret again (from $ERRAND_SECRET this time), with a worker
   * beside it: accepted and delivered. */
  size_t from = log_size();
  pid_t worker = launch("worker", "-A", PIPES_LIB, "-P", "threads", "--secret", SECRET_A, NULL);
  pid_t srv = fork();
  if (srv == 0) {
    int fd = open(g_log, O_WRONLY | O_APPEND);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("ERRAND_SECRET", SECRET_A, 1);
    execl(ERRAND_BIN, ERRAND_BIN, "serve", "--listen", "127.0.0.1:0", "--store", H.url, NULL);
    _exit(127);
  }
  sp = wait_port(from);
  assert_int_equal(get(sp, path_of(l2), &body), 200);
  assert_string_equal(body, "approved");
  free(body);
  expect_exit(srv, SIGTERM, 0);
  expect_exit(worker, SIGTERM, 0);
  free(l1);
  free(l2);
  /* Vice versa: a link under the store's secret, from up without one... */
  up = start(&port, "up", "--listen", "127.0.0.1:0", "-c", "2", NULL);
  char r3[ER_ID_LEN + 1];
  char *l3 = approve_link(port, r3);
  expect_exit(up, SIGTERM, 0);
  /* ...is refused by a server with a secret of its own. */
  serve = start(&sp, "serve", "--listen", "127.0.0.1:0", "--secret", SECRET_A, NULL);
  assert_int_equal(get(sp, path_of(l3), NULL), 403);
  expect_exit(serve, SIGTERM, 0);
  free(l3);
}

/* The library's options refuse a short secret with a message that says so,
 * and take one long enough. */
static void options_refuse_short_secrets(void **state) {
  char msg[256] = "";
  er_worker_t *w = NULL;
  er_worker_opts_t wo = {.store_url = H.url, .secret = "fifteen-bytes!!", .quiet = true};
  assert_int_equal(er_worker_new(&wo, &w, msg, sizeof msg), ER_EINVAL);
  assert_non_null(strstr(msg, "secret"));
  wo.secret = SECRET_A;
  assert_int_equal(er_worker_new(&wo, &w, msg, sizeof msg), 0);
  er_worker_free(w);
  er_http_server_t *s = NULL;
  er_http_opts_t ho = {.store_url = H.url, .listen = "127.0.0.1:0", .secret = "short"};
  assert_int_equal(er_http_server_new(&ho, &s, msg, sizeof msg), ER_EINVAL);
  assert_non_null(strstr(msg, "at least 16"));
  ho.secret = SECRET_A;
  assert_int_equal(er_http_server_new(&ho, &s, msg, sizeof msg), 0);
  er_http_server_free(s);
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
      cmocka_unit_test_setup_teardown(secrets_of_their_own, setup, teardown),
      cmocka_unit_test_setup_teardown(options_refuse_short_secrets, setup, teardown),
      cmocka_unit_test_setup_teardown(http_eta_as_time, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
