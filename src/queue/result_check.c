/* Judging a task's result before anything encodes it. jansson encodes,
 * decodes and frees by recursion, one call per level: a result nested
 * 100,000 deep overflows whatever stack touches it (a prefork child's, a
 * thread's, a tasklet's 64 KiB), so it is judged by the walk that keeps its
 * stack on the heap (core/json_walk.h), and a refused one freed the same
 * way (er__json_free_deep). */
#include "queue/result_check.h"

#include <stdint.h>
#include <stdio.h>

#include "core/json_walk.h"
#include "errand/common.h"

size_t er__result_limit(size_t opt_bytes, size_t store_max_payload) {
  if (opt_bytes) return opt_bytes;
  return store_max_payload > ER__RESULT_DEFAULT_BYTES ? store_max_payload
                                                      : ER__RESULT_DEFAULT_BYTES;
}

typedef struct size_count {
  size_t size, cap;
  char *why;
  size_t why_size;
} size_count_t;

/* Adds each piece's compact JSON bytes; stops past cap, or at a string or
 * key no store could keep. */
static int count(const er__walk_t *w, const er__walk_event_t *e, void *ud) {
  size_count_t *c = ud;
  const char *bad = e->kind != ER__WALK_LEAVE ? er__json_unstorable(e) : NULL;
  if (bad) {
    /* Refused here in every pool: the store could not encode it (the
     * worker would retry the write for ever) or read it back. */
    char where[160];
    er__walk_path(w, "result", where, sizeof where);
    snprintf(c->why, c->why_size, "result cannot be stored as JSON: %s: %s", where, bad);
    return ER_EPARSE;
  }
  switch (e->kind) {
    case ER__WALK_LEAVE: return 0;
    case ER__WALK_KEY:
      c->size += e->index > 0; /* , */
      c->size += er__json_string_text(e->key, e->key_len, NULL, 0) + 1; /* "key": */
      return 0;
    case ER__WALK_ENTER:
      if (e->depth > ER__RESULT_MAX_DEPTH) return ER_ETOOBIG;
      c->size += 2; /* [] or {} */
      break;
    case ER__WALK_SCALAR: c->size += er__json_scalar_text(e->v, NULL, 0); break;
  }
  if (e->index > 0 && json_is_array(e->parent)) c->size += 1; /* , */
  /* Past cap "more than" is all the message says. Counting on through a
   * value that shares its parts could take forever. */
  return c->size > c->cap;
}

int er__result_check(const json_t *v, size_t limit, char *why, size_t why_size) {
  if (!limit) limit = ER__RESULT_DEFAULT_BYTES;
  size_count_t c = {.cap = limit > SIZE_MAX / 16 ? SIZE_MAX : limit * 16, .why = why,
                    .why_size = why_size};
  int rc = er__json_walk(v, count, &c);
  if (rc == ER_EPARSE) return rc;
  if (rc == ER_ETOOBIG) {
    snprintf(why, why_size, "result nested deeper than %d", ER__RESULT_MAX_DEPTH);
    return rc;
  }
  if (rc == ER_ENOMEM) {
    snprintf(why, why_size, "out of memory checking the result");
    return rc;
  }
  if (c.size > limit) {
    snprintf(why, why_size,
             "result too large: %s%zu bytes (limit %zu; set --max-result-size / "
             "opts.max_result_bytes)",
             c.size > c.cap ? "more than " : "", c.size > c.cap ? c.cap : c.size, limit);
    return ER_ETOOBIG;
  }
  return 0;
}
