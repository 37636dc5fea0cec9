/* Pipelines, scenario by scenario (App Engine's behaviours), on the store
 * named by $ERRAND_TEST_STORE or a fresh SQLite file: the examples (linked
 * in: euclid, fan_sum, chain) under random orders with duplicated, lost and
 * late deliveries; After and InOrder; strict and dynamic outputs; bad
 * input. Retries and aborts are in test_pipeline_abort.c. */
#include "drive.h"

/* ---- pipelines of the tests ---- */

/* er_pipe_fill borrows its value. */
static int fill_int(er_pipe_ctx_t *ctx, const char *name, json_int_t v) {
  json_t *j = json_integer(v);
  int rc = er_pipe_fill(ctx, name, j);
  json_decref(j);
  return rc;
}

static int g_seq;        /* run order */
static int g_first[16];  /* the first run of stamp k, by g_seq */

static json_t *stamp(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  int k = (int)json_integer_value(json_array_get(args, 0));
  if (k >= 0 && k < 16 && !g_first[k]) g_first[k] = ++g_seq;
  return json_integer(k);
}
ER_PIPELINE("t.stamp", stamp)

static void reset_stamps(void) {
  g_seq = 0;
  memset(g_first, 0, sizeof g_first);
}

static er_pipe_handle_t *child_k(er_pipe_ctx_t *ctx, int k) {
  json_t *a = json_pack("[i]", k);
  er_pipe_handle_t *h = er_pipe_child(ctx, "t.stamp", a);
  json_decref(a);
  return h;
}

/* 1 and 2 free, 3 after 1 and 2, then 4 and 5 after 3 (nested), 6 free. */
static json_t *after(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_handle_t *a = child_k(ctx, 1), *b = child_k(ctx, 2);
  er_pipe_after(ctx, a, b, NULL);
  er_pipe_handle_t *c = child_k(ctx, 3);
  er_pipe_after(ctx, c, NULL);
  child_k(ctx, 4);
  child_k(ctx, 5);
  er_pipe_after_end(ctx);
  er_pipe_after_end(ctx);
  child_k(ctx, 6);
  return NULL;
}
ER_PIPELINE("t.after", after)

static json_t *in_order(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_in_order(ctx);
  for (int k = 1; k <= 5; k++) child_k(ctx, k);
  er_pipe_in_order_end(ctx);
  return NULL;
}
ER_PIPELINE("t.in_order", in_order)

static json_t *nested(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_in_order(ctx);
  child_k(ctx, 1);
  assert_int_equal(er_pipe_in_order(ctx), ER_ESTATE);
  child_k(ctx, 2);
  return NULL;
}
ER_PIPELINE("t.nested", nested, .max_attempts = 1)

static json_t *two(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  fill_int(ctx, "a", 1);
  fill_int(ctx, "b", 2);
  return json_integer(3);
}
ER_PIPELINE("t.two", two, .outputs = (const char *[]){"a", "b", NULL})

static json_t *use_named(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_handle_t *h = er_pipe_child(ctx, "t.two", NULL);
  json_t *a =
      json_pack("[O, O, O]", er_pipe_out(h, "a"), er_pipe_out(h, "b"), er_pipe_out(h, NULL));
  er_pipe_child(ctx, "Sum", a);
  json_decref(a);
  return NULL;
}
ER_PIPELINE("t.use_named", use_named)

static json_t *undeclared(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  assert_int_equal(fill_int(ctx, "b", 1), ER_EINVAL);
  fill_int(ctx, "a", 1);
  return NULL;
}
ER_PIPELINE("t.undeclared", undeclared, .outputs = (const char *[]){"a", NULL}, .max_attempts = 1)

static json_t *lazy(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) { return json_integer(1); }
ER_PIPELINE("t.lazy", lazy, .outputs = (const char *[]){"a", NULL}, .max_attempts = 1)

static json_t *twice(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  fill_int(ctx, NULL, 1);
  assert_int_equal(fill_int(ctx, NULL, 2), ER_EALREADY);
  return NULL;
}
ER_PIPELINE("t.twice", twice, .max_attempts = 1)

static json_t *dyn(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  fill_int(ctx, "x", 7);
  fill_int(ctx, "unused", 8);
  return json_integer(1);
}
ER_PIPELINE("t.dyn", dyn)

static json_t *use_dyn(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_handle_t *h = er_pipe_child(ctx, "t.dyn", NULL);
  json_t *kw = json_pack("{s:O, s:i}", "x", er_pipe_out(h, "x"), "plain", 5);
  json_t *a = json_pack("[O]", er_pipe_out(h, "x"));
  er_pipe_child_kw(ctx, "Return", a, kw);
  json_decref(a);
  json_decref(kw);
  return NULL;
}
ER_PIPELINE("t.use_dyn", use_dyn)

static json_t *dyn_a(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  fill_int(ctx, "a", 5);
  return json_integer(6);
}
ER_PIPELINE("t.dyn_a", dyn_a)

/* The last child inherits "a" and the default output. */
static json_t *strict_parent(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  const char *last = json_string_value(json_array_get(args, 0));
  json_t *a = json_pack("[i]", 1);
  er_pipe_child(ctx, last, a);
  json_decref(a);
  return NULL;
}
ER_PIPELINE("t.strict_parent", strict_parent, .outputs = (const char *[]){"a", NULL})

/* ---- the examples, with chaos ---- */

static void run_example(fx_t *f, const char *name, const char *args, json_int_t want) {
  er_id_t root = start(f, name, args, NULL);
  drive(f, 20000);
  check_tree(f, root.text, "done");
  json_t *v = output(f, root.text);
  assert_true(json_is_integer(v));
  assert_int_equal(json_integer_value(v), want);
  json_decref(v);
}

static void test_euclid(void **state) {
  fx_t *f = *state;
  chaos(f, 7, 0.2, 0.1, 0.1);
  run_example(f, "euclid", "[1071, 462]", 21);
}

static void test_fan_sum(void **state) {
  fx_t *f = *state;
  chaos(f, 11, 0.1, 0.05, 0.05);
  run_example(f, "fan_sum", "[100]", 4950);
}

static void test_chain(void **state) {
  fx_t *f = *state;
  chaos(f, 13, 0.2, 0.1, 0.1);
  run_example(f, "chain", "[12]", 12);
}

/* Many seeds, every kind of delivery fault, each example. */
static void test_random_orders(void **state) {
  fx_t *f = *state;
  for (unsigned seed = 1; seed <= 50; seed++) {
    chaos(f, seed, 0.25, 0.15, 0.15);
    er_id_t a = start(f, "fan_sum", "[6]", NULL);
    er_id_t b = start(f, "chain", "[4]", NULL);
    er_id_t c = start(f, "euclid", "[48, 18]", NULL);
    drive(f, 5000);
    check_tree(f, a.text, "done");
    check_tree(f, b.text, "done");
    check_tree(f, c.text, "done");
    json_t *v = output(f, a.text);
    assert_int_equal(json_integer_value(v), 15);
    json_decref(v);
    v = output(f, b.text);
    assert_int_equal(json_integer_value(v), 4);
    json_decref(v);
    v = output(f, c.text);
    assert_int_equal(json_integer_value(v), 6);
    json_decref(v);
  }
}

/* ---- ordering ---- */

static void test_after(void **state) {
  fx_t *f = *state;
  for (unsigned seed = 1; seed <= 10; seed++) {
    reset_stamps();
    chaos(f, seed, 0, 0, 0);
    er_id_t root = start(f, "t.after", NULL, NULL);
    drive(f, 1000);
    check_tree(f, root.text, "done");
    assert_true(g_first[3] > g_first[1] && g_first[3] > g_first[2]);
    assert_true(g_first[4] > g_first[3] && g_first[5] > g_first[3]);
  }
}

static void test_in_order(void **state) {
  fx_t *f = *state;
  for (unsigned seed = 1; seed <= 10; seed++) {
    reset_stamps();
    chaos(f, seed, 0.2, 0, 0);
    er_id_t root = start(f, "t.in_order", NULL, NULL);
    drive(f, 1000);
    check_tree(f, root.text, "done");
    for (int k = 2; k <= 5; k++) assert_true(g_first[k] > g_first[k - 1]);
    json_t *v = output(f, root.text); /* the last child's */
    assert_int_equal(json_integer_value(v), 5);
    json_decref(v);
  }
}

/* A misuse fails the attempt with its message; with one attempt the root
 * is aborted. */
static void expect_usage(fx_t *f, const char *name, const char *needle) {
  er_id_t root = start(f, name, NULL, NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, root.text);
  const char *msg = json_string_value(json_object_get(d, "retry_message"));
  if (!msg || !strstr(msg, needle)) fail_msg("retry_message '%s' lacks '%s'", msg, needle);
  assert_null(strchr(msg, '\n'));
  assert_string_equal(json_string_value(json_object_get(d, "abort_message")),
                      "aborting after 1 attempts");
  json_decref(d);
  check_tree(f, root.text, "aborted");
}

static void test_nested_in_order(void **state) {
  expect_usage(*state, "t.nested", "er_pipe_in_order cannot be nested");
}

/* ---- outputs ---- */

static void test_strict_outputs(void **state) {
  fx_t *f = *state;
  chaos(f, 3, 0.2, 0.1, 0.1);
  run_example(f, "t.use_named", NULL, 6);
  expect_usage(f, "t.undeclared", "fills undeclared output 'b'");
  expect_usage(f, "t.lazy", "never filled its outputs a");
  expect_usage(f, "t.twice", "fills output 'default' twice");
}

/* A last child fills the outputs it inherits, or fails saying which it left:
 * the parent would otherwise wait for them forever. */
static void test_inherited_outputs(void **state) {
  fx_t *f = *state;
  chaos(f, 9, 0.2, 0.1, 0.1);
  er_id_t root = start(f, "t.strict_parent", "[\"t.dyn_a\"]", NULL);
  drive(f, 1000);
  check_tree(f, root.text, "done");
  json_t *v = output(f, root.text), *a = NULL;
  assert_int_equal(json_integer_value(v), 6);
  assert_int_equal(er_pipeline_output(f->c, root.text, "a", &a), 0);
  assert_int_equal(json_integer_value(a), 5);
  json_decref(v);
  json_decref(a);
  root = start(f, "t.strict_parent", "[\"Return\"]", NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(json_string_value(json_object_get(d, "abort_message")),
                      "aborting after 3 attempts");
  json_t *c = pipe_doc(f, json_string_value(json_array_get(json_object_get(d, "children"), 0)));
  assert_string_equal(json_string_value(json_object_get(c, "retry_message")),
                      "pipeline 'Return' never filled its outputs a");
  json_decref(c);
  json_decref(d);
}

static void test_dynamic_outputs(void **state) {
  fx_t *f = *state;
  chaos(f, 5, 0.2, 0.1, 0.1);
  er_id_t root = start(f, "t.use_dyn", NULL, NULL);
  drive(f, 1000);
  check_tree(f, root.text, "done");
  json_t *v = output(f, root.text);
  assert_int_equal(json_integer_value(v), 7);
  json_decref(v);
  /* the child's output "unused", made when filled, is in the tree */
  json_t *t = tree(f, root.text);
  json_t *d = pipe_doc(f, root.text);
  const char *dyn = json_string_value(json_array_get(json_object_get(d, "children"), 0));
  json_t *outs = json_object_get(json_object_get(json_object_get(t, "pipelines"), dyn), "outputs");
  assert_int_equal(json_object_size(outs), 3);
  json_t *slot = json_object_get(json_object_get(t, "slots"),
                                 json_string_value(json_object_get(outs, "unused")));
  assert_int_equal(json_integer_value(json_object_get(slot, "value")), 8);
  json_decref(d);
  json_decref(t);
}

/* ---- bad input ---- */

static void test_bad_input(void **state) {
  fx_t *f = *state;
  size_t before = count_docs(f, ER__PIPE_COLL);
  er_pipeline_opts_t o = {.queue = f->queue};
  json_t *obj = json_object(), *arr = json_array();
  er_id_t id;
  assert_int_equal(er_pipeline_start(f->c, "no.such", NULL, NULL, &o, &id), ER_EINVAL);
  assert_non_null(strstr(er_client_last_error(f->c), "unknown pipeline 'no.such'"));
  assert_int_equal(er_pipeline_start(f->c, "euclid", obj, NULL, &o, &id), ER_EINVAL);
  assert_non_null(strstr(er_client_last_error(f->c), "args must be a JSON array"));
  assert_int_equal(er_pipeline_start(f->c, "euclid", arr, arr, &o, &id), ER_EINVAL);
  o.countdown_ms = 10;
  o.eta_ms = g_now + 10;
  assert_int_equal(er_pipeline_start(f->c, "euclid", arr, NULL, &o, &id), ER_EINVAL);
  assert_non_null(strstr(er_client_last_error(f->c), "not both"));
  assert_int_equal(count_docs(f, ER__PIPE_COLL), before);
  /* a key: the second start is refused and names the first root */
  o = (er_pipeline_opts_t){.queue = f->queue, .key = "the-key"};
  er_id_t first, second;
  json_t *args = json_pack("[i, i]", 4, 2);
  assert_int_equal(er_pipeline_start(f->c, "euclid", args, NULL, &o, &first), 0);
  assert_int_equal(er_pipeline_start(f->c, "euclid", args, NULL, &o, &second), ER_EEXIST);
  assert_string_equal(first.text, second.text);
  assert_int_equal(count_docs(f, ER__PIPE_COLL), before + 1);
  /* reading an output before it is filled */
  json_t *v = NULL;
  assert_int_equal(er_pipeline_output(f->c, first.text, NULL, &v), ER_ESTATE);
  assert_non_null(strstr(er_client_last_error(f->c), "is not filled yet"));
  assert_int_equal(er_pipeline_output(f->c, first.text, "nope", &v), ER_ENOENT);
  /* a name no worker has: the worker aborts the root, saying why */
  o = (er_pipeline_opts_t){.queue = f->queue, .unchecked = true};
  assert_int_equal(er_pipeline_start(f->c, "no.such", NULL, NULL, &o, &id), 0);
  drive(f, 1000);
  json_t *d = pipe_doc(f, id.text);
  assert_string_equal(json_string_value(json_object_get(d, "status")), "aborted");
  assert_non_null(strstr(json_string_value(json_object_get(d, "abort_message")),
                         "unknown pipeline 'no.such'"));
  json_decref(d);
  json_decref(args);
  json_decref(obj);
  json_decref(arr);
}

static void count_line(er_log_level_t level, const char *line, void *ud) { ++*(int *)ud; }
static json_t *dyn_cb(er_pipe_ctx_t *ctx, json_t *params) { return NULL; }

static void test_register(void **state) {
  static const er_pipeline_def_t again = {.name = "euclid", .run = dyn};
  static const char *const named_default[] = {"default", NULL};
  static const er_pipeline_def_t bad_out = {.name = "t.bad", .run = dyn, .outputs = named_default};
  static const er_pipeline_def_t no_run = {.name = "t.norun"};
  /* callbacks and try_cancel are for async pipelines; flags are known ones */
  static const er_pipeline_def_t public_sync = {.name = "t.public_sync", .run = dyn,
                                                .flags = ER_PIPE_PUBLIC_CALLBACKS};
  static const er_pipeline_def_t cb_sync = {.name = "t.cb_sync", .run = dyn, .callback = dyn_cb};
  static const er_pipeline_def_t odd_flag = {.name = "t.odd", .run = dyn, .flags = 64};
  static const er_pipeline_def_t async = {.name = "t.async_reg", .run = dyn,
                                          .flags = ER_PIPE_ASYNC | ER_PIPE_PUBLIC_CALLBACKS};
  int lines = 0;
  er_log_set_sink(count_line, &lines); /* each refusal is logged, once */
  assert_int_equal(er_pipeline_register(&again), ER_EEXIST);
  assert_int_equal(er_pipeline_register(&bad_out), ER_EINVAL);
  assert_int_equal(er_pipeline_register(&no_run), ER_EINVAL);
  assert_int_equal(er_pipeline_register(&public_sync), ER_EINVAL);
  assert_int_equal(er_pipeline_register(&cb_sync), ER_EINVAL);
  assert_int_equal(er_pipeline_register(&odd_flag), ER_EINVAL);
  assert_int_equal(er_pipeline_register(&async), 0);
  er_log_set_sink(NULL, NULL);
  assert_int_equal(lines, 6);
  assert_null(er_pipeline_lookup("t.cb_sync"));
  assert_non_null(er_pipeline_lookup("t.async_reg"));
  /* the built-ins by App Engine's names */
  const char *const builtins[] = {"Return", "Ignore", "List", "Dict", "Sum", "Max", "Min",
                                  "Multiply", "Negate", "Append", "Extend", "Concat", "Union",
                                  "Intersection", "Uniquify", "Format", "Log", "Delay", "All",
                                  "Any", "Complement", "AbortIfTrue", "Approval"};
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
    assert_non_null(er_pipeline_lookup(builtins[i]));
  assert_null(er_pipeline_lookup("errand.Sum"));
}

/* A countdown delays the root's first stage. */
static void test_countdown(void **state) {
  fx_t *f = *state;
  er_pipeline_opts_t o = {.countdown_ms = 60000};
  er_id_t root = start(f, "euclid", "[10, 4]", &o);
  assert_int_equal(step(f, 10), 0);
  g_now += 60000;
  assert_int_equal(step(f, 10), 1);
  drive(f, 100);
  check_tree(f, root.text, "done");
}

static void test_list(void **state) {
  fx_t *f = *state;
  g_now += 50LL * 365 * 86400000; /* newer than any other test's roots in a shared store */
  er_id_t a = start(f, "chain", "[1]", NULL);
  g_now += 5;
  er_id_t b = start(f, "euclid", "[2, 1]", NULL);
  g_now += 5;
  er_id_t c = start(f, "chain", "[2]", NULL);
  json_t *l = NULL;
  char *next = NULL;
  assert_int_equal(er_pipeline_list(f->c, "chain", NULL, 1, &l, &next), 0);
  assert_int_equal(json_array_size(l), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "id")), c.text);
  json_t *first = json_array_get(l, 0);
  assert_string_equal(json_string_value(json_object_get(first, "status")), "waiting");
  assert_non_null(next);
  json_decref(l);
  char *next2 = NULL;
  assert_int_equal(er_pipeline_list(f->c, "chain", next, 1, &l, &next2), 0);
  assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "id")), a.text);
  json_decref(l);
  er_free(next);
  er_free(next2);
  assert_int_equal(er_pipeline_list(f->c, NULL, NULL, 0, &l, NULL), 0);
  assert_true(json_array_size(l) >= 3);
  assert_string_equal(json_string_value(json_object_get(json_array_get(l, 1), "id")), b.text);
  json_decref(l);
  drive(f, 100);
}

/* The start as a future on a loop, its errors included. */
static void test_start_async(void **state) {
  fx_t *f = *state;
  er_loop_t *loop = NULL;
  assert_int_equal(er_loop_new(&loop, NULL), 0);
  er_pipeline_opts_t o = {.queue = f->queue};
  json_t *args = json_pack("[i, i]", 1071, 462), *bad = json_object();
  er_future_t *ok = er_pipeline_start_async(f->c, loop, "euclid", args, NULL, &o);
  er_future_t *no = er_pipeline_start_async(f->c, loop, "euclid", bad, NULL, &o);
  json_decref(args); /* copied */
  json_decref(bad);
  assert_int_equal(er_future_get_result(ok), 0);
  const char *root = json_string_value(er_future_json(ok));
  assert_true(root && er_id_valid(root));
  assert_int_equal(er_future_get_result(no), ER_EINVAL);
  assert_non_null(strstr(er_error_message(er_future_error(no)), "args must be a JSON array"));
  drive(f, 100);
  json_t *v = output(f, root);
  assert_int_equal(json_integer_value(v), 21);
  json_decref(v);
  er_future_unref(ok);
  er_future_unref(no);
  er_loop_free(loop);
}

void test_retry_timings(void **state);
void test_retries_exhausted(void **state);
void test_retry_cap(void **state);
void test_abort_twice(void **state);
void test_finalize_sees_outcome(void **state);
void test_overtaken(void **state);
void test_abort_during_run(void **state);
void test_builtins(void **state);
void test_retention(void **state);
void test_bounded(void **state);
void test_waits_for_stages(void **state);
void test_maintain(void **state);
void test_bad_input_unchanged(void **state);
void test_missing_stage(void **state);
void test_async_completed_by_callback(void **state);
void test_callback_retry(void **state);
void test_callback_aborts(void **state);
void test_callback_refused(void **state);
void test_callback_task_idempotent(void **state);
void test_delay_clock(void **state);
void test_approval(void **state);
void test_callback_url(void **state);
void test_try_cancel(void **state);

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_euclid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fan_sum, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_orders, setup, teardown),
      cmocka_unit_test_setup_teardown(test_after, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nested_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strict_outputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dynamic_outputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inherited_outputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
      cmocka_unit_test_setup_teardown(test_countdown, setup, teardown),
      cmocka_unit_test(test_register),
      cmocka_unit_test_setup_teardown(test_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_async, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_timings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retries_exhausted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_twice, setup, teardown),
      cmocka_unit_test_setup_teardown(test_finalize_sees_outcome, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overtaken, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_during_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_builtins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_completed_by_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_aborts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_task_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delay_clock, setup, teardown),
      cmocka_unit_test_setup_teardown(test_approval, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_url, setup, teardown),
      cmocka_unit_test_setup_teardown(test_try_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input_unchanged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_stage, setup, teardown),
      /* last: they delete the finished roots of a store the tests share */
      cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waits_for_stages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_maintain, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
