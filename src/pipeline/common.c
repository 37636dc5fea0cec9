/* Built-in pipelines, as App Engine's pipeline.common has them and by its
 * names (Return, Sum, ...): values and numbers here, lists and text in
 * common_text.c, the async ones (Delay, Approval) in common_async.c. Each
 * takes its values as args (slot references resolved), like any stage.
 * Truth is Python's: false, null, 0, "", [] and {} are false. */
#include "pipeline/pipe_internal.h"

bool er__pipe_truthy(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_TRUE: return true;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_OBJECT: return json_object_size(v) > 0;
    default: return false;
  }
}

static json_t *ret(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *v = json_array_get(args, 0);
  return v ? json_incref(v) : NULL;
}

static json_t *ignore(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) { return NULL; }
static json_t *list(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) { return json_copy(args); }
static json_t *dict(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) { return json_copy(kwargs); }

/* Sum or product of the numbers of args: integers stay integers (an
 * overflow aborts), any real makes the result real. [] gives 0 or 1. */
static json_t *fold(er_pipe_ctx_t *ctx, json_t *args, bool mul, const char *name) {
  json_int_t iacc = mul ? 1 : 0;
  double dacc = (double)iacc;
  bool real = false, over = false;
  size_t i;
  json_t *v;
  json_array_foreach(args, i, v) {
    if (!json_is_number(v)) return er_pipe_abort(ctx, "%s: argument %zu is not a number", name, i);
    real = real || json_is_real(v);
    json_int_t n = json_integer_value(v);
    if (mul) {
      dacc *= json_number_value(v);
      over |= __builtin_mul_overflow(iacc, n, &iacc);
    } else {
      dacc += json_number_value(v);
      over |= __builtin_add_overflow(iacc, n, &iacc);
    }
  }
  if (over && !real) return er_pipe_abort(ctx, "%s: the integers overflow", name);
  return real ? json_real(dacc) : json_integer(iacc);
}

/* a < b, integers compared as integers (exact past 2^53). */
static bool less(const json_t *a, const json_t *b) {
  if (json_is_integer(a) && json_is_integer(b))
    return json_integer_value(a) < json_integer_value(b);
  return json_number_value(a) < json_number_value(b);
}

/* The largest (or smallest) of the numbers, as it was given (Python's max). */
static json_t *extreme(er_pipe_ctx_t *ctx, json_t *args, bool max, const char *name) {
  json_t *best = NULL, *v;
  size_t i;
  json_array_foreach(args, i, v) {
    if (!json_is_number(v)) return er_pipe_abort(ctx, "%s: argument %zu is not a number", name, i);
    if (!best || (max ? less(best, v) : less(v, best))) best = v;
  }
  if (!best) return er_pipe_abort(ctx, "%s needs at least one value", name);
  return json_incref(best);
}

static json_t *sum(er_pipe_ctx_t *c, json_t *a, json_t *k) { return fold(c, a, false, "Sum"); }
static json_t *mul(er_pipe_ctx_t *c, json_t *a, json_t *k) { return fold(c, a, true, "Multiply"); }
static json_t *max(er_pipe_ctx_t *c, json_t *a, json_t *k) { return extreme(c, a, true, "Max"); }
static json_t *min(er_pipe_ctx_t *c, json_t *a, json_t *k) { return extreme(c, a, false, "Min"); }

/* One argument: f of it; several: the list of f of each. */
static json_t *each(er_pipe_ctx_t *ctx, json_t *args, json_t *(*f)(const json_t *),
                    const char *name) {
  json_t *out = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(args, i, v) {
    json_t *r = f(v);
    if (!r) {
      json_decref(out);
      return er_pipe_abort(ctx, "%s: argument %zu is not a number", name, i);
    }
    json_array_append_new(out, r);
  }
  if (json_array_size(out) != 1) return out;
  json_t *one = json_incref(json_array_get(out, 0));
  json_decref(out);
  return one;
}

static json_t *neg1(const json_t *v) {
  json_int_t n = json_integer_value(v);
  /* -INT64_MIN is no integer: a real then, as close as it gets */
  if (json_is_integer(v)) return n == INT64_MIN ? json_real(-(double)n) : json_integer(-n);
  return json_is_real(v) ? json_real(-json_real_value(v)) : NULL;
}
static json_t *not1(const json_t *v) { return json_boolean(!er__pipe_truthy(v)); }

static json_t *negate(er_pipe_ctx_t *c, json_t *a, json_t *k) { return each(c, a, neg1, "Negate"); }
static json_t *complement(er_pipe_ctx_t *c, json_t *a, json_t *k) {
  return each(c, a, not1, "Complement");
}

static json_t *all_any(json_t *args, bool all) {
  size_t i;
  json_t *v;
  json_array_foreach(args, i, v) if (er__pipe_truthy(v) != all) return json_boolean(!all);
  return json_boolean(all);
}
static json_t *all(er_pipe_ctx_t *c, json_t *a, json_t *k) { return all_any(a, true); }
static json_t *any(er_pipe_ctx_t *c, json_t *a, json_t *k) { return all_any(a, false); }

/* [value, message]: aborts the tree with message when value is true. */
static json_t *abort_if_true(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  if (!er__pipe_truthy(json_array_get(args, 0))) return NULL;
  const char *msg = json_string_value(json_array_get(args, 1));
  return er_pipe_abort(ctx, "%s", msg ? msg : "AbortIfTrue");
}

static const er_pipeline_def_t g_defs[] = {
    {.name = "Return", .run = ret},
    {.name = "Ignore", .run = ignore},
    {.name = "List", .run = list},
    {.name = "Dict", .run = dict},
    {.name = "Sum", .run = sum},
    {.name = "Multiply", .run = mul},
    {.name = "Max", .run = max},
    {.name = "Min", .run = min},
    {.name = "Negate", .run = negate},
    {.name = "All", .run = all},
    {.name = "Any", .run = any},
    {.name = "Complement", .run = complement},
    {.name = "AbortIfTrue", .run = abort_if_true},
    {0},
};

static bool in(const er_pipeline_def_t *defs, const er_pipeline_def_t *def) {
  for (const er_pipeline_def_t *d = defs; d->name; d++)
    if (d == def) return true;
  return false;
}

bool er__pipe_builtin(const er_pipeline_def_t *def) {
  return in(g_defs, def) || in(er__pipe_builtins_text, def) || in(er__pipe_builtins_async, def);
}

void er__pipe_builtins_register(void) {
  for (const er_pipeline_def_t *d = g_defs; d->name; d++) er__pipe_register_raw(d);
  for (const er_pipeline_def_t *d = er__pipe_builtins_text; d->name; d++) er__pipe_register_raw(d);
  for (const er_pipeline_def_t *d = er__pipe_builtins_async; d->name; d++) er__pipe_register_raw(d);
}
