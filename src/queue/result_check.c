/* Judging a task's result before anything encodes it, and freeing one that
 * is refused. jansson encodes, decodes and frees by recursion, one call per
 * level: a result nested 100,000 deep overflows whatever stack touches it
 * (a prefork child's, a thread's, a tasklet's 64 KiB), so both walks here
 * keep their own stack on the heap. */
#include "queue/result_check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errand/common.h"

size_t er__result_limit(size_t opt_bytes, size_t store_max_payload) {
  if (opt_bytes) return opt_bytes;
  return store_max_payload > ER__RESULT_DEFAULT_BYTES ? store_max_payload
                                                      : ER__RESULT_DEFAULT_BYTES;
}

/* Bytes of s as a JSON string, quotes included, as jansson writes it
 * without JSON_ENSURE_ASCII: \" \\ \b \f \n \r \t take two, other control
 * characters six (\u00XX). */
static size_t string_size(const char *s, size_t n) {
  size_t size = 2 + n;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' ||
        ch == '\t')
      size += 1;
    else if (ch < 0x20)
      size += 5;
  }
  return size;
}

/* Bytes of a scalar as compact JSON. */
static size_t scalar_size(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_STRING: return string_size(json_string_value(v), json_string_length(v));
    case JSON_TRUE:
    case JSON_NULL: return 4;
    case JSON_FALSE: return 5;
    default: {
      char buf[64];
      return json_dumpb(v, buf, sizeof buf, JSON_ENCODE_ANY | JSON_COMPACT);
    }
  }
}

typedef struct frame {
  const json_t *v;
  size_t i;  /* arrays: the next index */
  void *it;  /* objects: the next member */
} frame_t;

int er__result_check(const json_t *v, size_t limit, char *why, size_t why_size) {
  if (!limit) limit = ER__RESULT_DEFAULT_BYTES;
  /* Past this the walk stops: "more than" is all the message says. Counting
   * on through a value that shares its parts could take forever. */
  size_t cap = limit > SIZE_MAX / 16 ? SIZE_MAX : limit * 16;
  size_t size = 0;
  int rc = 0;
  frame_t *stack = NULL;
  size_t sp = 0;
  const json_t *next = v; /* a value to enter */
  for (;;) {
    if (next) {
      if (json_is_array(next) || json_is_object(next)) {
        if (sp == ER__RESULT_MAX_DEPTH) {
          snprintf(why, why_size, "result nested deeper than %d", ER__RESULT_MAX_DEPTH);
          rc = ER_ETOOBIG;
          break;
        }
        if (!stack && !(stack = er_malloc(ER__RESULT_MAX_DEPTH * sizeof *stack))) {
          snprintf(why, why_size, "out of memory checking the result");
          rc = ER_ENOMEM;
          break;
        }
        void *it = json_is_object(next) ? json_object_iter((json_t *)next) : NULL;
        stack[sp++] = (frame_t){next, 0, it};
        size += 2; /* [] or {} */
      } else {
        size += scalar_size(next);
      }
      next = NULL;
      if (size > cap) break;
    }
    if (!sp) break;
    frame_t *f = &stack[sp - 1];
    if (json_is_array(f->v)) {
      if (f->i < json_array_size(f->v)) {
        size += f->i > 0; /* , */
        next = json_array_get(f->v, f->i++);
        continue;
      }
    } else if (f->it) {
      size += f->i++ > 0; /* , */
      size += string_size(json_object_iter_key(f->it), json_object_iter_key_len(f->it)) + 1;
      next = json_object_iter_value(f->it);
      f->it = json_object_iter_next((json_t *)f->v, f->it);
      continue;
    }
    sp--;
  }
  er_free(stack);
  if (rc == 0 && size > limit) {
    snprintf(why, why_size,
             "result too large: %s%zu bytes (limit %zu; set --max-result-size / "
             "opts.max_result_bytes)",
             size > cap ? "more than " : "", size > cap ? cap : size, limit);
    rc = ER_ETOOBIG;
  }
  return rc;
}

void er__json_free_deep(json_t *v) {
  json_t **todo = NULL;
  size_t n = 0, cap = 0;
  while (v) {
    /* Shared, or a scalar: not ours to take apart. An empty container frees
     * without recursion. Otherwise its members are held here, it is
     * emptied (their count drops back to ours) and freed. */
    bool container = json_is_array(v) || json_is_object(v);
    if (v->refcount > 1 || !container) {
      json_decref(v);
    } else {
      size_t add = json_is_array(v) ? json_array_size(v) : json_object_size(v);
      if (n + add > cap) {
        size_t want = cap ? cap : 64;
        while (want < n + add) want *= 2;
        json_t **t = er_realloc(todo, want * sizeof *t);
        if (!t) {
          json_decref(v); /* out of memory: jansson's way, and hope */
          v = n ? todo[--n] : NULL;
          continue;
        }
        todo = t;
        cap = want;
      }
      if (json_is_array(v)) {
        for (size_t i = 0; i < add; i++) todo[n++] = json_incref(json_array_get(v, i));
        json_array_clear(v);
      } else {
        const char *key;
        json_t *m;
        json_object_foreach(v, key, m) todo[n++] = json_incref(m);
        json_object_clear(v);
      }
      json_decref(v);
    }
    v = n ? todo[--n] : NULL;
  }
  er_free(todo);
}
