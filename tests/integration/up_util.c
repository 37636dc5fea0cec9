/* The helpers test_up.c and test_secret.c share: the errand command
 * started on the test's store with its output in a log, the URL it prints,
 * and HTTP calls to it (tests/http's client). */
#include <errno.h>
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

#include "up_util.h"

harness_t H;
char g_log[400];

int setup(void **state) {
  h_setup(&H, NULL);
  snprintf(g_log, sizeof g_log, "%s/out.log", H.dir);
  return 0;
}

int teardown(void **state) {
  h_teardown(&H);
  return 0;
}

/* ERRAND_BIN with args (NULL-ended) and --store H's URL, its stdout and
 * stderr appended to g_log. */
pid_t launchv(const char *first, va_list ap) {
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

pid_t launch(const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  pid_t pid = launchv(first, ap);
  va_end(ap);
  return pid;
}

/* The port in the first "http://127.0.0.1:PORT" the log shows after
 * from (bytes already there before the process started). */
int wait_port(size_t from) {
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

size_t log_size(void) {
  char *log = h_read_file(g_log);
  size_t n = strlen(log);
  free(log);
  return n;
}

/* The command (args NULL-ended) started as launch does; *port gets the
 * port of the first URL it prints. */
pid_t start(int *port, const char *first, ...) {
  size_t from = log_size();
  va_list ap;
  va_start(ap, first);
  pid_t pid = launchv(first, ap);
  va_end(ap);
  *port = wait_port(from);
  return pid;
}

json_t *request(int port, const char *method, const char *path, const char *body,
                       int want) {
  tc_resp_t r = tc_req(port, method, path, body);
  if (r.status != want) fprintf(stderr, "%s %s: %d %s\n", method, path, r.status, r.body);
  assert_int_equal(r.status, want);
  json_t *j = tc_json(&r);
  tc_free(&r);
  return j;
}

void add_over_http(int port) {
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
char *approve_link(int port, char root[ER_ID_LEN + 1]) {
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

const char *path_of(const char *url) { return strchr(url + 7, '/'); }

void wait_status(int port, const char *root, const char *want) {
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
int get(int port, const char *path, char **body) {
  tc_resp_t r = tc_req(port, "GET", path, NULL);
  int st = r.status;
  if (body) *body = strdup(r.body ? r.body : "");
  tc_free(&r);
  return st;
}

/* The pid after "worker pid " in the log, the latest one. */
pid_t worker_pid(void) {
  char *log = h_read_file(g_log), *p = log, *last = NULL;
  while ((p = strstr(p, "worker pid "))) last = p += 11;
  pid_t pid = last ? atoi(last) : 0;
  free(log);
  return pid;
}

void expect_exit(pid_t pid, int sig, int code) {
  int st = h_stop(pid, sig);
  if (!WIFEXITED(st)) {
    char *log = h_read_file(g_log);
    fprintf(stderr, "%s", log);
    free(log);
  }
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), code);
}

/* One errand: line on stderr and exit code want. */
void refused(int want, const char *needle, char *const argv[]) {
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

