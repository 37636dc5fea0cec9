/* The built-in pipelines, each started as a root and run to its end. */
#include "drive.h"

typedef struct builtin_case {
  const char *name, *args, *kwargs;
  const char *want;  /* the output as JSON, or NULL: the root aborts */
  const char *abort; /* ... with a message containing this */
} builtin_case_t;

static const builtin_case_t cases[] = {
    {"Return", "[{\"a\": 1}]", NULL, "{\"a\": 1}", NULL},
    {"Return", "[]", NULL, "null", NULL},
    {"Ignore", "[1, 2]", NULL, "null", NULL},
    {"List", "[1, \"x\", null]", NULL, "[1, \"x\", null]", NULL},
    {"Dict", "[]", "{\"a\": 1, \"b\": [2]}", "{\"a\": 1, \"b\": [2]}", NULL},
    {"Sum", "[1, 2, 3]", NULL, "6", NULL},
    {"Sum", "[1, 2.5]", NULL, "3.5", NULL},
    {"Sum", "[]", NULL, "0", NULL},
    {"Sum", "[1, \"2\"]", NULL, NULL, "Sum: argument 1 is not a number"},
    {"Multiply", "[2, 3, 4]", NULL, "24", NULL},
    {"Multiply", "[4611686018427387904, 4]", NULL, NULL, "Multiply: the integers overflow"},
    {"Sum", "[9223372036854775807, 1]", NULL, NULL, "Sum: the integers overflow"},
    {"Max", "[3, 9, 2]", NULL, "9", NULL},
    {"Min", "[3, 9, 2.5]", NULL, "2.5", NULL},
    {"Max", "[]", NULL, NULL, "Max needs at least one value"},
    {"Max", "[9007199254740993, 9007199254740992]", NULL, "9007199254740993", NULL},
    {"Max", "[3, 2.5]", NULL, "3", NULL},
    {"Negate", "[5]", NULL, "-5", NULL},
    {"Negate", "[5, -2.5]", NULL, "[-5, 2.5]", NULL},
    {"Negate", "[-9223372036854775808]", NULL, "9223372036854775808.0", NULL},
    {"All", "[1, true, \"x\"]", NULL, "true", NULL},
    {"All", "[1, 0]", NULL, "false", NULL},
    {"Any", "[0, \"\", []]", NULL, "false", NULL},
    {"Any", "[0, {\"a\": 1}]", NULL, "true", NULL},
    {"Complement", "[0]", NULL, "true", NULL},
    {"Complement", "[0, 1]", NULL, "[true, false]", NULL},
    {"AbortIfTrue", "[false, \"no\"]", NULL, "null", NULL},
    {"AbortIfTrue", "[1, \"stop here\"]", NULL, NULL, "stop here"},
    {"Append", "[[1], 2]", NULL, "[[1], 2]", NULL},
    {"Extend", "[[1, 2], [2, 3]]", NULL, "[1, 2, 2, 3]", NULL},
    {"Extend", "[[1], 2]", NULL, NULL, "Extend: argument 1 is not a list"},
    {"Concat", "[\"ab\", \"\", \"c\"]", NULL, "\"abc\"", NULL},
    {"Union", "[[1, 2], [2, 3, 1]]", NULL, "[1, 2, 3]", NULL},
    {"Intersection", "[[3, 1, 2], [2, 3], [3, 2, 9]]", NULL, "[3, 2]", NULL},
    {"Intersection", "[]", NULL, "[]", NULL},
    {"Uniquify", "[1, {\"a\": 1}, 1, {\"a\": 1}]", NULL, "[1, {\"a\": 1}]", NULL},
    {"Format", "[\"tuple\", \"%s is %s%%\", \"x\", 5]", NULL, "\"x is 5%\"", NULL},
    {"Format", "[\"dict\", \"%(who)s: %(n)s\"]", "{\"who\": \"w\", \"n\": [1]}",
     "\"w: [1]\"", NULL},
    {"Format", "[\"tuple\", \"%s %s\", 1]", NULL, NULL, "more %s than values"},
    {"Log", "[\"debug\", \"logged %s\", 1]", NULL, "null", NULL},
};

static void run_case(fx_t *f, const builtin_case_t *c) {
  json_t *args = json_loads(c->args, 0, NULL);
  json_t *kwargs = c->kwargs ? json_loads(c->kwargs, 0, NULL) : NULL;
  er_pipeline_opts_t o = {.queue = f->queue};
  er_id_t root;
  int rc = er_pipeline_start(f->c, c->name, args, kwargs, &o, &root);
  if (rc) fail_msg("%s: %s", c->name, er_client_last_error(f->c));
  json_decref(args);
  json_decref(kwargs);
  drive(f, 100);
  json_t *d = pipe_doc(f, root.text);
  const char *status = json_string_value(json_object_get(d, "status"));
  if (c->want) {
    if (strcmp(status, "done") != 0)
      fail_msg("%s %s: %s (%s)", c->name, c->args, status,
               json_string_value(json_object_get(d, "abort_message")));
    json_t *v = output(f, root.text), *want = json_loads(c->want, JSON_DECODE_ANY, NULL);
    if (!json_equal(v, want)) {
      char *got = json_dumps(v, JSON_ENCODE_ANY);
      fail_msg("%s %s gave %s, not %s", c->name, c->args, got, c->want);
    }
    json_decref(v);
    json_decref(want);
  } else {
    const char *msg = json_string_value(json_object_get(d, "abort_message"));
    if (strcmp(status, "aborted") != 0 || !msg || !strstr(msg, c->abort))
      fail_msg("%s %s: %s, '%s' (want an abort with '%s')", c->name, c->args, status, msg,
               c->abort);
  }
  json_decref(d);
}

void test_builtins(void **state) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(*state, &cases[i]);
}
