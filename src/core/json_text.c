/* A value's compact JSON text, counted or written a piece at a time, byte for
 * byte what jansson writes (json_dumps with JSON_COMPACT | JSON_ENCODE_ANY):
 * the result check counts it without encoding, the worker's log shows its
 * start without encoding the rest. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/json_walk.h"
#include "errand/common.h"

/* The longest prefix of s[0..n) made of whole, well-formed sequences. */
static size_t utf8_valid(const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p, *end = s + n;
  const unsigned char *at = s;
  while (at < end) {
    unsigned c = *at;
    size_t len;
    unsigned min;
    if (c < 0x80) {
      at++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else break;
    if ((size_t)(end - at) < len) break;
    unsigned cp = c & (0xFF >> (len + 1));
    size_t i = 1;
    for (; i < len && (at[i] & 0xC0) == 0x80; i++) cp = (cp << 6) | (at[i] & 0x3F);
    if (i < len || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) break;
    at += len;
  }
  return (size_t)(at - s);
}

bool er__utf8_ok(const char *s, size_t n) { return utf8_valid(s, n) == n; }

const char *er__json_unstorable(const er__walk_event_t *e) {
  if (e->kind == ER__WALK_KEY) {
    if (!er__utf8_ok(e->key, e->key_len)) return "invalid UTF-8 in a key";
    if (memchr(e->key, 0, e->key_len)) return "a key with a NUL byte";
  } else if (json_is_string(e->v) && !er__utf8_ok(json_string_value(e->v), json_string_length(e->v))) {
    return "invalid UTF-8";
  }
  return NULL;
}

size_t er__json_string_text(const char *s, size_t n, char *out, size_t room) {
  size_t at = 0;
#define PUT(ch)                           \
  do {                                    \
    if (out && at < room) out[at] = (ch); \
    at++;                                 \
  } while (0)
  PUT('"');
  for (size_t i = 0; i < n && !(out && at > room); i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = c == '"'    ? "\\\""
                      : c == '\\' ? "\\\\"
                      : c == '\b' ? "\\b"
                      : c == '\f' ? "\\f"
                      : c == '\n' ? "\\n"
                      : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t"
                                  : NULL;
    char u[8];
    if (!esc && c < 0x20) snprintf(u, sizeof u, "\\u%04X", c), esc = u;
    if (!esc) {
      PUT((char)c);
      continue;
    }
    for (const char *e = esc; *e; e++) PUT(*e);
  }
  PUT('"');
#undef PUT
  return at;
}

size_t er__json_scalar_text(const json_t *v, char *out, size_t room) {
  const char *word = NULL;
  switch (json_typeof(v)) {
    case JSON_STRING:
      return er__json_string_text(json_string_value(v), json_string_length(v), out, room);
    case JSON_TRUE: word = "true"; break;
    case JSON_FALSE: word = "false"; break;
    case JSON_NULL: word = "null"; break;
    default: break;
  }
  char buf[64]; /* a number: at most 24 bytes */
  size_t n = word ? strlen(word) : json_dumpb(v, buf, sizeof buf, JSON_ENCODE_ANY | JSON_COMPACT);
  if (out) memcpy(out, word ? word : buf, n < room ? n : room);
  return n;
}

/* ---- a preview ---- */

typedef struct preview {
  char *out;
  size_t room, at;
} preview_t;

/* Appends n bytes, the first of them already at p->out + p->at (written
 * there by the caller, cut to the room left); 1 once past the room. */
static int advance(preview_t *p, size_t n) {
  if (n > p->room - p->at) {
    p->at = p->room;
    return 1;
  }
  p->at += n;
  return 0;
}

static int put(preview_t *p, const char *s) {
  size_t n = strlen(s), left = p->room - p->at;
  memcpy(p->out + p->at, s, n < left ? n : left);
  return advance(p, n);
}

static int show(const er__walk_t *w, const er__walk_event_t *e, void *ud) {
  (void)w;
  preview_t *p = ud;
  /* A comma before every member but the first: an object's before its key. */
  if (e->index > 0 && e->kind != ER__WALK_LEAVE &&
      (e->kind == ER__WALK_KEY || json_is_array(e->parent)) && put(p, ","))
    return 1;
  size_t left = p->room - p->at;
  switch (e->kind) {
    case ER__WALK_ENTER: return put(p, json_is_array(e->v) ? "[" : "{");
    case ER__WALK_LEAVE: return put(p, json_is_array(e->v) ? "]" : "}");
    case ER__WALK_KEY:
      if (advance(p, er__json_string_text(e->key, e->key_len, p->out + p->at, left))) return 1;
      return put(p, ":");
    case ER__WALK_SCALAR:
      if (json_is_string(e->v)) {
        /* Only what is shown is looked at: a string's first `left` bytes,
         * and the rest of a sequence that starts among them. */
        size_t n = json_string_length(e->v), shown = n < left ? n : left;
        if (utf8_valid(json_string_value(e->v), shown + 3 < n ? shown + 3 : n) < shown)
          return ER_EINVAL;
      }
      return advance(p, er__json_scalar_text(e->v, p->out + p->at, left));
  }
  return 0;
}

int er__json_preview(const json_t *v, char *out, size_t size) {
  preview_t p = {.out = out, .room = size - 1};
  int rc = er__json_walk(v, show, &p);
  out[rc < 0 ? 0 : p.at] = 0;
  return rc;
}
