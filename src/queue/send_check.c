/* What a send may carry. A task is stored as JSON text and read back by a
 * worker, so anything the encoder or a decoder refuses would sit in its queue
 * unreadable: invalid UTF-8 (jansson's *_nocheck setters let a caller build
 * it), a key with a NUL byte (the parser never accepts one), nesting past the
 * parser's depth limit. Those, and options that make no sense, are refused
 * here, before json_dumpb (which recurses) ever sees the value. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/json_walk.h"
#include "errand/common.h"
#include "queue/send_check.h"

#if defined(JSON_PARSER_MAX_DEPTH)
_Static_assert(ER_SEND_MAX_DEPTH <= JSON_PARSER_MAX_DEPTH,
               "a value the sender accepts must parse back");
#endif

/* ---- the walk ---------------------------------------------------------------- */

typedef struct check {
  size_t *used, max_payload;
  const char *where;
  char *why;
  size_t why_size;
} check_t;

static int fail(const er__walk_t *w, const check_t *c, int rc, const char *what) {
  char where[192];
  er__walk_path(w, c->where, where, sizeof where);
  snprintf(c->why, c->why_size, "%s: %s", where, what);
  return rc;
}

/* Counts each value's own bytes (a lower bound of its compact JSON) against
 * the payload limit and checks its strings and keys. */
static int visit(const er__walk_t *w, const er__walk_event_t *e, void *ud) {
  check_t *c = ud;
  if (e->kind == ER__WALK_LEAVE) return 0;
  /* jansson's parser counts every value's depth, a scalar's too: inside
   * 2,048 arrays even a 1 is past its limit. */
  if (e->kind != ER__WALK_KEY && e->depth > ER_SEND_MAX_DEPTH) {
    char what[64];
    snprintf(what, sizeof what, "nested deeper than %d", ER_SEND_MAX_DEPTH);
    return fail(w, c, ER_EINVAL, what);
  }
  const char *bad = er__json_unstorable(e);
  if (bad) return fail(w, c, ER_EINVAL, bad);
  if (e->kind == ER__WALK_KEY) {
    *c->used += e->key_len + 3; /* "k": and a comma, or the braces; judged with its value */
    return 0;
  }
  *c->used += 1 + (json_is_string(e->v) ? json_string_length(e->v) : 0);
  if (*c->used > c->max_payload) {
    char what[96];
    snprintf(what, sizeof what, "over the store's max_payload of %zu bytes", c->max_payload);
    return fail(w, c, ER_ETOOBIG, what);
  }
  return 0;
}

int er__send_check_json(const char *where, const json_t *v, size_t *used, size_t max_payload,
                        char *why, size_t why_size) {
  check_t c = {.used = used, .max_payload = max_payload, .where = where, .why = why,
               .why_size = why_size};
  return er__json_walk(v, visit, &c);
}

/* ---- strings and numbers ------------------------------------------------------ */

static int bad(char *why, size_t size, int rc, const char *fmt, ...) ER_PRINTF(4, 5);
static int bad(char *why, size_t size, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, size, fmt, ap);
  va_end(ap);
  return rc;
}

/* A name the store keeps as text: valid UTF-8, at most max bytes. */
static int check_name(const char *what, const char *s, size_t max, size_t *used, char *why,
                      size_t size) {
  if (!s) return 0;
  size_t n = strlen(s);
  if (n > max)
    return bad(why, size, ER_EINVAL, "%s: %zu bytes, over the limit of %zu", what, n, max);
  if (!er__utf8_ok(s, n)) return bad(why, size, ER_EINVAL, "%s: invalid UTF-8", what);
  *used += n;
  return 0;
}

static int check_numbers(const er_send_opts_t *o, int64_t now, char *why, size_t size) {
  if (o->countdown_ms < 0 || o->eta_ms < 0 || o->expires_ms < 0 || o->soft_limit_ms < 0 ||
      o->hard_limit_ms < 0)
    return bad(why, size, ER_EINVAL,
               "countdown_ms, eta_ms, expires_ms, soft_limit_ms and hard_limit_ms take 0 "
               "(unset) or a positive number of ms");
  if (o->result_ttl_ms < -1)
    return bad(why, size, ER_EINVAL, "result_ttl_ms %lld: give -1 (forever), 0 or more",
               (long long)o->result_ttl_ms);
  /* now + x must not wrap: a wrapped time is a task due long ago, or never. */
  if (o->countdown_ms > INT64_MAX - now || o->expires_ms > INT64_MAX - now)
    return bad(why, size, ER_EINVAL, "countdown_ms or expires_ms past the end of time");
  if (o->max_retries < ER_RETRIES_NONE)
    return bad(why, size, ER_EINVAL,
               "max_retries %d: give n >= 1, 0 for the task's default, or ER_RETRIES_NONE",
               o->max_retries);
  if (o->if_absent && !o->key) return bad(why, size, ER_EINVAL, "if_absent needs a key");
  return 0;
}

int er__send_check(const char *task, const json_t *args, const json_t *kwargs,
                   const er_send_opts_t *o, int64_t now, size_t max_payload, char *why,
                   size_t size) {
  static const er_send_opts_t none;
  if (!o) o = &none;
  if (!task || !*task) return bad(why, size, ER_EINVAL, "no task name");
  if (o->queue && !*o->queue) return bad(why, size, ER_EINVAL, "an empty queue name");
  if (args && !json_is_array(args)) return bad(why, size, ER_EINVAL, "args must be a JSON array");
  if (kwargs && !json_is_object(kwargs))
    return bad(why, size, ER_EINVAL, "kwargs must be a JSON object");
  if (o->context && !json_is_object(o->context))
    return bad(why, size, ER_EINVAL, "context must be a JSON object");
  int rc = check_numbers(o, now, why, size);
  size_t used = 0;
  if (!rc) rc = check_name("task", task, ER_SEND_MAX_NAME, &used, why, size);
  if (!rc) rc = check_name("queue", o->queue, ER_SEND_MAX_NAME, &used, why, size);
  if (!rc) rc = check_name("name", o->name, ER_SEND_MAX_KEY, &used, why, size);
  if (!rc) rc = check_name("key", o->key, ER_SEND_MAX_KEY, &used, why, size);
  if (!rc) rc = er__send_check_json("args", args, &used, max_payload, why, size);
  if (!rc) rc = er__send_check_json("kwargs", kwargs, &used, max_payload, why, size);
  if (!rc) rc = er__send_check_json("context", o->context, &used, max_payload, why, size);
  return rc;
}
