/* The async built-ins, Delay on the test's clock and Approval, and
 * callback URLs with their tokens. */
#include "core/url_query.h"
#include "drive.h"
#include "pipeline/token.h"

static const char *str(json_t *doc, const char *field) {
  const char *s = json_string_value(json_object_get(doc, field));
  return s ? s : "(null)";
}

static json_t *nothing(er_pipe_ctx_t *ctx, json_t *params) { return NULL; }

/* Delay of a slot: Return [2], then Delay [its output]. */
static json_t *delay_ref(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *a = json_pack("[i]", 2);
  er_pipe_handle_t *h = er_pipe_child(ctx, "Return", a);
  json_decref(a);
  a = json_pack("[O]", er_pipe_out(h, NULL));
  er_pipe_child(ctx, "Delay", a);
  json_decref(a);
  return NULL;
}
ER_PIPELINE("t.delay_ref", delay_ref)

/* Delay [30]: in RUN until its callback task, due 30 s later, completes it
 * with the seconds waited. */
void test_delay_clock(void **state) {
  fx_t *f = *state;
  er_id_t root = start(f, "Delay", "[30]", NULL);
  int64_t t0 = g_now;
  assert_int_equal(step(f, 10), 1);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "run");
  json_decref(d);
  falls_due_at(f, t0 + 30000); /* the callback task's eta */
  check_tree(f, root.text, "done");
  json_t *v = output(f, root.text);
  assert_int_equal(json_integer_value(v), 30);
  json_decref(v);
  /* bad input aborts, saying what it takes */
  root = start(f, "Delay", "[-1]", NULL);
  drive(f, 100);
  d = pipe_doc(f, root.text);
  assert_non_null(strstr(str(d, "abort_message"), "Delay takes [seconds]"));
  json_decref(d);
  /* seconds from another child's output */
  root = start(f, "t.delay_ref", NULL, NULL);
  drive(f, 1000);
  check_tree(f, root.text, "done");
  v = output(f, root.text);
  assert_int_equal(json_integer_value(v), 2);
  json_decref(v);
  /* delay_demo: Delay, then Return "done" */
  root = start(f, "delay_demo", "[2]", NULL);
  chaos(f, 3, 0.2, 0.1, 0.1);
  drive(f, 1000);
  check_tree(f, root.text, "done");
  v = output(f, root.text);
  assert_string_equal(json_string_value(v), "done");
  json_decref(v);
}

/* The links of pipeline id (borrowed from doc). */
static const char *link(json_t *doc, const char *name) {
  return json_string_value(json_object_get(json_object_get(doc, "links"), name));
}

/* The query of url as an object (new), checking it is base/callback?... */
static json_t *query_of(const char *url, const char *base) {
  char prefix[256];
  snprintf(prefix, sizeof prefix, "%s/callback?", base);
  if (!url || strncmp(url, prefix, strlen(prefix)) != 0) fail_msg("bad URL %s", url ? url : "");
  const char *q = url + strlen(prefix);
  json_t *out = NULL;
  assert_int_equal(er__url_query_parse(q, strlen(q), &out, NULL, 0), 0);
  return out;
}

/* Approval: approve -> true, deny -> false, a wrong token refused. Its
 * links are the public approve and deny URLs, carrying its own token. */
void test_approval(void **state) {
  fx_t *f = *state;
  snprintf(f->base_url, sizeof f->base_url, "https://errand.example/app");
  er_id_t yes = start(f, "Approval", "[\"ship it?\"]", NULL);
  er_id_t no = start(f, "Approval", NULL, NULL);
  drive(f, 100);
  json_t *d = pipe_doc(f, yes.text);
  assert_string_equal(str(d, "status"), "run");
  assert_string_equal(str(d, "status_message"), "ship it?");
  const char *token = json_string_value(json_object_get(json_object_get(d, "state"), "token"));
  assert_int_equal(strlen(token), 32);
  json_t *q = query_of(link(d, "approve"), f->base_url);
  json_t *want = json_pack("{s:s, s:s, s:s}", "pipeline_id", yes.text, "choice", "approve",
                           "token", token);
  assert_true(json_equal(q, want));
  json_decref(q);
  json_decref(want);
  q = query_of(link(d, "deny"), f->base_url);
  assert_string_equal(str(q, "choice"), "deny");
  json_decref(q);
  /* a wrong token: 403, nothing written */
  char *before = snapshot(f, yes.text);
  er_id_t t = callback(f, yes.text, "{\"choice\": \"approve\", \"token\": \"0123\"}");
  drive(f, 100);
  assert_int_equal(answer_status(f, t.text), 403);
  t = callback(f, yes.text, "{\"choice\": \"approve\"}");
  drive(f, 100);
  assert_int_equal(answer_status(f, t.text), 403);
  char *after = snapshot(f, yes.text);
  assert_string_equal(before, after);
  free(before);
  free(after);
  char p[128];
  snprintf(p, sizeof p, "{\"choice\": \"approve\", \"token\": \"%s\"}", token);
  t = callback(f, yes.text, p);
  drive(f, 100);
  assert_int_equal(answer_status(f, t.text), 200);
  json_t *v = output(f, yes.text);
  assert_true(json_is_true(v));
  json_decref(v);
  json_decref(d);
  d = pipe_doc(f, no.text);
  token = json_string_value(json_object_get(json_object_get(d, "state"), "token"));
  snprintf(p, sizeof p, "{\"choice\": \"deny\", \"token\": \"%s\"}", token);
  callback(f, no.text, p);
  drive(f, 100);
  v = output(f, no.text);
  assert_true(json_is_false(v));
  json_decref(v);
  json_decref(d);
  check_tree(f, yes.text, "done");
}

/* Makes callback URLs with HMAC tokens: {"k": "v"} and none. */
static json_t *urls(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *p = json_pack("{s:s}", "k", "a b&c"), *links = json_object();
  char *u = er_pipe_callback_url(ctx, p);
  if (u) json_object_set_new(links, "k", json_string(u));
  er_free(u);
  u = er_pipe_callback_url(ctx, NULL);
  if (u) json_object_set_new(links, "none", json_string(u));
  er_free(u);
  er_pipe_set_status(ctx, "urls", links);
  json_decref(links);
  json_decref(p);
  return NULL;
}
ER_PIPELINE("t.urls", urls, .callback = nothing, .flags = ER_PIPE_ASYNC)

/* A sync pipeline asking for one fails its attempt, saying why. */
static json_t *sync_url(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_free(er_pipe_callback_url(ctx, NULL));
  return json_integer(1);
}
ER_PIPELINE("t.sync_url", sync_url, .max_attempts = 1)

/* A reserved name in a callback URL's parameters fails the attempt. */
static json_t *bad_url(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *p = json_pack("{s:s}", "token", "mine");
  assert_null(er_pipe_callback_url(ctx, p));
  json_decref(p);
  return NULL;
}
ER_PIPELINE("t.bad_url", bad_url, .callback = nothing, .flags = ER_PIPE_ASYNC,
            .max_attempts = 1)

/* Callback URLs: the base, the parameters, a token that checks against the
 * store's secret for this pipeline and these parameters only. */
void test_callback_url(void **state) {
  fx_t *f = *state;
  snprintf(f->base_url, sizeof f->base_url, "http://localhost:8080/pipes");
  er_id_t root = start(f, "t.urls", NULL, NULL);
  drive(f, 100);
  json_t *d = pipe_doc(f, root.text);
  json_t *q = query_of(link(d, "k"), f->base_url);
  assert_string_equal(str(q, "pipeline_id"), root.text);
  assert_string_equal(str(q, "k"), "a b&c");
  const char *tok = str(q, "token");
  json_t *params = json_pack("{s:s}", "k", "a b&c");
  assert_int_equal(er__pipe_token_check(f->s, root.text, params, tok), 0);
  json_object_set_new(params, "k", json_string("other"));
  assert_int_equal(er__pipe_token_check(f->s, root.text, params, tok), ER_EAUTH);
  json_decref(params);
  json_decref(q);
  q = query_of(link(d, "none"), f->base_url);
  assert_int_equal(json_object_size(q), 2); /* pipeline_id and token */
  json_decref(q);
  json_decref(d);
  /* without a base URL: no URL, and the pipeline goes on */
  f->base_url[0] = 0;
  unsetenv("ERRAND_BASE_URL");
  root = start(f, "t.urls", NULL, NULL);
  drive(f, 100);
  d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "run");
  assert_int_equal(json_object_size(json_object_get(d, "links")), 0);
  json_decref(d);
  /* misuse */
  root = start(f, "t.sync_url", NULL, NULL);
  drive(f, 100);
  d = pipe_doc(f, root.text);
  assert_non_null(strstr(str(d, "retry_message"), "er_pipe_callback_url is for async pipelines"));
  json_decref(d);
  snprintf(f->base_url, sizeof f->base_url, "http://localhost:8080");
  root = start(f, "t.bad_url", NULL, NULL);
  drive(f, 100);
  d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "aborted");
  assert_non_null(strstr(str(d, "retry_message"), "er_pipe_callback_url"));
  json_decref(d);
}

