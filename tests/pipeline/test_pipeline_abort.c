/* Retries on a clock the test moves, retries exhausted, aborts, and what
 * finalize functions see. */
#include "drive.h"

static json_t *flaky(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  return er_pipe_retry(ctx, "flaky: try %d", er_pipe_attempt(ctx));
}
ER_PIPELINE("t.flaky", flaky, .finalize = record, .max_attempts = 3, .backoff_s = 15,
            .backoff_factor = 2)

static json_t *leaf(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) { return json_integer(1); }
ER_PIPELINE("t.fin_leaf", leaf, .finalize = record)

static json_t *hold(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  return er_pipe_retry(ctx, "not yet");
}
ER_PIPELINE("t.hold", hold, .finalize = record, .max_attempts = 5, .backoff_s = 1000)

static json_t *parent(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  const char *second = json_string_value(json_array_get(args, 0));
  er_pipe_child(ctx, "t.fin_leaf", NULL);
  er_pipe_child(ctx, second ? second : "t.fin_leaf", NULL);
  return NULL;
}
ER_PIPELINE("t.fin_parent", parent, .finalize = record)

static const char *child_id(json_t *doc, size_t i) {
  return json_string_value(json_array_get(json_object_get(doc, "children"), i));
}


static const char *str(json_t *doc, const char *field) {
  const char *s = json_string_value(json_object_get(doc, field));
  return s ? s : "(null)";
}

void test_retry_timings(void **state) {
  fx_t *f = *state;
  int64_t t0 = g_now;
  er_id_t root = start(f, "t.flaky", NULL, NULL);
  assert_int_equal(step(f, 10), 1);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "retry");
  assert_string_equal(str(d, "retry_message"), "flaky: try 1");
  assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
  json_decref(d);
  /* the first retry waits backoff_s */
  falls_due_at(f, t0 + 15000);
  /* the second backoff_s * factor */
  int64_t t1 = g_now;
  falls_due_at(f, t1 + 30000);
  /* the third attempt was the last: the root aborts */
  d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "retry_message"), "flaky: try 3");
  assert_string_equal(str(d, "abort_message"), "aborting after 3 attempts");
  json_decref(d);
  drive(f, 100);
  check_tree(f, root.text, "aborted");
  finalized(root.text, true);
}

static json_t *stubborn(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  return er_pipe_retry(ctx, "no");
}
ER_PIPELINE("t.stubborn", stubborn, .max_attempts = 40, .backoff_s = 1, .backoff_factor = 10)

/* Waits grow by the factor up to a year, and no further. */
void test_retry_cap(void **state) {
  fx_t *f = *state;
  start(f, "t.stubborn", NULL, NULL);
  int64_t year = 365LL * 86400000;
  for (int n = 1; n <= 20; n++) {
    assert_int_equal(step(f, 10), 1);
    int64_t wait = next_due(f) - g_now, want = 1000;
    for (int i = 1; i < n && want < year; i++) want *= 10;
    assert_int_equal(wait, want < year ? want : year);
    g_now += wait;
  }
}

void test_retries_exhausted(void **state) {
  fx_t *f = *state;
  chaos(f, 21, 0.2, 0.1, 0.1);
  er_id_t root = start(f, "t.fin_parent", "[\"t.flaky\"]", NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "aborted");
  assert_string_equal(str(d, "abort_message"), "aborting after 3 attempts");
  json_t *fl = pipe_doc(f, child_id(d, 1));
  assert_string_equal(str(fl, "status"), "aborted");
  assert_string_equal(str(fl, "retry_message"), "flaky: try 3");
  assert_int_equal(json_integer_value(json_object_get(fl, "attempts")), 3);
  finalized(root.text, true);
  finalized(child_id(d, 1), true);
  json_decref(fl);
  json_decref(d);
}

void test_abort_twice(void **state) {
  fx_t *f = *state;
  er_id_t root = start(f, "t.fin_parent", "[\"t.hold\"]", NULL);
  assert_int_equal(step(f, 10), 1); /* the root's children */
  assert_int_equal(step(f, 10), 2); /* the leaf is done, the hold waits */
  bool aborted = false;
  assert_int_equal(er_pipeline_abort(f->c, root.text, "stop it", &aborted), 0);
  assert_true(aborted);
  assert_int_equal(er_pipeline_abort(f->c, root.text, "again", &aborted), 0);
  assert_false(aborted);
  json_t *d = pipe_doc(f, root.text);
  /* only a root is aborted */
  assert_int_equal(er_pipeline_abort(f->c, child_id(d, 0), NULL, &aborted), ER_EINVAL);
  chaos(f, 4, 0.3, 0.1, 0.1);
  drive(f, 1000);
  json_decref(d);
  d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "aborted");
  assert_string_equal(str(d, "abort_message"), "stop it");
  json_t *l = pipe_doc(f, child_id(d, 0)), *h = pipe_doc(f, child_id(d, 1));
  assert_string_equal(str(l, "status"), "done");
  assert_string_equal(str(h, "status"), "aborted");
  finalized(root.text, true);
  finalized(child_id(d, 0), false);
  finalized(child_id(d, 1), true);
  /* over: a third abort changes nothing */
  assert_int_equal(er_pipeline_abort(f->c, root.text, NULL, &aborted), 0);
  assert_false(aborted);
  json_decref(l);
  json_decref(h);
  json_decref(d);
}

void test_finalize_sees_outcome(void **state) {
  fx_t *f = *state;
  chaos(f, 8, 0.3, 0.1, 0.1);
  er_id_t root = start(f, "t.fin_parent", NULL, NULL);
  drive(f, 1000);
  check_tree(f, root.text, "done");
  json_t *d = pipe_doc(f, root.text);
  finalized(root.text, false);
  finalized(child_id(d, 0), false);
  finalized(child_id(d, 1), false);
  json_decref(d);
}

/* ---- deliveries that overlap ---- */

static fx_t *g_fx;
static int g_calls;

/* The first attempt loses its lease while it runs: another delivery takes
 * the task over and finishes the stage before the first one returns. */
static json_t *overtaken(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  if (++g_calls == 1) {
    g_now += LEASE_MS + 1;
    assert_int_equal(er_store_maintain(g_fx->s, g_now, NULL), 0);
    assert_int_equal(step(g_fx, 1), 1); /* attempt 2 of the same task, to the end */
    return json_integer(1);
  }
  return json_integer(2);
}
ER_PIPELINE("t.overtaken", overtaken)

void test_overtaken(void **state) {
  fx_t *f = g_fx = *state;
  g_calls = 0;
  er_id_t root = start(f, "t.overtaken", NULL, NULL);
  assert_int_equal(step(f, 1), 1);
  assert_int_equal(g_calls, 2);
  drive(f, 100);
  check_tree(f, root.text, "done"); /* its run was written once */
  json_t *v = output(f, root.text);
  assert_int_equal(json_integer_value(v), 2); /* the late attempt wrote nothing */
  json_decref(v);
}

/* The tree is aborted while a stage runs: what the stage returns then is
 * dropped, and the stage is aborted (its finalize told so). */
static json_t *aborts_itself(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  bool aborted = false;
  assert_int_equal(er_pipeline_abort(g_fx->c, er_pipe_root_id(ctx), "meanwhile", &aborted), 0);
  assert_true(aborted);
  return json_integer(1);
}
ER_PIPELINE("t.aborts_itself", aborts_itself, .finalize = record)

void test_abort_during_run(void **state) {
  fx_t *f = g_fx = *state;
  er_id_t root = start(f, "t.aborts_itself", NULL, NULL);
  drive(f, 100);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "aborted");
  assert_string_equal(str(d, "abort_message"), "meanwhile");
  json_decref(d);
  json_t *v = NULL;
  assert_int_equal(er_pipeline_output(f->c, root.text, NULL, &v), ER_ESTATE);
  /* finalized after its run (not aborted yet as it ran), then by the abort */
  json_t *l = json_object_get(g_fin, root.text);
  assert_int_equal(json_array_size(l), 2);
  assert_true(json_is_true(json_array_get(l, 1)));
}
