/* What a send may carry. A task is stored as JSON text and read back by a
 * worker, so anything the encoder or a decoder refuses would sit in its queue
 * unreadable: invalid UTF-8 (jansson's *_nocheck setters let a caller build
 * it), a key with a NUL byte (the parser never accepts one), nesting past the
 * parser's depth limit. Those, and options that make no sense, are refused
 * here, before json_dumpb (which recurses) ever sees the value. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errand/common.h"
#include "queue/send_check.h"

#if defined(JSON_PARSER_MAX_DEPTH)
_Static_assert(ER_SEND_MAX_DEPTH <= JSON_PARSER_MAX_DEPTH,
               "a value the sender accepts must parse back");
#endif

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
 * U+10FFFF. NUL bytes are allowed (JSON's \u0000); callers that cannot carry
 * them check for them. */
static bool utf8_ok(const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p, *end = s + n;
  while (s < end) {
    unsigned c = *s;
    size_t len;
    unsigned min;
    if (c < 0x80) {
      s++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return false;
    if ((size_t)(end - s) < len) return false;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
      if ((s[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    s += len;
  }
  return true;
}

/* ---- where: "kwargs.x[3]" ------------------------------------------------ */

/* One level of the walk: the container and the child being looked at. */
typedef struct frame {
  const json_t *v;
  size_t i;   /* array: the child's index + 1 */
  void *it;   /* object: the child's iterator, NULL before the first */
} frame_t;

typedef struct walk {
  frame_t *st;
  size_t n, cap;
  size_t *used, max_payload;
  const char *where;
  char *why;
  size_t why_size;
} walk_t;

/* Appends s[0..n) to out, bytes other than printable ASCII as \xNN (a key may
 * hold a newline or the invalid bytes being reported), at most 32 of them. */
static size_t put_escaped(char *out, size_t size, size_t at, const char *s, size_t n) {
  for (size_t i = 0; i < n && i < 32 && at + 5 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7F && c != '\\') out[at++] = (char)c;
    else at += (size_t)snprintf(out + at, size - at, "\\x%02X", c);
  }
  if (n > 32 && at + 4 < size) at += (size_t)snprintf(out + at, size - at, "...");
  return at;
}

static size_t put_level(const frame_t *f, char *out, size_t size, size_t at) {
  if (at + 1 >= size) return at;
  if (json_is_array(f->v)) {
    int k = snprintf(out + at, size - at, "[%zu]", f->i - 1);
    return k > 0 ? at + (size_t)k : at;
  }
  out[at++] = '.';
  out[at] = 0;
  return put_escaped(out, size, at, json_object_iter_key(f->it), json_object_iter_key_len(f->it));
}

/* The path to the value being looked at: the first levels and the last two
 * when it is long (a path 2,000 levels deep is no help on one line). */
static void path(const walk_t *w, char *out, size_t size) {
  size_t at = (size_t)snprintf(out, size, "%s", w->where);
  if (at >= size) return;
  for (size_t k = 0; k < w->n; k++) {
    if (w->n > 10 && k == 6) {
      at += (size_t)snprintf(out + at, size - at, "...");
      k = w->n - 3;
      continue;
    }
    at = put_level(&w->st[k], out, size, at);
    if (at >= size) return;
  }
  out[at < size ? at : size - 1] = 0;
}

static int fail(const walk_t *w, int rc, const char *what) {
  char where[192];
  path(w, where, sizeof where);
  snprintf(w->why, w->why_size, "%s: %s", where, what);
  return rc;
}

/* ---- the walk ---------------------------------------------------------------- */

/* Counts v's own bytes (a lower bound of its compact JSON) against the
 * payload limit and checks its string; a container is pushed. */
static int visit(walk_t *w, const json_t *v) {
  /* jansson's parser counts every value's depth, a scalar's too: inside
   * 2,048 arrays even a 1 is past its limit. */
  if (w->n >= ER_SEND_MAX_DEPTH) {
    char what[64];
    snprintf(what, sizeof what, "nested deeper than %d", ER_SEND_MAX_DEPTH);
    return fail(w, ER_EINVAL, what);
  }
  size_t own = 1;
  if (json_is_string(v)) {
    size_t n = json_string_length(v);
    if (!utf8_ok(json_string_value(v), n)) return fail(w, ER_EINVAL, "invalid UTF-8");
    own += n;
  }
  *w->used += own;
  if (*w->used > w->max_payload) {
    char what[96];
    snprintf(what, sizeof what, "over the store's max_payload of %zu bytes", w->max_payload);
    return fail(w, ER_ETOOBIG, what);
  }
  if (!json_is_array(v) && !json_is_object(v)) return 0;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    frame_t *st = er_realloc(w->st, cap * sizeof *st);
    if (!st) return ER_ENOMEM;
    w->st = st;
    w->cap = cap;
  }
  w->st[w->n++] = (frame_t){.v = v};
  return 0;
}

/* Moves the top frame to its next child: that child, or NULL when done (the
 * frame is then popped). A key is checked as the walk reaches it. */
static int next_child(walk_t *w, const json_t **child) {
  frame_t *f = &w->st[w->n - 1];
  *child = NULL;
  if (json_is_array(f->v)) {
    if (f->i < json_array_size(f->v)) *child = json_array_get(f->v, f->i++);
  } else {
    f->it = f->it ? json_object_iter_next((json_t *)f->v, f->it)
                  : json_object_iter((json_t *)f->v);
    if (f->it) {
      const char *k = json_object_iter_key(f->it);
      size_t kn = json_object_iter_key_len(f->it);
      if (!utf8_ok(k, kn)) return fail(w, ER_EINVAL, "invalid UTF-8 in a key");
      if (memchr(k, 0, kn)) return fail(w, ER_EINVAL, "a key with a NUL byte");
      *w->used += kn + 3; /* "k": and a comma, or the braces */
      *child = json_object_iter_value(f->it);
    }
  }
  if (!*child) w->n--;
  return 0;
}

int er__send_check_json(const char *where, const json_t *v, size_t *used, size_t max_payload,
                        char *why, size_t why_size) {
  if (!v) return 0;
  walk_t w = {.used = used, .max_payload = max_payload, .where = where, .why = why,
              .why_size = why_size};
  int rc = visit(&w, v);
  while (rc == 0 && w.n) {
    const json_t *child;
    rc = next_child(&w, &child);
    if (rc == 0 && child) rc = visit(&w, child);
  }
  er_free(w.st);
  return rc;
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
  if (!utf8_ok(s, n)) return bad(why, size, ER_EINVAL, "%s: invalid UTF-8", what);
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
