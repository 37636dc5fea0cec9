/* Pipelines run by real `errand worker` processes that load the example
 * pipelines (-A), on SQLite and on a private redis-server. This program
 * does not link the examples: it starts them with .unchecked, as a client
 * that only knows their names does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The root's default output once it is filled (new), or fails. */
static json_t *wait_output(harness_t *h, const char *root, int64_t timeout_ms) {
  int64_t end = er_now_wall_ms() + timeout_ms;
  for (;;) {
    json_t *v = NULL;
    int rc = er_pipeline_output(h->client, root, NULL, &v);
    if (rc == 0) return v;
    if (rc != ER_ESTATE)
      fail_msg("output: %s: %s", er_err_name(rc), er_client_last_error(h->client));
    if (er_now_wall_ms() > end) {
      json_t *t = NULL;
      er_pipeline_tree(h->client, root, &t);
      char *s = json_dumps(t, JSON_COMPACT);
      fail_msg("the pipeline did not finish in time: %.2000s", s ? s : "");
    }
    sleep_ms(50);
  }
}

/* Starts name [n], waits for its output (want) and for its npipes
 * pipelines to be done; returns the tree (new). */
static json_t *run_one_started(harness_t *h, const char *root, json_int_t want, size_t npipes);

static json_t *run_one(harness_t *h, const char *name, int n, json_int_t want, size_t npipes) {
  json_t *args = json_pack("[i]", n);
  er_pipeline_opts_t o = {.unchecked = true};
  er_id_t root;
  assert_int_equal(er_pipeline_start(h->client, name, args, NULL, &o, &root), 0);
  json_decref(args);
  return run_one_started(h, root.text, want, npipes);
}

/* As run_one, for a started root. */
static json_t *run_one_started(harness_t *h, const char *root, json_int_t want, size_t npipes) {
  json_t *v = wait_output(h, root, 120000);
  assert_int_equal(json_integer_value(v), want);
  json_decref(v);
  /* every stage done (the root's finalize may still be on its way) */
  json_t *t = NULL;
  int64_t end = er_now_wall_ms() + 60000;
  for (;;) {
    json_decref(t);
    assert_int_equal(er_pipeline_tree(h->client, root, &t), 0);
    assert_int_equal(json_object_size(json_object_get(t, "pipelines")), npipes);
    size_t done = 0;
    const char *id;
    json_t *p;
    json_object_foreach(json_object_get(t, "pipelines"), id, p)
      done += strcmp(json_string_value(json_object_get(p, "status")), "done") == 0;
    if (done == npipes) break;
    assert_true(er_now_wall_ms() < end);
    sleep_ms(50);
  }
  const char *id;
  json_t *s;
  json_object_foreach(json_object_get(t, "slots"), id, s) {
    assert_string_equal(json_string_value(json_object_get(s, "status")), "filled");
    /* by its owner: the stage itself, or, for an inherited output, the last
     * child that owns it now */
    assert_non_null(json_object_get(json_object_get(t, "pipelines"),
                                    json_string_value(json_object_get(s, "filler"))));
  }
  return t;
}

static void run_all(harness_t *h, const char *pool) {
  char log[400];
  snprintf(log, sizeof log, "%s/worker.log", h->dir);
  pid_t w = h_worker_log(h, log, false, pool, 4, NULL);
  json_decref(run_one(h, "chain", 50, 50, 51));
  /* 100 siblings fill slots of the same barriers at once */
  json_decref(run_one(h, "fan_sum", 100, 4950, 102));
  assert_true(WIFEXITED(h_stop(w, SIGTERM)));
  /* a library of pipelines alone is something to run: no warning */
  char *text = h_read_file(log);
  assert_null(strstr(text, "no tasks loaded"));
  assert_null(strstr(text, "past 0"));
  /* the banner names the library's pipelines, not the built-ins or the
   * internal errand.* tasks */
  assert_non_null(strstr(text, "tasks (0): none\n"));
  assert_non_null(strstr(text, "pipelines (6): approve_demo, chain, chain.step, delay_demo, "
                               "euclid, fan_sum\n"));
  assert_null(strstr(text, "Sanitizer")); /* in a sanitized build */
  free(text);
}

/* Runs errand with args (NULL-ended): its exit code, stdout and stderr
 * (new strings). */
#define CLI(out, err, ...) h_cli(&h, out, err, __VA_ARGS__, NULL)

/* errand pipeline, against a worker. */
static void test_cli(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  pid_t w = h_worker(&h, "threads", 2, NULL);
  char *out = NULL, *err = NULL;
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "euclid", "--args", "[1071, 462]",
                       "--wait", "--timeout", "60"), 0);
  assert_string_equal(out, "21\n");
  free(out);
  free(err);
  /* -A checks the name: a typo is refused before anything is written */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "eculid", "-A", TASKS_LIB), 2);
  assert_non_null(strstr(err, "unknown pipeline 'eculid' (not in the libraries given with -A)"));
  free(out);
  free(err);
  /* an abort: exit 1 and the message on one line */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "euclid", "--args", "[-1, 2]", "--wait",
                       "--timeout", "60"), 1);
  assert_non_null(strstr(err, "aborted: euclid takes two integers >= 0\n"));
  free(out);
  free(err);
  /* a pipeline the worker's libraries lack: the command refuses it (the
   * worker's heartbeat lists what it has); started anyway through the
   * library, the root aborts, saying so */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "no.such"), 2);
  assert_non_null(strstr(err, "unknown pipeline 'no.such': no live worker has registered it"));
  free(out);
  free(err);
  er_id_t lacking;
  er_pipeline_opts_t unchecked = {.unchecked = true};
  assert_int_equal(er_pipeline_start(h.client, "no.such", NULL, NULL, &unchecked, &lacking), 0);
  assert_int_equal(CLI(&out, &err, "pipeline", "wait", lacking.text, "--timeout", "60"), 1);
  assert_non_null(strstr(err, "aborted: unknown pipeline 'no.such' (not registered in the "
                              "worker that ran stage"));
  assert_non_null(strchr(err, '\n') == err + strlen(err) - 1 ? err : NULL); /* one line */
  free(out);
  free(err);
  /* not finished in time: the root's id, exit 5; then wait, show, list, abort */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "chain", "--args", "[3]", "--countdown",
                       "3600", "--key", "k1", "--wait", "--timeout", "0.2"), 5);
  char root[64];
  snprintf(root, sizeof root, "%.36s", out);
  assert_true(er_id_valid(root));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "chain", "--key", "k1"), 2);
  assert_non_null(strstr(err, root));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "wait", root, "--timeout", "0.1"), 5);
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "show", root, "--json"), 0);
  json_t *t = json_loads(out, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(t, "root")), root);
  json_decref(t);
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "show", root), 0);
  assert_non_null(strstr(out, "waiting    chain "));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "list", "--name", "chain"), 0);
  assert_non_null(strstr(out, root));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "abort", root, "--message", "no more"), 0);
  assert_string_equal(out, "aborting\n");
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "wait", root, "--timeout", "30"), 1);
  assert_non_null(strstr(err, "aborted: no more"));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "abort", root), 0);
  assert_string_equal(out, "already aborted or done\n");
  free(out);
  free(err);
  /* cleanup: nothing is a week old; everything finished is over 0 s old */
  assert_int_equal(CLI(&out, &err, "pipeline", "cleanup"), 0);
  assert_string_equal(out, "deleted 0 roots (0 documents)\n");
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "cleanup", "--older-than", "0"), 0);
  size_t nroots = 0, ndocs = 0;
  assert_int_equal(sscanf(out, "deleted %zu roots (%zu documents)", &nroots, &ndocs), 2);
  assert_true(nroots >= 3 && ndocs > nroots); /* the chain's stages may still be aborting */
  free(out);
  free(err);
  /* bad usage and unknown roots */
  assert_int_equal(CLI(&out, &err, "pipeline", "frob", root), 2);
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "chain", "--args", "{}"), 2);
  assert_non_null(strstr(err, "args must be a JSON array"));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "wait", "01a2372a-0000-7000-8000-000000000000"), 4);
  free(out);
  free(err);
  /* a new callback secret: a new version of the store's secret document */
  json_t *before = NULL, *after = NULL;
  assert_int_equal(CLI(&out, &err, "pipeline", "rotate-secret"), 0);
  assert_non_null(strstr(out, "rotated"));
  free(out);
  free(err);
  er_store_t *st = NULL;
  int64_t v1 = 0, v2 = 0;
  assert_int_equal(er_store_open(h.url, &st, NULL, 0), 0);
  assert_int_equal(er_store_doc_get(st, "pipe.secret", "callback", &before, &v1), 0);
  assert_int_equal(CLI(&out, &err, "pipeline", "rotate-secret"), 0);
  free(out);
  free(err);
  assert_int_equal(er_store_doc_get(st, "pipe.secret", "callback", &after, &v2), 0);
  assert_int_equal(v2, v1 + 1);
  assert_true(json_equal(json_object_get(after, "previous"), json_object_get(before, "current")));
  json_decref(before);
  json_decref(after);
  er_store_close(st);
  h_stop(w, SIGTERM);
  h_teardown(&h);
}

/* The documents of each pipeline collection and the tasks in h's store, as
 * text (new), to see that something changed nothing. */
static char *store_state(harness_t *h) {
  static const char *const colls[] = {"pipe", "pipe.slot", "pipe.key", "pipe.root",
                                      "pipe.abort", "pipe.ended", NULL};
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(h->url, &s, NULL, 0), 0);
  json_t *state = json_object(), *stats = NULL;
  for (const char *const *c = colls; *c; c++) {
    json_t *page = NULL;
    assert_int_equal(er_store_doc_list(s, *c, NULL, 10000, &page), 0);
    json_object_set_new(state, *c, json_integer((json_int_t)json_array_size(page)));
    json_decref(page);
  }
  assert_int_equal(er_store_stats(s, &stats), 0);
  json_object_set(state, "tasks", json_object_get(stats, "total"));
  json_decref(stats);
  er_store_close(s);
  char *text = json_dumps(state, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(state);
  return text;
}

/* Runs the command, which must exit with code and say needle on one line
 * of stderr. */
#define REFUSED(code, needle, ...)                                                  \
  do {                                                                              \
    char *out_ = NULL, *err_ = NULL;                                                \
    int rc_ = CLI(&out_, &err_, __VA_ARGS__);                                       \
    if (rc_ != (code) || !strstr(err_, needle) || strchr(err_, '\n') != strrchr(err_, '\n')) \
      fail_msg("exit %d, stderr '%s' (want %d, '%s')", rc_, err_, code, needle);    \
    free(out_);                                                                     \
    free(err_);                                                                     \
  } while (0)

/* Bad input from the command: a one-line error, the documented exit code
 * (2 for usage, 4 for an unknown root), and nothing changed in the store. */
static void test_cli_bad_input(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  char *out = NULL, *err = NULL;
  /* a root that is over, and one of its stages */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "chain", "--args", "[2]", "--countdown",
                       "3600"), 0);
  char root[64];
  snprintf(root, sizeof root, "%.36s", out);
  free(out);
  free(err);
  char *before = store_state(&h);
  REFUSED(2, "unknown pipeline 'NoSuch' (not in the libraries given with -A)", "pipeline",
          "start", "NoSuch", "-A", TASKS_LIB);
  REFUSED(2, "args must be a JSON array", "pipeline", "start", "chain", "--args", "{}");
  REFUSED(2, "args must be a JSON array", "pipeline", "start", "chain", "--args", "\"[1]\"");
  REFUSED(2, "--args", "pipeline", "start", "chain", "--args", "[1");
  REFUSED(2, "kwargs must be a JSON object", "pipeline", "start", "chain", "--kwargs", "[]");
  REFUSED(2, "--countdown", "pipeline", "start", "chain", "--countdown", "-1");
  REFUSED(2, "the key must be 1 to 512 bytes", "pipeline", "start", "chain", "--key", "");
  REFUSED(2, "give a subcommand", "pipeline", "start");
  REFUSED(2, "unknown subcommand 'frob'", "pipeline", "frob", root);
  REFUSED(2, "is not a pipeline id", "pipeline", "abort", "nope");
  REFUSED(4, "no pipeline 01a2372a-0000-7000-8000-000000000000", "pipeline", "abort",
          "01a2372a-0000-7000-8000-000000000000");
  REFUSED(4, "no pipeline 01a2372a-0000-7000-8000-000000000000", "pipeline", "show",
          "01a2372a-0000-7000-8000-000000000000");
  REFUSED(2, "--older-than", "pipeline", "cleanup", "--older-than", "soon");
  REFUSED(2, "give a subcommand", "pipeline", "cleanup", root);
  char *after = store_state(&h);
  assert_string_equal(before, after);
  free(before);
  free(after);
  h_teardown(&h);
}

/* Without -A, a name is checked against the live workers' heartbeats: a
 * name none of them has is refused with nothing written. */
static void test_cli_name_checked_by_workers(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  pid_t w = h_worker(&h, "threads", 2, NULL);
  h_wait_workers(&h, 1, 30000);
  char *before = store_state(&h);
  REFUSED(2, "unknown pipeline 'NoSuch': no live worker has registered it", "pipeline",
          "start", "NoSuch");
  char *after = store_state(&h);
  assert_string_equal(before, after);
  free(before);
  free(after);
  char *out = NULL, *err = NULL;
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "euclid", "--args", "[1071, 462]",
                       "--wait", "--timeout", "60"), 0);
  assert_string_equal(out, "21\n");
  free(out);
  free(err);
  h_stop(w, SIGTERM);
  h_teardown(&h);
}

/* A worker deletes finished trees on its own after the store URL's
 * pipe_retention_ms. */
static void test_retention(void **state) {
  harness_t h;
  h_setup(&h, "?pipe_retention_ms=1000");
  char log[400];
  snprintf(log, sizeof log, "%s/worker.log", h.dir);
  pid_t w = h_worker_log(&h, log, true, "threads", 2, NULL);
  char *out = NULL, *err = NULL;
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "euclid", "--args", "[1071, 462]",
                       "--wait", "--timeout", "60"), 0);
  free(out);
  free(err);
  json_t *l = NULL;
  assert_int_equal(er_pipeline_list(h.client, NULL, NULL, 10, &l, NULL), 0);
  char root[64];
  snprintf(root, sizeof root, "%s", json_string_value(json_object_get(json_array_get(l, 0), "id")));
  json_decref(l);
  assert_true(h_wait_text(log, "pipelines: deleted 1 roots finished over 1 s ago", 30000));
  json_t *d = NULL;
  assert_int_equal(er_pipeline_get(h.client, root, &d), ER_ENOENT);
  char *empty = store_state(&h);
  assert_non_null(strstr(empty, "\"pipe\":0,\"pipe.abort\":0,\"pipe.ended\":0,\"pipe.key\":0,"
                                "\"pipe.root\":0,\"pipe.slot\":0"));
  free(empty);
  h_stop(w, SIGTERM);
  h_teardown(&h);
}

/* Waits until stage k of root's chain has its output. */
static void wait_stage(harness_t *h, const char *root, size_t k) {
  json_t *d = NULL;
  int64_t end = er_now_wall_ms() + 60000;
  while (json_array_size(json_object_get(d, "children")) <= k) {
    json_decref(d);
    d = NULL;
    assert_true(er_now_wall_ms() < end);
    if (er_pipeline_get(h->client, root, &d) < 0) sleep_ms(20);
  }
  const char *id = json_string_value(json_array_get(json_object_get(d, "children"), k));
  json_t *v = NULL;
  while (er_pipeline_output(h->client, id, NULL, &v) == ER_ESTATE) {
    assert_true(er_now_wall_ms() < end);
    sleep_ms(10);
  }
  json_decref(v);
  json_decref(d);
}

/* Workers killed with -9 in the middle of a chain of 1,000 stages: their leases end, other
 * workers take the stages over, and the chain completes, each stage's
 * output filled once, by that stage. */
static void test_kill9(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  pid_t w1 = h_worker(&h, "prefork", 2, "--lease", "1", NULL);
  pid_t w2 = h_worker(&h, "threads", 2, "--lease", "1", NULL);
  json_t *args = json_pack("[i]", 1000);
  er_pipeline_opts_t o = {.unchecked = true};
  er_id_t root;
  assert_int_equal(er_pipeline_start(h.client, "chain", args, NULL, &o, &root), 0);
  json_decref(args);
  wait_stage(&h, root.text, 200);
  h_stop(w1, SIGKILL);
  pid_t w3 = h_worker(&h, "prefork", 2, "--lease", "1", NULL);
  wait_stage(&h, root.text, 600);
  h_stop(w2, SIGKILL);
  pid_t w4 = h_worker(&h, "threads", 2, "--lease", "1", NULL);
  json_decref(run_one_started(&h, root.text, 1000, 1001));
  h_stop(w3, SIGTERM);
  h_stop(w4, SIGTERM);
  h_teardown(&h);
}

/* Waits until pipeline id is in RUN (an async stage waiting for a callback). */
static void wait_run(harness_t *h, const char *id) {
  int64_t end = er_now_wall_ms() + 60000;
  for (;;) {
    json_t *d = NULL;
    if (er_pipeline_get(h->client, id, &d) == 0 &&
        !strcmp(json_string_value(json_object_get(d, "status")), "run")) {
      json_decref(d);
      return;
    }
    json_decref(d);
    assert_true(er_now_wall_ms() < end);
    sleep_ms(20);
  }
}

/* `errand pipeline callback root choice=approve [token=...]`: the answer
 * "approved", then the root's output true. */
static void approve(harness_t *hp, const char *root, const char *token) {
  harness_t h = *hp; /* for CLI */
  char *out = NULL, *err = NULL;
  int rc = token ? CLI(&out, &err, "pipeline", "callback", root, "choice=approve", token,
                       "--timeout", "60")
                 : CLI(&out, &err, "pipeline", "callback", root, "choice=approve", "--timeout",
                       "60");
  assert_int_equal(rc, 0);
  assert_string_equal(out, "approved\n");
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "wait", root, "--timeout", "60"), 0);
  assert_string_equal(out, "true\n");
  free(out);
  free(err);
}

/* Async pipelines run by a prefork worker that has a base URL: Delay 1 end
 * to end, approve_demo and Approval through `errand pipeline callback`,
 * and its refusals with their exit codes. */
static void test_async_cli(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  char *out = NULL, *err = NULL;
  /* a base URL that is not http(s) is refused as the worker starts */
  assert_int_equal(CLI(&out, &err, "worker", "-A", TASKS_LIB, "--base-url", "ftp://x"), 2);
  assert_non_null(strstr(err, "base_url"));
  free(out);
  free(err);
  pid_t w = h_worker(&h, "prefork", 2, "--base-url", "http://localhost:8080/errand", NULL);
  int64_t t0 = er_now_wall_ms();
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "delay_demo", "--args", "[1]", "--wait",
                       "--timeout", "60"), 0);
  assert_true(er_now_wall_ms() - t0 >= 1000); /* it waited its second */
  assert_string_equal(out, "\"done\"\n");
  free(out);
  free(err);
  /* approve_demo: its links are the worker's callback URLs */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "approve_demo"), 0);
  char root[64];
  snprintf(root, sizeof root, "%.36s", out);
  free(out);
  free(err);
  wait_run(&h, root);
  assert_int_equal(CLI(&out, &err, "pipeline", "show", root), 0);
  assert_non_null(strstr(out, "[waiting for a choice]"));
  char want[256];
  snprintf(want, sizeof want, "  approve: http://localhost:8080/errand/callback?pipeline_id=%s"
           "&choice=approve&token=", root);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "  deny: http://localhost:8080/errand/callback?"));
  free(out);
  free(err);
  approve(&h, root, NULL);
  /* finished, unknown, bad parameters: one line each, nothing queued */
  assert_int_equal(CLI(&out, &err, "pipeline", "callback", root, "choice=deny"), 2);
  assert_non_null(strstr(err, "is done: callback refused\n"));
  assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "callback", "01a2372a-0000-7000-8000-000000000000",
                       "a=1"), 4);
  assert_non_null(strstr(err, "no pipeline 01a2372a-0000-7000-8000-000000000000"));
  free(out);
  free(err);
  assert_int_equal(CLI(&out, &err, "pipeline", "callback", root, "novalue"), 2);
  assert_non_null(strstr(err, "parameters are NAME=VALUE, not 'novalue'"));
  free(out);
  free(err);
  /* Approval: a wrong token is refused (exit 1), its own approves */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "Approval"), 0);
  snprintf(root, sizeof root, "%.36s", out);
  free(out);
  free(err);
  wait_run(&h, root);
  assert_int_equal(CLI(&out, &err, "pipeline", "callback", root, "choice=approve", "token=0",
                       "--timeout", "60"), 1);
  assert_non_null(strstr(err, "refused (403): Approval: wrong token"));
  free(out);
  free(err);
  json_t *d = NULL;
  assert_int_equal(er_pipeline_get(h.client, root, &d), 0);
  char tok[64];
  snprintf(tok, sizeof tok, "token=%s",
           json_string_value(json_object_get(json_object_get(d, "state"), "token")));
  json_decref(d);
  approve(&h, root, tok);
  /* an async pipeline waiting in RUN when no worker is left: the callback
   * command says nobody will run it, then gives up at its timeout */
  assert_int_equal(CLI(&out, &err, "pipeline", "start", "approve_demo"), 0);
  snprintf(root, sizeof root, "%.36s", out);
  free(out);
  free(err);
  wait_run(&h, root);
  assert_int_equal(WEXITSTATUS(h_stop(w, SIGTERM)), 0); /* a clean stop: its heartbeat goes */
  assert_int_equal(CLI(&out, &err, "pipeline", "callback", root, "choice=approve", "--timeout",
                       "0.2"), 5);
  assert_non_null(strstr(err, "no live worker serves queue 'default'; the callback waits"));
  free(out);
  free(err);
  h_teardown(&h);
}

static void test_sqlite(void **state) {
  harness_t h;
  h_setup(&h, NULL);
  run_all(&h, "prefork");
  h_teardown(&h);
}

static void test_redis(void **state) {
  harness_t h;
  if (!h_setup_redis(&h)) skip();
  run_all(&h, "threads");
  h_teardown_redis(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sqlite),
      cmocka_unit_test(test_redis),
      cmocka_unit_test(test_cli),
      cmocka_unit_test(test_kill9),
      cmocka_unit_test(test_cli_bad_input),
      cmocka_unit_test(test_cli_name_checked_by_workers),
      cmocka_unit_test(test_retention),
      cmocka_unit_test(test_async_cli),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
