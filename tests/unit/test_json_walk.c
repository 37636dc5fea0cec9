/* The walk over a JSON value (core/json_walk.h): the events in document
 * order with their depth and place, the path it names, a visitor stopping
 * it; the preview, byte for byte json_dumps's text cut to its buffer,
 * whatever the value's depth or size; and freeing without recursion. And
 * what a worker does with a tasklet task's result on the tasklet's 64 KiB
 * stack (the outcome dropped, a failing task's result freed): jansson's own
 * free of 2,046 nested objects overflowed it. */
#include <stdlib.h>
#include <string.h>

#include "core/json_walk.h"
#include "queue/queue_internal.h"
#include "queue/result_check.h"
#include "test_util.h"

/* [[...[1]...]], depth arrays around a 1, built from the inside out. */
static json_t *deep(size_t depth) {
  json_t *v = json_integer(1);
  for (size_t i = 0; i < depth; i++) {
    json_t *a = json_array();
    json_array_append_new(a, v);
    v = a;
  }
  return v;
}

/* ---- the walk ---- */

typedef struct trace {
  char text[1024];
  int stop_at; /* the event number that stops the walk; -1 never */
  int n;
} trace_t;

/* Writes one "kind depth index path;" per event. */
static int record(const er__walk_t *w, const er__walk_event_t *e, void *ud) {
  trace_t *t = ud;
  static const char *const kinds = "ELKS";
  char path[128];
  er__walk_path(w, "v", path, sizeof path);
  size_t at = strlen(t->text);
  snprintf(t->text + at, sizeof t->text - at, "%c%zu%zu %s%s%.*s;", kinds[e->kind], e->depth,
           e->index, path, e->kind == ER__WALK_KEY ? " k=" : "",
           e->kind == ER__WALK_KEY ? (int)e->key_len : 0, e->key ? e->key : "");
  return t->n++ == t->stop_at ? 7 : 0;
}

static void walk_tells_every_value_in_order(void **state) {
  (void)state;
  json_t *v = json_loads("[1,{\"a\":[true],\"b\":{}},\"s\"]", 0, NULL);
  trace_t t = {.stop_at = -1};
  assert_int_equal(er__json_walk(v, record, &t), 0);
  assert_string_equal(t.text,
                      "E10 v;S20 v[0];E21 v[1];K30 v[1].a k=a;E30 v[1].a;S40 v[1].a[0];"
                      "L30 v[1].a;K31 v[1].b k=b;E31 v[1].b;L31 v[1].b;L21 v[1];S22 v[2];L10 v;");
  /* What the visitor returns stops it, at once. */
  trace_t s = {.stop_at = 3};
  assert_int_equal(er__json_walk(v, record, &s), 7);
  assert_int_equal(s.n, 4);
  json_decref(v);
  /* A scalar is the whole walk; NULL none. */
  trace_t one = {.stop_at = -1};
  json_t *x = json_string("x");
  assert_int_equal(er__json_walk(x, record, &one), 0);
  assert_string_equal(one.text, "S10 v;");
  json_decref(x);
  assert_int_equal(er__json_walk(NULL, record, &one), 0);
  assert_int_equal(one.n, 1);
}

static int deepest(const er__walk_t *w, const er__walk_event_t *e, void *ud) {
  size_t *max = ud;
  if (e->depth > *max) *max = e->depth;
  if (e->kind == ER__WALK_SCALAR) {
    char path[64];
    er__walk_path(w, "r", path, sizeof path);
    assert_string_equal(path, "r[0][0][0][0][0][0]...[0][0]");
  }
  return 0;
}

/* 100,000 levels on the caller's stack: no recursion. */
static void walk_goes_any_depth(void **state) {
  (void)state;
  json_t *v = deep(100000);
  size_t max = 0;
  assert_int_equal(er__json_walk(v, deepest, &max), 0);
  assert_int_equal(max, 100001);
  er__json_free_deep(v);
}

/* ---- the preview ---- */

static const char *const k_texts[] = {
    "10", "-12345678901234", "0.1", "1e300", "-2.5e-7", "true", "false", "null", "\"\"",
    "\"q\\\"b\\\\s\\n\\t\\r\\b\\f\\u0000\\u0001\\u001f\\u007f/\u00e9\u4e2d\xf0\x9f\x98\x80\"",
    "[]", "{}", "[1,[2,[3,{}]],\"x\"]",
    "{\"a\":1,\"k\\\"\\n\\u0002\":[true,null],\"\":{\"z\":\"\"},\"\u00e9\":[[],{}]}"};

/* Every cut of each text: the preview is json_dumps's text up to there. */
static void preview_is_json_dumps_cut(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
    json_t *v = json_loads(k_texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    char *whole = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = strlen(whole);
    for (size_t size = 1; size <= len + 2; size++) {
      char out[256];
      memset(out, '#', sizeof out);
      int rc = er__json_preview(v, out, size);
      assert_int_equal(rc, len > size - 1 ? 1 : 0);
      size_t n = len < size - 1 ? len : size - 1;
      if (memcmp(out, whole, n) != 0 || out[n] != 0)
        fail_msg("%s cut to %zu: '%s', not '%.*s'", k_texts[i], size - 1, out, (int)n, whole);
      assert_int_equal(out[n + 1], '#'); /* nothing written past the NUL */
    }
    free(whole);
    json_decref(v);
  }
}

/* jansson refuses to encode a string that is not UTF-8: so does the preview,
 * for the bytes it shows (and a sequence they start); the rest it never
 * reads. */
static void preview_refuses_invalid_utf8_it_shows(void **state) {
  (void)state;
  char out[9];
  json_t *bad = json_pack("[o]", json_stringn_nocheck("ab\xff", 3));
  assert_int_equal(er__json_preview(bad, out, sizeof out), ER_EINVAL);
  assert_string_equal(out, "");
  json_decref(bad);
  /* ["abcdé: the é's first byte is shown, so its second is read. */
  json_t *cut = json_pack("[o]", json_stringn_nocheck("abcd\xc3\xff", 6));
  assert_int_equal(er__json_preview(cut, out, sizeof out), ER_EINVAL);
  json_decref(cut);
  json_t *late = json_pack("[o]", json_stringn_nocheck("abcdefgh\xff", 9));
  assert_int_equal(er__json_preview(late, out, sizeof out), 1);
  assert_string_equal(out, "[\"abcdef");
  json_decref(late);
}

/* 100,000 deep, or 2^40 leaves through shared parts: 80 bytes, at once. */
static void preview_is_bounded(void **state) {
  (void)state;
  char out[81], want[81];
  memset(want, '[', 80);
  want[80] = 0;
  json_t *v = deep(100000);
  assert_int_equal(er__json_preview(v, out, sizeof out), 1);
  assert_string_equal(out, want);
  er__json_free_deep(v);
  v = json_pack("[i]", 1);
  for (int i = 0; i < 40; i++) v = json_pack("[O, o]", v, v); /* v twice, one reference */
  assert_int_equal(er__json_preview(v, out, sizeof out), 1);
  assert_string_equal(
      out, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1],[1]],[[1],[1]]],[[[1],[1]],[[1],[1]]");
  json_decref(v);
}

/* ---- freeing ---- */

/* A part the caller still holds survives, whole; the rest is freed (the
 * ASan build's leak check says so). */
static void free_deep_keeps_what_others_hold(void **state) {
  (void)state;
  json_t *kept = deep(3);
  json_t *v = json_pack("{s:O, s:[O, o]}", "a", kept, "b", kept, deep(100000));
  er__json_free_deep(v);
  assert_int_equal(kept->refcount, 1);
  char *text = json_dumps(kept, JSON_COMPACT);
  assert_string_equal(text, "[[[1]]]");
  free(text);
  json_decref(kept);
  er__json_free_deep(NULL);
}

/* {"a":{"a":...}}, depth objects: jansson frees an object with more stack a
 * level than an array. */
static json_t *deep_objects(size_t depth) {
  json_t *v = json_object();
  for (size_t i = 1; i < depth; i++) v = json_pack("{s:o}", "a", v);
  return v;
}

static int drop_results(void *arg) {
  (void)arg;
  er__outcome_t o = {.result = deep_objects(ER__RESULT_MAX_DEPTH)};
  er__outcome_clear(&o);
  er_task_rec_t rec = {.id = "x"};
  er_task_t t;
  er__task_init(&t, &rec, NULL);
  er__task_finish(&t, ER_EFAIL, deep_objects(ER__RESULT_MAX_DEPTH));
  bool failed = t.out.rc == ER_EFAIL && !t.out.result;
  er__outcome_clear(&t.out);
  er__task_init(&t, &rec, NULL);
  er__task_finish(&t, ER_ERETRY, deep_objects(ER__RESULT_MAX_DEPTH));
  bool retried = t.out.retry && !t.out.result;
  er__outcome_clear(&t.out);
  /* No cmocka assertion here: its failure jumps off this stack. */
  return failed && retried ? 0 : ER_EINTERNAL;
}

static void results_dropped_on_a_tasklet_stack(void **state) {
  (void)state;
  er_loop_t *loop = NULL;
  assert_int_equal(er_loop_new(&loop, NULL), 0); /* tasklets on 64 KiB */
  er_future_t *f = er_spawn(loop, drop_results, NULL);
  assert_int_equal(er_loop_run(loop), 0);
  assert_int_equal(er_future_check_success(f), 0);
  er_future_unref(f);
  er_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(walk_tells_every_value_in_order),
      cmocka_unit_test(walk_goes_any_depth),
      cmocka_unit_test(preview_is_json_dumps_cut),
      cmocka_unit_test(preview_refuses_invalid_utf8_it_shows),
      cmocka_unit_test(preview_is_bounded),
      cmocka_unit_test(free_deep_keeps_what_others_hold),
      cmocka_unit_test(results_dropped_on_a_tasklet_stack),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
