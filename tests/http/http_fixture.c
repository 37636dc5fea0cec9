/* The HTTP tests' fixture: a real server on a free loopback port, a real
 * store (SQLite, or with the argument "redis" a private redis-server) and a
 * real `errand worker` with the example tasks and pipelines. */
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

static bool g_redis;
harness_t H;
er_http_server_t *g_srv;
int g_port;
static pid_t g_worker;

static int group_setup(void **state) {
  if (g_redis) {
    if (!h_setup_redis(&H)) return -1;
  } else {
    h_setup(&H, NULL);
  }
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url};
  char msg[256] = "";
  if (er_http_server_new(&o, &g_srv, msg, sizeof msg) < 0 ||
      er_http_server_start(g_srv, msg, sizeof msg) < 0) {
    fprintf(stderr, "server: %s\n", msg);
    return -1;
  }
  g_port = er_http_server_port(g_srv);
  g_worker = h_worker(&H, "threads", 2, "-A", PIPES_LIB, "--base-url", er_http_server_url(g_srv),
                      NULL);
  h_wait_workers(&H, 1, 60000);
  return 0;
}

static int group_teardown(void **state) {
  if (g_worker > 0) h_stop(g_worker, SIGTERM);
  er_http_server_free(g_srv);
  if (g_redis)
    h_teardown_redis(&H);
  else
    h_teardown(&H);
  return 0;
}

/* A request whose answer must have status want; its JSON body (new). */
json_t *call(const char *method, const char *path, const char *body, int want) {
  tc_resp_t r = tc_req(g_port, method, path, body);
  if (r.status != want) fprintf(stderr, "%s %s: %d %s\n", method, path, r.status, r.body);
  assert_int_equal(r.status, want);
  json_t *j = tc_json(&r);
  if (want >= 400) assert_true(tc_is_error(&r));
  tc_free(&r);
  assert_non_null(j);
  return j;
}

const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* Starts pipeline name and waits for its status links; the links (new). */
json_t *links_of(const char *name, er_id_t *root) {
  er_pipeline_opts_t po = {.unchecked = true};
  assert_int_equal(er_pipeline_start(H.client, name, NULL, NULL, &po, root), 0);
  for (int i = 0; i < 600; i++) {
    json_t *doc = NULL;
    if (er_pipeline_get(H.client, root->text, &doc) == 0 &&
        json_object_get(json_object_get(doc, "links"), "approve")) {
      json_t *l = json_incref(json_object_get(doc, "links"));
      json_decref(doc);
      return l;
    }
    json_decref(doc);
    usleep(100000);
  }
  fail_msg("pipeline %s has no links", name);
  return NULL;
}

void status_of(const char *root, const char *want) {
  for (int i = 0; i < 600; i++) {
    json_t *doc = NULL;
    assert_int_equal(er_pipeline_get(H.client, root, &doc), 0);
    bool done = !strcmp(str(doc, "status"), want);
    json_decref(doc);
    if (done) return;
    usleep(100000);
  }
  fail_msg("pipeline %s never %s", root, want);
}

int fx_run(int argc, char **argv, const char *name, const struct CMUnitTest *tests, size_t n) {
  g_redis = argc > 1 && !strcmp(argv[1], "redis");
  if (g_redis && system("command -v redis-server >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: redis-server is not installed\n");
    return 77;
  }
  return _cmocka_run_group_tests(name, tests, n, group_setup, group_teardown);
}
