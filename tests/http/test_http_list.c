/* Listing tasks (GET /api/v1/tasks) and the metrics (GET /metrics) against
 * a real server, store and worker (http_fixture.c), on SQLite and Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand.h>

#include "http_fixture.h"

/* Sends task with args, on queue, an hour from now (it stays PENDING). */
static json_t *send_later(const char *task, int a, const char *queue) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"task\": \"%s\", \"args\": [%d, %d], \"kwargs\": {\"k\": %d}, "
           "\"context\": {\"user\": \"ann\"}, \"queue\": \"%s\", \"countdown\": 3600}",
           task, a, a, a, queue);
  return call("POST", "/api/v1/tasks", body, 202);
}

static void tasks_list(void **state) {
  json_t *sent[3];
  for (int i = 0; i < 3; i++) sent[i] = send_later("add", i, "q-list");
  json_decref(send_later("sleep", 9, "q-list"));
  json_t *p1 = call("GET", "/api/v1/tasks?queue=q-list&name=add&limit=2", NULL, 200);
  json_t *tasks = json_object_get(p1, "tasks");
  assert_int_equal(json_array_size(tasks), 2);
  json_t *t0 = json_array_get(tasks, 0);
  /* newest first; the record as GET /api/v1/tasks/{id} gives it, no result */
  assert_string_equal(str(t0, "id"), str(sent[2], "id"));
  assert_string_equal(str(t0, "state"), "PENDING");
  assert_string_equal(str(t0, "task"), "add");
  assert_string_equal(str(t0, "queue"), "q-list");
  assert_int_equal(json_integer_value(json_array_get(json_object_get(t0, "args"), 0)), 2);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(t0, "kwargs"), "k")), 2);
  assert_string_equal(str(json_object_get(t0, "context"), "user"), "ann");
  assert_string_equal(str(t0, "status_url"), str(sent[2], "status_url"));
  assert_null(json_object_get(t0, "result"));
  assert_string_equal(str(json_array_get(tasks, 1), "id"), str(sent[1], "id"));
  const char *next = str(p1, "next_cursor");
  assert_non_null(next);
  char path[256];
  snprintf(path, sizeof path, "/api/v1/tasks?queue=q-list&name=add&limit=2&cursor=%s", next);
  json_t *p2 = call("GET", path, NULL, 200);
  assert_int_equal(json_array_size(json_object_get(p2, "tasks")), 1);
  assert_string_equal(str(json_array_get(json_object_get(p2, "tasks"), 0), "id"),
                      str(sent[0], "id"));
  assert_null(json_object_get(p2, "next_cursor")); /* the last page */
  json_decref(p2);
  json_decref(p1);
  /* by state, case-insensitive; the default limit */
  json_t *pend = call("GET", "/api/v1/tasks?queue=q-list&state=pending", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(pend, "tasks")), 4);
  json_decref(pend);
  json_t *none = call("GET", "/api/v1/tasks?queue=q-list&state=SUCCESS", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(none, "tasks")), 0);
  assert_null(json_object_get(none, "next_cursor"));
  json_decref(none);
  /* the single record has what it was called with too */
  snprintf(path, sizeof path, "/api/v1/tasks/%s", str(sent[1], "id"));
  json_t *one = call("GET", path, NULL, 200);
  assert_int_equal(json_integer_value(json_array_get(json_object_get(one, "args"), 1)), 1);
  assert_non_null(json_object_get(one, "kwargs"));
  assert_string_equal(str(json_object_get(one, "context"), "user"), "ann");
  json_decref(one);
  /* bad input: 400 with the JSON error body */
  static const char *const bad[] = {
      "/api/v1/tasks?state=bogus",  "/api/v1/tasks?limit=0",   "/api/v1/tasks?limit=1001",
      "/api/v1/tasks?limit=abc",    "/api/v1/tasks?cursor=xyz", "/api/v1/tasks?colour=1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) json_decref(call("GET", bad[i], NULL, 400));
  for (int i = 0; i < 3; i++) json_decref(sent[i]);
}

/* ---- metrics ---------------------------------------------------------------- */

static char *metrics_text(void) {
  tc_resp_t r = tc_req(g_port, "GET", "/metrics", NULL);
  assert_int_equal(r.status, 200);
  char *ct = tc_header(&r, "Content-Type");
  assert_non_null(ct);
  assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
  free(ct);
  char *body = strdup(r.body);
  tc_free(&r);
  return body;
}

/* Every line is a comment or `name{labels} value` (labels escaped per the
 * format); fails otherwise. */
static void check_format(const char *text) {
  const char *line = text;
  int samples = 0;
  while (*line) {
    const char *end = strchr(line, '\n');
    assert_non_null(end); /* every line ends with a line feed */
    if (*line != '#') {
      const char *p = line;
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':'))
        fail_msg("bad metric name: %.*s", (int)(end - line), line);
      while (p < end && *p != '{' && *p != ' ') p++;
      if (*p == '{') {
        p++;
        while (*p != '}') {
          while (p < end && *p != '=') p++;
          if (p[0] != '=' || p[1] != '"') fail_msg("bad label: %.*s", (int)(end - line), line);
          p += 2;
          while (p < end && *p != '"') {
            if (*p == '\\') {
              if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                fail_msg("bad escape: %.*s", (int)(end - line), line);
              p++;
            }
            p++;
          }
          if (p >= end) fail_msg("unterminated label: %.*s", (int)(end - line), line);
          p++;
          if (*p == ',') p++;
          else if (*p != '}') fail_msg("bad label list: %.*s", (int)(end - line), line);
        }
        p++;
      }
      if (*p != ' ') fail_msg("no value: %.*s", (int)(end - line), line);
      char *vend;
      strtod(p + 1, &vend);
      if (vend != end && strncmp(p + 1, "+Inf", 4) != 0)
        fail_msg("bad value: %.*s", (int)(end - line), line);
      samples++;
    } else if (strncmp(line, "# HELP ", 7) && strncmp(line, "# TYPE ", 7)) {
      fail_msg("bad comment: %.*s", (int)(end - line), line);
    }
    line = end + 1;
  }
  assert_true(samples > 10);
}

/* The value of series (name with its labels, exactly as printed), -1 when
 * absent. */
static double value_of(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (!strncmp(l, series, n) && l[n] == ' ') return strtod(l + n + 1, NULL);
  return -1;
}

static double zero_if_absent(double v) { return v < 0 ? 0 : v; }

static void wait_result(const char *id) {
  char path[160];
  snprintf(path, sizeof path, "/api/v1/tasks/%s?wait=60", id);
  json_t *r = call("GET", path, NULL, 200);
  const char *st = str(r, "state");
  assert_true(!strcmp(st, "SUCCESS") || !strcmp(st, "FAILURE"));
  json_decref(r);
}

#define RUNTIME "errand_task_runtime_seconds"
#define ROUNDTRIP "errand_task_roundtrip_seconds"

static void metrics(void **state) {
  char *before = metrics_text();
  check_format(before);
  double add0 = zero_if_absent(value_of(before, "errand_tasks{name=\"add\",state=\"SUCCESS\"}"));
  double fail0 = zero_if_absent(value_of(before, "errand_tasks{name=\"fail\",state=\"FAILURE\"}"));
  double run0 = value_of(before, RUNTIME "_count"), rt0 = value_of(before, ROUNDTRIP "_count");
  assert_true(run0 >= 0 && rt0 >= 0);
  free(before);
  json_t *ids[4];
  for (int i = 0; i < 3; i++) {
    char body[96];
    snprintf(body, sizeof body, "{\"task\": \"add\", \"args\": [%d, 1]}", i);
    ids[i] = call("POST", "/api/v1/tasks", body, 202);
  }
  ids[3] = call("POST", "/api/v1/tasks", "{\"task\": \"fail\", \"args\": [\"no\"]}", 202);
  for (int i = 0; i < 4; i++) wait_result(str(ids[i], "id"));
  /* a queue name that needs escaping in a label */
  json_decref(call("POST", "/api/v1/tasks",
                   "{\"task\": \"add\", \"args\": [1, 1], \"queue\": \"we\\\"ird\\\\q\", "
                   "\"countdown\": 3600}", 202));
  /* The histograms come with the worker's next heartbeat. */
  char *text = NULL;
  for (int tries = 0; tries < 600; tries++) {
    free(text);
    text = metrics_text();
    if (value_of(text, RUNTIME "_count") - run0 >= 4 && value_of(text, ROUNDTRIP "_count") - rt0 >= 4)
      break;
    usleep(100000);
  }
  check_format(text);
  assert_int_equal(value_of(text, "errand_tasks{name=\"add\",state=\"SUCCESS\"}") - add0, 3);
  assert_int_equal(value_of(text, "errand_tasks{name=\"fail\",state=\"FAILURE\"}") - fail0, 1);
  assert_int_equal(value_of(text, RUNTIME "_count") - run0, 4);
  assert_int_equal(value_of(text, ROUNDTRIP "_count") - rt0, 4);
  /* buckets cumulative, +Inf the count */
  assert_true(value_of(text, RUNTIME "_bucket{le=\"+Inf\"}") == value_of(text, RUNTIME "_count"));
  assert_true(value_of(text, ROUNDTRIP "_bucket{le=\"+Inf\"}") ==
              value_of(text, ROUNDTRIP "_count"));
  assert_true(value_of(text, ROUNDTRIP "_bucket{le=\"0.001\"}") <=
              value_of(text, ROUNDTRIP "_bucket{le=\"60\"}"));
  assert_true(value_of(text, RUNTIME "_sum") >= 0);
  assert_true(value_of(text, "errand_workers") >= 1);
  assert_non_null(strstr(text, "errand_worker_up{worker=\""));
  assert_true(value_of(text, "errand_queue_tasks{queue=\"we\\\"ird\\\\q\",state=\"PENDING\"}") ==
              1);
  assert_true(value_of(text, "errand_pipelines_truncated") == 0);
  assert_non_null(strstr(text, "# TYPE " RUNTIME " histogram\n"));
  free(text);
  for (int i = 0; i < 4; i++) json_decref(ids[i]);
  /* With a token it needs it, though not under /api/. */
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url, .token = "s3cret"};
  er_http_server_t *s;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  tc_resp_t r = tc_req(er_http_server_port(s), "GET", "/metrics", NULL);
  assert_int_equal(r.status, 401);
  assert_true(tc_is_error(&r));
  tc_free(&r);
  r = tc_request(er_http_server_port(s), "GET", "/metrics", "Authorization: Bearer s3cret\r\n",
                 NULL, 0);
  assert_int_equal(r.status, 200);
  tc_free(&r);
  er_http_server_free(s);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(tasks_list), cmocka_unit_test(metrics)};
  return fx_run(argc, argv, "http_list", tests, sizeof tests / sizeof tests[0]);
}
