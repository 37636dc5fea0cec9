/* Looking through a jansson value without recursion (json_walk.c), and its
 * compact JSON text, written or counted a piece at a time (json_text.c).
 * jansson encodes, decodes, copies and frees by recursion, one call per
 * level: a value nested a few thousand deep overflows a tasklet's 64 KiB
 * stack, one nested 100,000 deep any stack. Everything here keeps its stack
 * on the heap, so it is safe on any stack, for any depth. */
#ifndef ER_CORE_JSON_WALK_H
#define ER_CORE_JSON_WALK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- the walk ---- */

typedef enum er__walk_kind {
  ER__WALK_ENTER,  /* an array or object, before its members */
  ER__WALK_LEAVE,  /* the same, after them */
  ER__WALK_KEY,    /* an object member's key, before its value */
  ER__WALK_SCALAR, /* a string, number, true, false or null */
} er__walk_kind_t;

typedef struct er__walk_event {
  er__walk_kind_t kind;
  const json_t *v;      /* the value; for KEY, the member's value (entered next) */
  const json_t *parent; /* the array or object v is in; NULL for the root */
  size_t index;         /* v's place in parent: array index or member number, from 0 */
  size_t depth;         /* v's level, every value counted as jansson's parser counts:
                           the root is 1, a number inside two arrays is 3 */
  const char *key;      /* KEY: the key and its length (it may hold NUL bytes) */
  size_t key_len;
} er__walk_event_t;

/* One open array or object, and its member being looked at. */
typedef struct er__walk_level {
  const json_t *v;
  size_t i; /* members begun: the current one is i - 1 */
  void *it; /* objects: the current member */
} er__walk_level_t;

/* The walk's state, handed to the visitor (for er__walk_path). */
typedef struct er__walk {
  er__walk_level_t *level; /* the open containers, the root first */
  size_t n, cap;
} er__walk_t;

/* 0 to go on; anything else stops the walk, which returns it. */
typedef int (*er__walk_fn)(const er__walk_t *w, const er__walk_event_t *e, void *ud);

/* Calls fn on every value of v in document order (members of an object in
 * jansson's iteration order, which is the order json_dumps writes them):
 * ENTER, then the members (a KEY before each object member's value), then
 * LEAVE for a container; SCALAR for the rest. A value that shares its parts
 * is walked through each of them. Returns 0 when the walk ends (v NULL: at
 * once), what fn returned when it stops it, or ER_ENOMEM (fn is not told).
 * Never recursive; its stack grows by 24 bytes a level. */
int er__json_walk(const json_t *v, er__walk_fn fn, void *ud);

/* Writes where the walk is into out (NUL-terminated, cut to size): root,
 * then ".key" or "[i]" per level ("kwargs.x[3]"), keys as printable ASCII
 * with other bytes as \xNN, at most 32 bytes of each; past 10 levels the
 * first 6 and the last 2 with "..." between. Called from fn: the value the
 * event is about (for KEY, its key) is the last level. */
void er__walk_path(const er__walk_t *w, const char *root, char *out, size_t size);

/* json_decref without recursion: frees a value nested any depth on any
 * stack. A part another reference still holds is only released. Accepts
 * NULL. */
void er__json_free_deep(json_t *v);

/* ---- the text (json_text.c) ---- */

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF. NUL bytes are allowed (JSON's \u0000). */
bool er__utf8_ok(const char *s, size_t n);

/* What keeps the event's string or key from being stored as JSON and read
 * back, or NULL: "invalid UTF-8" (a string jansson's *_nocheck setters
 * made: its encoder refuses it), "invalid UTF-8 in a key", "a key with a NUL
 * byte" (encoded, but no parser reads it back). */
const char *er__json_unstorable(const er__walk_event_t *e);

/* Bytes of s[0..n) as a JSON string, quotes included, as jansson writes it
 * without JSON_ENSURE_ASCII. With out, the first room of them are written to
 * out (no NUL added) and the count stops past room (the return is then more
 * than room, not the whole size). */
size_t er__json_string_text(const char *s, size_t n, char *out, size_t room);

/* The same for any scalar, as json_dumps writes it with JSON_COMPACT |
 * JSON_ENCODE_ANY. */
size_t er__json_scalar_text(const json_t *v, char *out, size_t room);

/* The first size - 1 bytes of v's compact JSON (json_dumps with
 * JSON_COMPACT | JSON_ENCODE_ANY, cut there) in out, NUL-terminated: for a
 * log line. Its cost is bounded by size, whatever v's size or depth. 1 when
 * the text goes on past what out holds, 0 when it is whole; ER_EINVAL when a
 * string it reached is not valid UTF-8 (jansson would refuse to encode v),
 * ER_ENOMEM. A NUL byte in a string is written \u0000, as jansson does, so
 * the text holds none before its end. */
int er__json_preview(const json_t *v, char *out, size_t size);

#endif
