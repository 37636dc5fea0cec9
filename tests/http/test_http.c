/* The HTTP API against a real server on a free loopback port, a real store
 * (SQLite, or with the argument "redis" a private redis-server) and a real
 * `errand worker` with the example tasks and pipelines: sends, long polls,
 * keys, revokes, the error answers, bearer auth, and the callback endpoint's
 * refusals and deliveries (the fixture in http_fixture.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand.h>

#include "http_fixture.h"

static void send_then_wait(void **state) {
  json_t *a = call("POST", "/api/v1/tasks", "{\"task\": \"add\", \"args\": [2, 3]}", 202);
  char path[128];
  snprintf(path, sizeof path, "/api/v1/tasks/%s", str(a, "id"));
  assert_string_equal(str(a, "status_url"), path);
  strcat(path, "?wait=60");
  json_t *s = call("GET", path, NULL, 200);
  assert_string_equal(str(s, "state"), "SUCCESS");
  assert_int_equal(json_integer_value(json_object_get(s, "result")), 5);
  assert_string_equal(str(s, "task"), "add");
  assert_non_null(str(s, "finished"));
  json_decref(s);
  json_decref(a);
  /* Send options reach the store: a countdown leaves it waiting. */
  a = call("POST", "/api/v1/tasks",
           "{\"task\": \"add\", \"args\": [1, 1], \"countdown\": 3600, \"queue\": \"q9\", "
           "\"priority\": 4, \"context\": {\"user\": \"ann\"}}", 202);
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(H.client, str(a, "id"), NULL, &r), 0);
  assert_string_equal(r->queue, "q9");
  assert_int_equal(r->priority, 4);
  assert_string_equal(json_string_value(json_object_get(r->context, "user")), "ann");
  assert_true(r->eta_ms > er_now_wall_ms() + 3000000);
  er_task_rec_free(r);
  json_decref(a);
}

static void keys_start_once(void **state) {
  json_t *a = call("PUT", "/api/v1/keys/k%2F1", "{\"task\": \"add\", \"args\": [20, 22]}", 202);
  assert_string_equal(str(a, "key"), "k/1");
  char path[128];
  snprintf(path, sizeof path, "/api/v1/tasks/%s?wait=60", str(a, "id"));
  json_decref(call("GET", path, NULL, 200));
  /* The key names a task already: it is the answer, nothing new runs. */
  json_t *b = call("PUT", "/api/v1/keys/k%2F1", "{\"task\": \"add\", \"args\": [1, 1]}", 200);
  assert_string_equal(str(a, "id"), str(b, "id"));
  json_t *g = call("GET", "/api/v1/keys/k%2F1", NULL, 200);
  assert_string_equal(str(g, "state"), "SUCCESS");
  assert_int_equal(json_integer_value(json_object_get(g, "result")), 42);
  json_decref(call("GET", "/api/v1/keys/never-used", NULL, 404));
  json_decref(g);
  json_decref(b);
  json_decref(a);
}

static void revoke_task(void **state) {
  json_t *a = call("POST", "/api/v1/tasks", "{\"task\": \"add\", \"args\": [1, 2], "
                   "\"countdown\": 3600}", 202);
  char path[128];
  snprintf(path, sizeof path, "/api/v1/tasks/%s", str(a, "id"));
  json_t *d = call("DELETE", path, NULL, 200);
  assert_string_equal(str(d, "state"), "REVOKED");
  json_t *g = call("GET", path, NULL, 200);
  assert_string_equal(str(g, "state"), "REVOKED");
  json_decref(call("DELETE", "/api/v1/tasks/01a2376b-0000-7000-8000-000000000000", NULL, 404));
  json_decref(call("GET", "/api/v1/tasks/01a2376b-0000-7000-8000-000000000000", NULL, 404));
  json_decref(call("GET", "/api/v1/tasks/not-an-id", NULL, 404));
  json_decref(g);
  json_decref(d);
  json_decref(a);
}

static void bad_requests(void **state) {
  json_decref(call("GET", "/api/v1/nothing", NULL, 404));
  tc_resp_t r = tc_req(g_port, "PATCH", "/api/v1/tasks/x", NULL);
  assert_int_equal(r.status, 405);
  assert_true(tc_is_error(&r));
  char *allow = tc_header(&r, "Allow");
  assert_non_null(allow);
  assert_string_equal(allow, "GET, DELETE");
  free(allow);
  tc_free(&r);
  json_t *e = call("POST", "/api/v1/tasks", "{\"task\": \"add\", \"args\": [1,", 400);
  const char *m = str(json_object_get(e, "error"), "message");
  assert_non_null(strstr(m, "malformed JSON"));
  if (!strstr(m, "(line 1, column 27, position 27)")) fail_msg("%s", m);
  json_decref(e);
  json_decref(call("POST", "/api/v1/tasks", "[1]", 400));
  json_decref(call("POST", "/api/v1/tasks", "{\"args\": []}", 400));
  json_decref(call("POST", "/api/v1/tasks", "{\"task\": \"add\", \"args\": {}}", 400));
  json_decref(call("POST", "/api/v1/tasks", "{\"task\": \"add\", \"colour\": 1}", 400));
  json_decref(call("GET", "/api/v1/tasks/01a2376b-0000-7000-8000-000000000000?wait=x", NULL,
                   400));
  /* Over 1 MiB: 413, whether announced by Content-Length or not. */
  size_t big = 1024 * 1024 + 10;
  char *body = malloc(big);
  memset(body, ' ', big);
  r = tc_request(g_port, "POST", "/api/v1/tasks", NULL, body, big);
  assert_int_equal(r.status, 413);
  assert_true(tc_is_error(&r));
  tc_free(&r);
  free(body);
  json_t *h = call("GET", "/healthz", NULL, 200);
  assert_string_equal(str(h, "status"), "ok");
  json_decref(h);
}

static void bearer_token(void **state) {
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url, .token = "s3cret",
                      .base_url = "http://example.test/"};
  er_http_server_t *s;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  int port = er_http_server_port(s);
  const char *body = "{\"task\": \"add\", \"args\": [1, 2]}";
  const char *const wrong[] = {NULL, "Authorization: Bearer s3cre\r\n",
                               "Authorization: Bearer s3cretX\r\n", "Authorization: s3cret\r\n"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    tc_resp_t r = tc_request(port, "POST", "/api/v1/tasks", wrong[i], body, strlen(body));
    assert_int_equal(r.status, 401);
    assert_true(tc_is_error(&r));
    tc_free(&r);
  }
  tc_resp_t r = tc_request(port, "POST", "/api/v1/tasks", "Authorization: Bearer s3cret\r\n",
                           body, strlen(body));
  assert_int_equal(r.status, 202);
  json_t *j = tc_json(&r);
  assert_string_equal(str(j, "status_url") + strlen(str(j, "status_url")) - 36, str(j, "id"));
  assert_int_equal(strncmp(str(j, "status_url"), "http://example.test/api/v1/tasks/", 33), 0);
  json_decref(j);
  tc_free(&r);
  r = tc_req(port, "GET", "/api/v1/nothing", NULL); /* no route told without the token */
  assert_int_equal(r.status, 401);
  tc_free(&r);
  r = tc_req(port, "GET", "/healthz", NULL); /* no token needed */
  assert_int_equal(r.status, 200);
  tc_free(&r);
  er_http_server_free(s);
  /* What is not an address is refused before anything listens. */
  o.listen = "127.0.0.1:99999";
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), ER_EINVAL);
  o.listen = "nowhere:80";
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), ER_EINVAL);
}

/* The path and query of url (a pointer into it). */
static const char *path_of(const char *url) { return strstr(url + 7, "/"); }

static void callback_signed(void **state) {
  er_id_t root;
  json_t *links = links_of("approve_demo", &root);
  const char *approve = path_of(str(links, "approve"));
  const char *deny = path_of(str(links, "deny"));
  char path[512];
  /* Absent, wrong and tampered tokens, an unknown pipeline: the same 403. */
  snprintf(path, sizeof path, "/callback?pipeline_id=%s&choice=approve", root.text);
  json_decref(call("GET", path, NULL, 403));
  snprintf(path, sizeof path, "/callback?pipeline_id=%s&choice=approve&token=%064d", root.text, 7);
  json_decref(call("GET", path, NULL, 403));
  snprintf(path, sizeof path, "/callback?pipeline_id=%s&choice=approve&token=%s", root.text,
           strstr(deny, "token=") + 6);
  json_decref(call("GET", path, NULL, 403));
  snprintf(path, sizeof path, "%s", approve);
  memcpy(strstr(path, "pipeline_id=") + 12, "01a2376b-0000-7000-8000-000000000000", 36);
  json_decref(call("GET", path, NULL, 403));
  json_decref(call("GET", "/callback", NULL, 403));
  status_of(root.text, "run"); /* none of those reached it */
  /* The real link, as a form POST: the callback's own answer. */
  const char *q = strchr(approve, '?') + 1;
  snprintf(path, sizeof path, "/callback?pipeline_id=%s", root.text);
  char form[512];
  snprintf(form, sizeof form, "%s", strstr(q, "choice="));
  tc_resp_t r = tc_request(g_port, "POST", path,
                           "Content-Type: application/x-www-form-urlencoded\r\n", form,
                           strlen(form));
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "approved");
  tc_free(&r);
  status_of(root.text, "done");
  json_t *out = NULL;
  assert_int_equal(er_pipeline_output(H.client, root.text, NULL, &out), 0);
  assert_true(json_is_true(out));
  json_decref(out);
  /* Done now: a signed caller is told so. */
  json_decref(call("GET", approve, NULL, 409));
  json_decref(links);
}

static void callback_public(void **state) {
  er_id_t root;
  json_t *links = links_of("Approval", &root);
  const char *approve = path_of(str(links, "approve"));
  char path[512];
  snprintf(path, sizeof path, "%s", approve);
  path[strlen(path) - 1] ^= 1; /* its own token, one digit changed */
  tc_resp_t r = tc_req(g_port, "GET", path, NULL);
  assert_int_equal(r.status, 403);
  tc_free(&r);
  /* A public pipeline's token is no key to another pipeline. */
  snprintf(path, sizeof path, "%s", approve);
  memcpy(strstr(path, "pipeline_id=") + 12, "01a2376b-0000-7000-8000-000000000000", 36);
  json_decref(call("GET", path, NULL, 403));
  r = tc_req(g_port, "GET", approve, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "approved");
  tc_free(&r);
  status_of(root.text, "done");
  json_decref(links);
}

/* Reads from fd until EOF, an error or 60 s; true when the server closed
 * the connection without answering. */
static bool closed_unanswered(int fd) {
  struct timeval tv = {.tv_sec = 60};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  ssize_t got = recv(fd, buf, sizeof buf, 0);
  return got == 0 || (got < 0 && errno == ECONNRESET);
}

/* GET /healthz until it answers want (0: closed unanswered), for up to 30 s;
 * the last status. */
static int probe_until(int port, int want) {
  int status = -1;
  for (int i = 0; i < 600 && status != want; i++) {
    if (i) usleep(50000);
    tc_resp_t r = tc_req(port, "GET", "/healthz", NULL);
    status = r.status;
    tc_free(&r);
  }
  return status;
}

static void slow_clients_and_connection_limit(void **state) {
  /* A client that stops halfway through its headers is cut off. */
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url, .timeout_s = 1};
  er_http_server_t *s;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  int fd = tc_dial(er_http_server_port(s));
  assert_true(fd >= 0);
  const char *half = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  assert_int_equal(send(fd, half, strlen(half), 0), (ssize_t)strlen(half));
  assert_true(closed_unanswered(fd));
  close(fd);
  er_http_server_free(s);
  /* Past max_connections, a connection is closed at once, unanswered; once
   * one ends, the next is served. */
  o.timeout_s = 120;
  o.max_connections = 2;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  int port = er_http_server_port(s);
  int held[2];
  for (int i = 0; i < 2; i++) {
    held[i] = tc_dial(port);
    assert_true(held[i] >= 0);
    assert_int_equal(send(held[i], half, strlen(half), 0), (ssize_t)strlen(half));
  }
  /* Until the server has accepted both held ones, a probe may be served. */
  assert_int_equal(probe_until(port, 0), 0);
  close(held[0]);
  assert_int_equal(probe_until(port, 200), 200); /* once the server sees the close */
  close(held[1]);
  er_http_server_free(s);
}

static void serve_command(void **state) {
  char log[400];
  snprintf(log, sizeof log, "%s/serve.log", H.dir);
  pid_t p = h_cli_start(&H, log, "serve", "--listen", "127.0.0.1:0", NULL);
  assert_true(h_wait_text(log, "\n", 30000));
  char *text = h_read_file(log);
  int port = 0;
  assert_int_equal(sscanf(text, "http://127.0.0.1:%d\n", &port), 1);
  free(text);
  tc_resp_t r = tc_req(port, "GET", "/healthz", NULL);
  assert_int_equal(r.status, 200);
  tc_free(&r);
  int st = h_stop(p, SIGTERM);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_int_equal(h_cli(&H, NULL, NULL, "serve", "--listen", "localhost:http", NULL), 2);
  assert_int_equal(h_cli(&H, NULL, NULL, "serve", "--secret", "x", NULL), 2);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(send_then_wait), cmocka_unit_test(keys_start_once),
      cmocka_unit_test(revoke_task),       cmocka_unit_test(bad_requests),
      cmocka_unit_test(bearer_token),   cmocka_unit_test(callback_signed),
      cmocka_unit_test(callback_public), cmocka_unit_test(slow_clients_and_connection_limit),
      cmocka_unit_test(serve_command),
  };
  return fx_run(argc, argv, "http", tests, sizeof tests / sizeof tests[0]);
}
