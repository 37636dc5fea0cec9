/* Built-in pipelines on lists and text (App Engine's pipeline.common):
 * Append, Extend, Concat, Union, Intersection, Uniquify, Format, Log. Lists
 * keep the order in which values first appear; values compare as JSON. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

static bool has(const json_t *list, const json_t *v) {
  size_t i;
  json_t *x;
  json_array_foreach(list, i, x) if (json_equal(x, v)) return true;
  return false;
}

/* The elements of each argument, which must be lists, or NULL. */
static json_t *lists(er_pipe_ctx_t *ctx, json_t *args, const char *name, bool unique) {
  json_t *out = json_array();
  size_t i, j;
  json_t *l, *v;
  json_array_foreach(args, i, l) {
    if (!json_is_array(l)) {
      json_decref(out);
      return er_pipe_abort(ctx, "%s: argument %zu is not a list", name, i);
    }
    json_array_foreach(l, j, v) if (!unique || !has(out, v)) json_array_append(out, v);
  }
  return out;
}

static json_t *append(er_pipe_ctx_t *c, json_t *a, json_t *k) { return json_copy(a); }
static json_t *extend(er_pipe_ctx_t *c, json_t *a, json_t *k) {
  return lists(c, a, "Extend", false);
}
static json_t *union_(er_pipe_ctx_t *c, json_t *a, json_t *k) {
  return lists(c, a, "Union", true);
}

/* The values found in every list, in the first list's order. */
static json_t *intersection(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *seen = lists(ctx, args, "Intersection", true);
  if (!seen) return NULL;
  json_t *keep = json_array();
  size_t i, j;
  json_t *l, *v;
  json_array_foreach(seen, j, v) {
    bool everywhere = true;
    json_array_foreach(args, i, l) everywhere = everywhere && has(l, v);
    if (everywhere) json_array_append(keep, v);
  }
  json_decref(seen);
  return keep;
}

static json_t *uniquify(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *out = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(args, i, v) if (!has(out, v)) json_array_append(out, v);
  return out;
}

static json_t *concat(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  size_t i, n = 0;
  json_t *v;
  json_array_foreach(args, i, v) {
    if (!json_is_string(v)) return er_pipe_abort(ctx, "Concat: argument %zu is not a string", i);
    n += json_string_length(v);
  }
  char *buf = er_malloc(n + 1);
  if (!buf) return er_pipe_retry(ctx, "Concat: out of memory");
  n = 0;
  json_array_foreach(args, i, v) {
    memcpy(buf + n, json_string_value(v), json_string_length(v));
    n += json_string_length(v);
  }
  json_t *out = json_stringn(buf, n);
  er_free(buf);
  return out;
}

/* v as text: a string as it is, anything else as compact JSON (new). */
static char *text_of(const json_t *v) {
  if (json_is_string(v)) return er_strdup(json_string_value(v));
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), *out = s ? er_strdup(s) : NULL;
  free(s);
  return out;
}

/* message with each "%s" replaced by the next of params (an array), or
 * each "%(name)s" by params[name] (an object); "%%" is "%". NULL with why
 * in err. */
static char *format(const char *message, const json_t *params, char *err, size_t err_size) {
  size_t cap = strlen(message) + 64, n = 0, next = 0;
  char *out = er_malloc(cap);
  for (const char *p = message; out && *p; p++) {
    char *piece = NULL;
    const char *lit = p;
    size_t len = 1;
    if (p[0] == '%' && p[1] == '%') {
      p++;
    } else if (p[0] == '%' && p[1] == 's' && json_is_array(params)) {
      if (next >= json_array_size(params)) {
        snprintf(err, err_size, "more %%s than values");
        goto fail;
      }
      piece = text_of(json_array_get(params, next++));
      p++;
    } else if (p[0] == '%' && p[1] == '(' && json_is_object(params)) {
      const char *close = strstr(p, ")s");
      if (!close) {
        snprintf(err, err_size, "'%%(' without ')s'");
        goto fail;
      }
      char key[256];
      snprintf(key, sizeof key, "%.*s", (int)(close - p - 2), p + 2);
      json_t *v = json_object_get(params, key);
      if (!v) {
        snprintf(err, err_size, "no value named '%.64s'", key);
        goto fail;
      }
      piece = text_of(v);
      p = close + 1;
    }
    if (piece) {
      lit = piece;
      len = strlen(piece);
    }
    if (n + len + 1 > cap) {
      cap = (n + len + 1) * 2;
      char *grown = er_realloc(out, cap);
      if (!grown) {
        er_free(piece);
        goto fail;
      }
      out = grown;
    }
    memcpy(out + n, lit, len);
    n += len;
    er_free(piece);
  }
  if (out) out[n] = 0;
  return out;
fail:
  er_free(out);
  return NULL;
}

/* ["tuple", message, values...] or ["dict", message] with kwargs. */
static json_t *format_(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  const char *type = json_string_value(json_array_get(args, 0));
  const char *message = json_string_value(json_array_get(args, 1));
  bool dict = type && strcmp(type, "dict") == 0;
  if (!type || (!dict && strcmp(type, "tuple") != 0) || !message)
    return er_pipe_abort(ctx, "Format takes [\"tuple\"|\"dict\", message, values...]");
  json_t *params = dict ? json_incref(kwargs) : json_array();
  for (size_t i = 2; !dict && i < json_array_size(args); i++)
    json_array_append(params, json_array_get(args, i));
  char err[128] = "";
  char *s = format(message, params, err, sizeof err);
  json_decref(params);
  if (!s) return er_pipe_abort(ctx, "Format: %s", err[0] ? err : "out of memory");
  json_t *out = json_string(s);
  er_free(s);
  return out;
}

/* [level, message, values...]: level a name ("info") or Python's number. */
static json_t *log_(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *lv = json_array_get(args, 0);
  const char *message = json_string_value(json_array_get(args, 1));
  if (!message) return er_pipe_abort(ctx, "Log takes [level, message, values...]");
  er_log_level_t level = ER_LOG_INFO;
  const char *name = json_string_value(lv);
  json_int_t py = json_integer_value(lv);
  if (name) {
    for (int l = ER_LOG_ERROR; l <= ER_LOG_TRACE; l++)
      if (strcmp(name, er_log_level_name((er_log_level_t)l)) == 0) level = (er_log_level_t)l;
  } else if (py) {
    level = py >= 40 ? ER_LOG_ERROR : py >= 30 ? ER_LOG_WARN : py >= 20 ? ER_LOG_INFO
                                                                        : ER_LOG_DEBUG;
  }
  json_t *params = json_array();
  for (size_t i = 2; i < json_array_size(args); i++)
    json_array_append(params, json_array_get(args, i));
  char err[128] = "";
  char *s = format(message, params, err, sizeof err);
  json_decref(params);
  er_log(level, "pipeline %s: %s", er_pipe_id(ctx), s ? s : message);
  er_free(s);
  return NULL;
}

const er_pipeline_def_t er__pipe_builtins_text[] = {
    {.name = "Append", .run = append},
    {.name = "Extend", .run = extend},
    {.name = "Concat", .run = concat},
    {.name = "Union", .run = union_},
    {.name = "Intersection", .run = intersection},
    {.name = "Uniquify", .run = uniquify},
    {.name = "Format", .run = format_},
    {.name = "Log", .run = log_},
    {0},
};
