/* The one walk through a jansson value that everything judging or showing a
 * value without recursion is built on: the send check, the result check,
 * the result shown in the log. Its stack of open containers is on the heap;
 * what to do at each value is the visitor's. */
#include <stdio.h>
#include <string.h>

#include "core/json_walk.h"
#include "errand/common.h"

/* Tells fn about v, then opens it when it is a container. */
static int enter(er__walk_t *w, const json_t *v, size_t index, er__walk_fn fn, void *ud) {
  bool container = json_is_array(v) || json_is_object(v);
  er__walk_event_t e = {.kind = container ? ER__WALK_ENTER : ER__WALK_SCALAR,
                        .v = v,
                        .parent = w->n ? w->level[w->n - 1].v : NULL,
                        .index = index,
                        .depth = w->n + 1};
  int rc = fn(w, &e, ud);
  if (rc || !container) return rc;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    er__walk_level_t *l = er_realloc(w->level, cap * sizeof *l);
    if (!l) return ER_ENOMEM;
    w->level = l;
    w->cap = cap;
  }
  w->level[w->n++] = (er__walk_level_t){.v = v};
  return 0;
}

/* Moves the innermost open container to its next member: the member's value,
 * after its key is told for an object; NULL when there is none. */
static int next_member(er__walk_t *w, er__walk_fn fn, void *ud, const json_t **child) {
  er__walk_level_t *l = &w->level[w->n - 1];
  *child = NULL;
  if (json_is_array(l->v)) {
    if (l->i < json_array_size(l->v)) *child = json_array_get(l->v, l->i++);
    return 0;
  }
  l->it = l->i ? json_object_iter_next((json_t *)l->v, l->it) : json_object_iter((json_t *)l->v);
  if (!l->it) return 0;
  *child = json_object_iter_value(l->it);
  er__walk_event_t e = {.kind = ER__WALK_KEY,
                        .v = *child,
                        .parent = l->v,
                        .index = l->i++,
                        .depth = w->n + 1,
                        .key = json_object_iter_key(l->it),
                        .key_len = json_object_iter_key_len(l->it)};
  return fn(w, &e, ud);
}

int er__json_walk(const json_t *v, er__walk_fn fn, void *ud) {
  er__walk_t w = {0};
  int rc = v ? enter(&w, v, 0, fn, ud) : 0;
  while (rc == 0 && w.n) {
    const json_t *child;
    rc = next_member(&w, fn, ud, &child);
    if (rc) break;
    if (child) {
      rc = enter(&w, child, w.level[w.n - 1].i - 1, fn, ud);
      continue;
    }
    const er__walk_level_t done = w.level[--w.n];
    er__walk_event_t e = {.kind = ER__WALK_LEAVE,
                          .v = done.v,
                          .parent = w.n ? w.level[w.n - 1].v : NULL,
                          .index = w.n ? w.level[w.n - 1].i - 1 : 0,
                          .depth = w.n + 1};
    rc = fn(&w, &e, ud);
  }
  er_free(w.level);
  return rc;
}

/* ---- where: "kwargs.x[3]" ---- */

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

static size_t put_level(const er__walk_level_t *l, char *out, size_t size, size_t at) {
  if (at + 1 >= size) return at;
  if (json_is_array(l->v)) {
    int k = snprintf(out + at, size - at, "[%zu]", l->i - 1);
    return k > 0 ? at + (size_t)k : at;
  }
  out[at++] = '.';
  out[at] = 0;
  return put_escaped(out, size, at, json_object_iter_key(l->it), json_object_iter_key_len(l->it));
}

/* A path 2,000 levels deep is no help on one line: its first levels and its
 * last say where. */
void er__walk_path(const er__walk_t *w, const char *root, char *out, size_t size) {
  size_t at = (size_t)snprintf(out, size, "%s", root);
  if (at >= size) return;
  for (size_t k = 0; k < w->n; k++) {
    if (w->n > 10 && k == 6) {
      at += (size_t)snprintf(out + at, size - at, "...");
      k = w->n - 3;
      continue;
    }
    at = put_level(&w->level[k], out, size, at);
    if (at >= size) return;
  }
  out[at < size ? at : size - 1] = 0;
}

/* ---- freeing ---- */

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
