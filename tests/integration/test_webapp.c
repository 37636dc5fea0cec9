/* examples/webapp.c end to end: the program started on a free port of the
 * loopback with a SQLite store, POST /signup with `Authorization: Bearer
 * alice` answers 202 with a task id, and that task, run by the program's
 * embedded worker, reads "alice" back from its context ("mail to alice:
 * welcome", read here with er_result on the id). Without the header it is
 * 401 and nothing is sent; other methods and paths are refused. SIGTERM,
 * which the program waits for itself (the worker installs no handler),
 * ends it cleanly. WEBAPP_BIN comes from the build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errand.h>
#include <errand/client.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "store_url.h"

typedef struct app {
  char dir[256], url[320];
  pid_t pid;
  int port;
  er_client_t *c;
} app_t;

/* Starts the program and reads the port it says it listens on. */
static int setup(void **state) {
  app_t *a = calloc(1, sizeof *a);
  test_store_url("webapp", NULL, a->dir, sizeof a->dir, a->url, sizeof a->url);
  int out[2];
  assert_int_equal(pipe(out), 0);
  a->pid = fork();
  assert_true(a->pid >= 0);
  if (a->pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(WEBAPP_BIN, WEBAPP_BIN, "--port", "0", "--store", a->url, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  char line[256] = "";
  if (!fgets(line, sizeof line, f)) fail_msg("example_webapp said nothing");
  fclose(f);
  const char *p = strstr(line, "127.0.0.1:");
  if (!p || sscanf(p + 10, "%d", &a->port) != 1) fail_msg("no port in: %s", line);
  char msg[256] = "";
  if (er_client_open(a->url, &a->c, msg, sizeof msg)) fail_msg("client: %s", msg);
  *state = a;
  return 0;
}

static int teardown(void **state) {
  app_t *a = *state;
  if (a->pid > 0) {
    kill(a->pid, SIGKILL);
    waitpid(a->pid, NULL, 0);
  }
  er_client_close(a->c);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", a->dir);
  if (system(cmd)) {}
  free(a);
  return 0;
}

/* One request, Connection: close; returns the status, *body (may be NULL)
 * the response's body as a new string. */
static int http(const app_t *a, const char *method, const char *path, const char *headers,
                char **body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n",
                   method, path, headers);
  assert_int_equal(write(fd, req, (size_t)n), n);
  char resp[8192];
  size_t len = 0;
  for (ssize_t r; (r = read(fd, resp + len, sizeof resp - 1 - len)) > 0;) len += (size_t)r;
  close(fd);
  resp[len] = 0;
  int status = 0;
  if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) fail_msg("not an HTTP response: %s", resp);
  const char *b = strstr(resp, "\r\n\r\n");
  if (body) *body = strdup(b ? b + 4 : "");
  return status;
}

/* POSTs /signup as user; returns the task id it answers with. */
static void signup(const app_t *a, const char *user, er_id_t *id) {
  char hdr[128], *body = NULL;
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", user);
  assert_int_equal(http(a, "POST", "/signup", hdr, &body), 202);
  json_t *j = json_loads(body, 0, NULL);
  if (!json_is_string(json_object_get(j, "id"))) fail_msg("no id in: %s", body);
  snprintf(id->text, sizeof id->text, "%s", json_string_value(json_object_get(j, "id")));
  json_decref(j);
  free(body);
}

static void the_task_reads_the_callers_user_back(void **state) {
  app_t *a = *state;
  const char *users[] = {"alice", "bob"};
  er_id_t ids[2];
  for (int i = 0; i < 2; i++) signup(a, users[i], &ids[i]);
  for (int i = 0; i < 2; i++) {
    json_t *res = NULL, *err = NULL;
    int rc = er_result(a->c, ids[i].text, NULL, 30000, &res, &err);
    if (rc) fail_msg("task %s: %s", ids[i].text, er_err_name(rc));
    char want[64];
    snprintf(want, sizeof want, "mail to %s: welcome", users[i]);
    assert_string_equal(json_string_value(res), want);
    json_decref(res);
  }
}

/* How many tasks the store holds, in any state. */
static long tasks_sent(app_t *a) {
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(a->url, &s, NULL, 0), 0);
  json_t *stats = NULL, *n;
  assert_int_equal(er_store_stats(s, &stats), 0);
  long total = 0;
  const char *state;
  json_object_foreach(json_object_get(stats, "total"), state, n) total += (long)json_integer_value(n);
  json_decref(stats);
  er_store_close(s);
  return total;
}

static void bad_requests_are_refused_and_send_nothing(void **state) {
  app_t *a = *state;
  char *body = NULL;
  assert_int_equal(http(a, "POST", "/signup", "", &body), 401);
  assert_non_null(strstr(body, "Bearer"));
  free(body);
  assert_int_equal(http(a, "POST", "/signup", "Authorization: Basic YWxpY2U6eA==\r\n", NULL), 401);
  assert_int_equal(http(a, "GET", "/signup", "Authorization: Bearer alice\r\n", NULL), 405);
  assert_int_equal(http(a, "POST", "/nope", "Authorization: Bearer alice\r\n", NULL), 404);
  assert_int_equal(tasks_sent(a), 0);
}

static void sigterm_stops_it_cleanly(void **state) {
  app_t *a = *state;
  er_id_t id;
  signup(a, "carol", &id);
  json_t *res = NULL;
  assert_int_equal(er_result(a->c, id.text, NULL, 30000, &res, NULL), 0);
  json_decref(res);
  assert_int_equal(kill(a->pid, SIGTERM), 0);
  int st = 0;
  assert_int_equal(waitpid(a->pid, &st, 0), a->pid);
  a->pid = 0;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("wait status %#x", st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(the_task_reads_the_callers_user_back, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_requests_are_refused_and_send_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(sigterm_stops_it_cleanly, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
