/* The built-in pipelines, each started as a root and run to its end. */
#include "drive.h"

typedef struct builtin_case {
  const char *name, *args, *kwargs;
  const char *want;  /* the output as JSON, or NULL: the root aborts */
  const char *abort; /* ... with a message containing this */
} builtin_case_t;

static const builtin_case_t cases[] = {
    {"errand.Return", "[{\"a\": 1}]", NULL, "{\"a\": 1}", NULL},
    {"errand.Return", "[]", NULL, "null", NULL},
    {"errand.Ignore", "[1, 2]", NULL, "null", NULL},
    {"errand.List", "[1, \"x\", null]", NULL, "[1, \"x\", null]", NULL},
    {"errand.Dict", "[]", "{\"a\": 1, \"b\": [2]}", "{\"a\": 1, \"b\": [2]}", NULL},
    {"errand.Sum", "[1, 2, 3]", NULL, "6", NULL},
    {"errand.Sum", "[1, 2.5]", NULL, "3.5", NULL},
    {"errand.Sum", "[]", NULL, "0", NULL},
    {"errand.Sum", "[1, \"2\"]", NULL, NULL, "Sum: argument 1 is not a number"},
    {"errand.Multiply", "[2, 3, 4]", NULL, "24", NULL},
    {"errand.Multiply", "[4611686018427387904, 4]", NULL, NULL, "Multiply: the integers overflow"},
    {"errand.Sum", "[9223372036854775807, 1]", NULL, NULL, "Sum: the integers overflow"},
    {"errand.Max", "[3, 9, 2]", NULL, "9", NULL},
    {"errand.Min", "[3, 9, 2.5]", NULL, "2.5", NULL},
    {"errand.Max", "[]", NULL, NULL, "Max needs at least one value"},
    {"errand.Max", "[9007199254740993, 9007199254740992]", NULL, "9007199254740993", NULL},
    {"errand.Max", "[3, 2.5]", NULL, "3", NULL},
    {"errand.Negate", "[5]", NULL, "-5", NULL},
    {"errand.Negate", "[5, -2.5]", NULL, "[-5, 2.5]", NULL},
    {"errand.Negate", "[-9223372036854775808]", NULL, "9223372036854775808.0", NULL},
    {"errand.All", "[1, true, \"x\"]", NULL, "true", NULL},
    {"errand.All", "[1, 0]", NULL, "false", NULL},
    {"errand.Any", "[0, \"\", []]", NULL, "false", NULL},
    {"errand.Any", "[0, {\"a\": 1}]", NULL, "true", NULL},
    {"errand.Complement", "[0]", NULL, "true", NULL},
    {"errand.Complement", "[0, 1]", NULL, "[true, false]", NULL},
    {"errand.AbortIfTrue", "[false, \"no\"]", NULL, "null", NULL},
    {"errand.AbortIfTrue", "[1, \"stop here\"]", NULL, NULL, "stop here"},
    {"errand.Append", "[[1], 2]", NULL, "[[1], 2]", NULL},
    {"errand.Extend", "[[1, 2], [2, 3]]", NULL, "[1, 2, 2, 3]", NULL},
    {"errand.Extend", "[[1], 2]", NULL, NULL, "Extend: argument 1 is not a list"},
    {"errand.Concat", "[\"ab\", \"\", \"c\"]", NULL, "\"abc\"", NULL},
    {"errand.Union", "[[1, 2], [2, 3, 1]]", NULL, "[1, 2, 3]", NULL},
    {"errand.Intersection", "[[3, 1, 2], [2, 3], [3, 2, 9]]", NULL, "[3, 2]", NULL},
    {"errand.Intersection", "[]", NULL, "[]", NULL},
    {"errand.Uniquify", "[1, {\"a\": 1}, 1, {\"a\": 1}]", NULL, "[1, {\"a\": 1}]", NULL},
    {"errand.Format", "[\"tuple\", \"%s is %s%%\", \"x\", 5]", NULL, "\"x is 5%\"", NULL},
    {"errand.Format", "[\"dict\", \"%(who)s: %(n)s\"]", "{\"who\": \"w\", \"n\": [1]}",
     "\"w: [1]\"", NULL},
    {"errand.Format", "[\"tuple\", \"%s %s\", 1]", NULL, NULL, "more %s than values"},
    {"errand.Log", "[\"debug\", \"logged %s\", 1]", NULL, "null", NULL},
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
