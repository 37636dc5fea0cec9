/* The pipeline, queue, worker and OpenAPI routes against the same fixture
 * as test_http.c: a real server, store and worker (http_fixture.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errand.h>

#include "http_fixture.h"

static void pipelines_api(void **state) {
  json_t *a = call("POST", "/api/v1/pipelines",
                   "{\"pipeline\": \"euclid\", \"args\": [84, 36], \"key\": \"e-84-36\"}", 202);
  char path[160];
  snprintf(path, sizeof path, "/api/v1/pipelines/%s", str(a, "id"));
  assert_string_equal(str(a, "status_url"), path);
  status_of(str(a, "id"), "done");
  json_t *out = NULL;
  assert_int_equal(er_pipeline_output(H.client, str(a, "id"), NULL, &out), 0);
  assert_int_equal(json_integer_value(out), 12);
  json_decref(out);
  json_t *t = call("GET", path, NULL, 200);
  assert_string_equal(str(t, "root"), str(a, "id"));
  json_t *root = json_object_get(json_object_get(t, "pipelines"), str(a, "id"));
  assert_string_equal(str(root, "name"), "euclid");
  assert_true(json_object_size(json_object_get(t, "slots")) > 0);
  /* A child is not a root: it cannot be aborted alone. */
  const char *id, *child = NULL;
  json_t *p;
  json_object_foreach(json_object_get(t, "pipelines"), id, p) {
    if (strcmp(id, str(a, "id"))) child = id;
  }
  assert_non_null(child);
  snprintf(path, sizeof path, "/api/v1/pipelines/%s/abort", child);
  json_decref(call("POST", path, NULL, 400));
  snprintf(path, sizeof path, "/api/v1/pipelines/%s", str(a, "id"));
  json_decref(t);
  /* The key is taken: 409 naming the root that holds it. */
  json_t *e = call("POST", "/api/v1/pipelines", "{\"pipeline\": \"euclid\", \"args\": [1, 1], "
                   "\"key\": \"e-84-36\"}", 409);
  assert_string_equal(str(e, "id"), str(a, "id"));
  json_decref(e);
  /* Listed newest first, one per page, the cursor leading on. */
  json_t *b = call("POST", "/api/v1/pipelines", "{\"pipeline\": \"euclid\", \"args\": [9, 6]}", 202);
  json_t *l = call("GET", "/api/v1/pipelines?name=euclid&limit=1", NULL, 200);
  json_t *items = json_object_get(l, "pipelines");
  assert_int_equal(json_array_size(items), 1);
  assert_string_equal(str(json_array_get(items, 0), "id"), str(b, "id"));
  assert_non_null(str(l, "next_cursor"));
  snprintf(path, sizeof path, "/api/v1/pipelines?name=euclid&limit=1&cursor=%s",
           str(l, "next_cursor"));
  json_t *l2 = call("GET", path, NULL, 200);
  assert_string_equal(str(json_array_get(json_object_get(l2, "pipelines"), 0), "id"),
                      str(a, "id"));
  json_decref(l2);
  json_decref(l);
  json_decref(b);
  json_t *none = call("GET", "/api/v1/pipelines?name=no-such", NULL, 200);
  assert_int_equal(json_array_size(json_object_get(none, "pipelines")), 0);
  assert_true(json_is_null(json_object_get(none, "next_cursor")));
  json_decref(none);
  json_decref(call("GET", "/api/v1/pipelines?limit=0", NULL, 400));
  json_decref(call("GET", "/api/v1/pipelines?colour=1", NULL, 400));
  json_decref(call("GET", "/api/v1/pipelines/01a2376b-0000-7000-8000-000000000000", NULL, 404));
  json_decref(call("POST", "/api/v1/pipelines", "{\"args\": []}", 400));
  json_decref(call("POST", "/api/v1/pipelines", "{\"pipeline\": \"x\", \"args\": {}}", 400));
  json_decref(call("POST", "/api/v1/pipelines", "{\"pipeline\": \"x\", \"colour\": 1}", 400));
  json_decref(a);
}

static void pipelines_abort(void **state) {
  er_id_t root;
  json_decref(links_of("approve_demo", &root)); /* waits on its callback */
  char path[160];
  snprintf(path, sizeof path, "/api/v1/pipelines/%s/abort", root.text);
  json_t *r = call("POST", path, "{\"message\": \"stop it\"}", 200);
  assert_true(json_is_true(json_object_get(r, "aborted")));
  json_decref(r);
  status_of(root.text, "aborted");
  json_t *doc = NULL;
  assert_int_equal(er_pipeline_get(H.client, root.text, &doc), 0);
  assert_string_equal(str(doc, "abort_message"), "stop it");
  json_decref(doc);
  r = call("POST", path, NULL, 200); /* no body: allowed; already aborted */
  assert_false(json_is_true(json_object_get(r, "aborted")));
  json_decref(r);
  json_decref(call("POST", "/api/v1/pipelines/01a2376b-0000-7000-8000-000000000000/abort",
                   NULL, 404));
  json_decref(call("POST", path, "{\"message\": 1}", 400));
}

static void queues_and_workers(void **state) {
  json_t *a = call("POST", "/api/v1/tasks", "{\"task\": \"add\", \"args\": [1, 2], "
                   "\"countdown\": 3600, \"queue\": \"q-depth\"}", 202);
  json_t *q = call("GET", "/api/v1/queues", NULL, 200);
  json_t *counts = json_object_get(json_object_get(q, "queues"), "q-depth");
  assert_true(json_integer_value(json_object_get(counts, "PENDING")) +
                  json_integer_value(json_object_get(counts, "SCHEDULED")) >= 1);
  assert_non_null(json_object_get(q, "total"));
  assert_non_null(str(q, "store"));
  json_decref(q);
  json_t *w = call("GET", "/api/v1/workers", NULL, 200);
  json_t *list = json_object_get(w, "workers");
  assert_true(json_array_size(list) >= 1);
  json_t *one = json_array_get(list, 0);
  assert_non_null(str(one, "id"));
  assert_true(json_integer_value(json_object_get(one, "heartbeat_ms")) > 0);
  json_decref(w);
  json_decref(a);
  if (strncmp(H.url, "redis://", 8)) return;
  /* A store URL with a password: shown with it hidden. */
  int port = atoi(strrchr(H.url, ':') + 1);
  char cmd[200], url[200], shown[200];
  snprintf(cmd, sizeof cmd, "redis-cli -p %d ACL SETUSER ann on '>pw-secret' '~*' '&*' '+@all' "
           ">/dev/null", port);
  assert_int_equal(system(cmd), 0);
  snprintf(url, sizeof url, "redis://ann:pw-secret@127.0.0.1:%d/0", port);
  snprintf(shown, sizeof shown, "redis://ann:***@127.0.0.1:%d/0", port);
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = url};
  er_http_server_t *s;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  const char *const paths[] = {"/api/v1/queues", "/api/v1/workers"};
  for (int i = 0; i < 2; i++) {
    tc_resp_t r = tc_req(er_http_server_port(s), "GET", paths[i], NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "pw-secret"));
    json_t *j = tc_json(&r);
    assert_string_equal(str(j, "store"), shown);
    json_decref(j);
    tc_free(&r);
  }
  er_http_server_free(s);
}

/* The served document lists exactly the routes of router.c's table, read
 * from its source: neither can change without the other. */
static void openapi_matches_routes(void **state) {
  json_t *doc = call("GET", "/api/v1/openapi.json", NULL, 200);
  assert_int_equal(strncmp(str(doc, "openapi"), "3.0", 3), 0);
  assert_non_null(json_object_get(json_object_get(json_object_get(doc, "components"),
                                                  "securitySchemes"), "bearer"));
  json_t *paths = json_object_get(doc, "paths");
  char *src = h_read_file(ROUTER_C);
  assert_non_null(src);
  size_t n = 0, documented = 0;
  for (const char *p = strstr(src, "routes[] = {"); p && (p = strstr(p, "{\"")); p++) {
    char method[16], pattern[128];
    if (sscanf(p, "{\"%15[A-Z]\", \"%127[^\"]\"", method, pattern) != 2) break;
    for (char *m = method; *m; m++) *m = (char)(*m - 'A' + 'a');
    if (!json_object_get(json_object_get(paths, pattern), method))
      fail_msg("%s %s is not in openapi.json", method, pattern);
    n++;
  }
  free(src);
  assert_true(n >= 15);
  const char *path, *method;
  json_t *ops, *op;
  json_object_foreach(paths, path, ops) {
    json_object_foreach(ops, method, op) documented++;
  }
  assert_int_equal(documented, n); /* nothing documented that is not served */
  /* The Task schema names the states the store names, in its order. */
  json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
  json_t *props = json_object_get(json_object_get(schemas, "Task"), "properties");
  json_t *states = json_object_get(json_object_get(props, "state"), "enum");
  assert_int_equal(json_array_size(states), ER_STATE_REVOKED + 1);
  for (int k = ER_STATE_PENDING; k <= ER_STATE_REVOKED; k++)
    assert_string_equal(json_string_value(json_array_get(states, (size_t)k)),
                        er_state_name((er_task_state_t)k));
  json_decref(doc);
  /* Under /api/: with a token, it needs it like the data routes. */
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url, .token = "s3cret"};
  er_http_server_t *s;
  assert_int_equal(er_http_server_new(&o, &s, NULL, 0), 0);
  assert_int_equal(er_http_server_start(s, NULL, 0), 0);
  tc_resp_t r = tc_req(er_http_server_port(s), "GET", "/api/v1/openapi.json", NULL);
  assert_int_equal(r.status, 401);
  tc_free(&r);
  r = tc_request(er_http_server_port(s), "GET", "/api/v1/openapi.json",
                 "Authorization: Bearer s3cret\r\n", NULL, 0);
  assert_int_equal(r.status, 200);
  tc_free(&r);
  er_http_server_free(s);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pipelines_api),      cmocka_unit_test(pipelines_abort),
      cmocka_unit_test(queues_and_workers), cmocka_unit_test(openapi_matches_routes),
  };
  return fx_run(argc, argv, "http_routes", tests, sizeof tests / sizeof tests[0]);
}
