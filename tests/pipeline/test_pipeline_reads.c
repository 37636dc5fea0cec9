/* How many reads a stage costs: a fan-in reads the slots it waits on a page
 * at a time, and a stage's run reads its record and its tree's abort record
 * once each. A spy on the store handle's table counts the reads the
 * internal tasks make (the real store answers them). */
#include "drive.h"

static const er_store_ops_t *g_real;
static er_store_ops_t g_spy;
static int g_gets_slot, g_gets_pipe, g_gets_abort, g_lists;

static int spy_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                       int64_t *version) {
  if (!strcmp(coll, ER__SLOT_COLL)) g_gets_slot++;
  if (!strcmp(coll, ER__PIPE_COLL)) g_gets_pipe++;
  if (!strcmp(coll, ER__ABORT_COLL)) g_gets_abort++;
  return g_real->doc_get(s, coll, key, value, version);
}

static int spy_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                        json_t **out) {
  g_lists++;
  return g_real->doc_list(s, coll, after, limit, out);
}

static void spy_on(fx_t *f) {
  g_real = f->s->ops;
  g_spy = *g_real;
  g_spy.doc_get = spy_doc_get;
  g_spy.doc_list = spy_doc_list;
  f->s->ops = &g_spy;
  g_gets_slot = g_gets_pipe = g_gets_abort = g_lists = 0;
}

static void spy_off(fx_t *f) { f->s->ops = g_real; }

/* fan_sum [200]: once the 200 children are done, the Sum stage reads their
 * 200 slots in one listing, not one read each. */
static void test_fan_in_reads_a_page(void **state) {
  fx_t *f = *state;
  er_id_t root = start(f, "fan_sum", "[200]", NULL);
  assert_int_equal(step(f, 1), 1); /* the root declares its children */
  for (size_t done = 0; done < 200;) done += step(f, 200 - done); /* each fills its slot */
  spy_on(f);
  assert_int_equal(step(f, 1), 1); /* the Sum */
  spy_off(f);
  assert_int_equal(g_lists, 1);
  assert_true(g_gets_slot <= 1); /* its own output's, as it fills it */
  drive(f, 100);
  check_tree(f, root.text, "done");
  json_t *v = output(f, root.text);
  assert_int_equal(json_integer_value(v), 19900);
  json_decref(v);
}

/* A child's run reads its record and the abort record once each: the
 * transition starts from those reads instead of reading them again. */
static void test_stage_reads_once(void **state) {
  fx_t *f = *state;
  er_id_t root = start(f, "fan_sum", "[3]", NULL);
  assert_int_equal(step(f, 1), 1);
  spy_on(f);
  assert_int_equal(step(f, 1), 1); /* one Return child */
  spy_off(f);
  assert_int_equal(g_gets_pipe, 1);
  assert_int_equal(g_gets_abort, 1);
  drive(f, 100);
  check_tree(f, root.text, "done");
}

/* Slots of two trees made at the same time lie interleaved: reading one
 * tree's still gives all of them (and nothing for an id no slot has). A
 * page where they are thin ends the listing; the rest are read one by one. */
static void test_slots_interleaved(void **state) {
  fx_t *f = *state;
  enum { N = 1300 };
  er_mut_t *m = calloc(2 * N, sizeof *m);
  char(*ids)[ER_ID_LEN + 1] = calloc(2 * N, sizeof *ids);
  json_t *want = json_object();
  for (int i = 0; i < 2 * N; i++) {
    er_id_t id;
    er_id_new(&id);
    memcpy(ids[i], id.text, sizeof ids[i]);
    /* the first 1100 side by side, then one in 8 (a page is 1000) */
    bool mine = i < 1100 || i % 8 == 0;
    m[i] = (er_mut_t){.kind = ER_MUT_DOC_PUT, .coll = ER__SLOT_COLL, .key = ids[i],
                      .value = json_pack("{s:b, s:i}", "filled", 1, "value", i),
                      .if_version = ER_VERSION_ABSENT};
    if (mine) json_object_set_new(want, ids[i], json_true());
  }
  assert_int_equal(er_store_apply(f->s, m, 2 * N, NULL, NULL), 0);
  er_id_t none;
  er_id_new(&none);
  json_object_set_new(want, none.text, json_true());
  json_t *got = NULL;
  spy_on(f);
  assert_int_equal(er__pipe_slots_read(f->s, want, &got), 0);
  spy_off(f);
  assert_int_equal(json_object_size(got), json_object_size(want) - 1);
  for (int i = 0; i < 2 * N; i++) {
    json_t *slot = json_object_get(got, ids[i]);
    if (!json_object_get(want, ids[i])) {
      assert_null(slot);
      continue;
    }
    assert_int_equal(json_integer_value(json_object_get(slot, "value")), i);
  }
  assert_null(json_object_get(got, none.text));
  /* two pages (the second a fifth mine), then the rest one by one */
  assert_int_equal(g_lists, 2);
  assert_true(g_gets_slot > 0 && g_gets_slot <= 100);
  json_decref(got);
  json_decref(want);
  for (int i = 0; i < 2 * N; i++) json_decref(m[i].value);
  free(m);
  free(ids);
}

/* A child that aborts the tree while it runs commits nothing: its first
 * commit meets the abort record it took to be absent, and gives up. */
static er_client_t *g_client;

static json_t *aborting_child(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  bool aborted = false;
  assert_int_equal(er_pipeline_abort(g_client, er_pipe_root_id(ctx), "meanwhile", &aborted),
                   0);
  assert_true(aborted);
  return json_integer(1);
}
ER_PIPELINE("t.aborting_child", aborting_child)

static json_t *parent_of_aborting(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_child(ctx, "t.aborting_child", NULL);
  return NULL;
}
ER_PIPELINE("t.parent_of_aborting", parent_of_aborting)

static void test_abort_while_child_runs(void **state) {
  fx_t *f = *state;
  g_client = f->c;
  er_id_t root = start(f, "t.parent_of_aborting", NULL, NULL);
  assert_int_equal(step(f, 1), 1);
  json_t *d = pipe_doc(f, root.text);
  char child[ER_ID_LEN + 1];
  snprintf(child, sizeof child, "%s",
           json_string_value(json_array_get(json_object_get(d, "children"), 0)));
  json_decref(d);
  drive(f, 100);
  assert_int_equal(applied(f, ER__PIPE_TASK_RUN, child), 0);
  d = pipe_doc(f, child);
  assert_string_equal(json_string_value(json_object_get(d, "status")), "aborted");
  json_decref(d);
  d = pipe_doc(f, root.text);
  assert_string_equal(json_string_value(json_object_get(d, "status")), "aborted");
  json_decref(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fan_in_reads_a_page, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stage_reads_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slots_interleaved, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_while_child_runs, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
