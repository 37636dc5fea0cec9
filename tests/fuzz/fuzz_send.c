/* Fuzzes what a sender may pass. The first byte picks how the value is made:
 *   'j' JSON text: the second byte is json_loadb's flags (bit 0
 *       JSON_ALLOW_NUL, bit 1 JSON_DECODE_ANY), the rest the text;
 *   'b' built with jansson's unchecked setters, as a careless caller could:
 *       '[' '{' open a container inside the current one, ']' '}' close it,
 *       's' N BYTES a string of N raw bytes, 'k' N BYTES the key for the
 *       next member of an object, 'i' an integer of the next 8 bytes,
 *       'n' 't' 'f' null, true, false. Nesting may pass the send limit.
 * The value goes to the send check as args (an array), kwargs (an object) or
 * inside args. What the check accepts must then encode as both stores encode
 * a record and decode back equal; anything else is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "queue/send_check.h"

#define BUILD_DEPTH 3000 /* past ER_SEND_MAX_DEPTH, yet json_decref's recursion stays small */

typedef struct builder {
  json_t *root;
  json_t *st[BUILD_DEPTH];
  size_t n;
  char key[256];
  size_t keylen;
} builder_t;

/* Attaches v (a new reference, taken) to the open container, or makes it
 * the root; an attached container becomes the open one. */
static void attach(builder_t *b, json_t *v) {
  int rc = -1;
  if (!b->n) {
    if (!b->root) b->root = json_incref(v), rc = 0;
  } else if (json_is_array(b->st[b->n - 1])) {
    rc = json_array_append(b->st[b->n - 1], v);
  } else {
    rc = json_object_setn_nocheck(b->st[b->n - 1], b->keylen ? b->key : "k",
                                  b->keylen ? b->keylen : 1, v);
    b->keylen = 0;
  }
  if (rc == 0 && (json_is_array(v) || json_is_object(v)) && b->n < BUILD_DEPTH)
    b->st[b->n++] = v; /* borrowed: its parent holds it */
  json_decref(v);
}

static json_t *build(const uint8_t *p, size_t size) {
  static builder_t b;
  b.root = NULL;
  b.n = b.keylen = 0;
  for (size_t i = 0; i < size; i++) {
    size_t left = size - i - 1;
    switch (p[i]) {
      case '[': attach(&b, json_array()); break;
      case '{': attach(&b, json_object()); break;
      case ']':
      case '}':
        if (b.n) b.n--;
        break;
      case 's':
      case 'k': {
        size_t n = left ? p[i + 1] : 0;
        if (n > left - (left ? 1 : 0)) n = left ? left - 1 : 0;
        const char *s = (const char *)p + i + 2;
        if (p[i] == 's') {
          attach(&b, json_stringn_nocheck(left ? s : "", n));
        } else {
          memcpy(b.key, left ? s : "", n < sizeof b.key ? n : sizeof b.key);
          b.keylen = n < sizeof b.key ? n : sizeof b.key;
        }
        i += left ? n + 1 : 0;
        break;
      }
      case 'i': {
        int64_t x = 0;
        memcpy(&x, p + i + 1, left < 8 ? left : 8);
        attach(&b, json_integer(x));
        i += left < 8 ? left : 8;
        break;
      }
      case 'n': attach(&b, json_null()); break;
      case 't': attach(&b, json_true()); break;
      case 'f': attach(&b, json_false()); break;
      default: break;
    }
  }
  return b.root;
}

/* ---- the round trip through both stores' encoders and decoders ---- */

static void bind_rec(sqlite3_stmt *st, void *ud) {
  const er_task_rec_t *r = ud;
  er__sq_bind_text(st, 1, r->id);
  er__sq_bind_text(st, 2, r->task);
  er__sq_bind_text(st, 3, r->queue);
  if (er__sq_bind_json(st, 6, r->args) || er__sq_bind_json(st, 7, r->kwargs) ||
      er__sq_bind_json(st, 8, r->context)) {
    fprintf(stderr, "SQLite: an accepted value does not encode\n");
    abort();
  }
}

static void same(const char *store, const char *what, const json_t *sent, const json_t *got) {
  if ((sent || got) && !json_equal(sent, got)) {
    fprintf(stderr, "%s: %s does not read back as sent\n", store, what);
    abort();
  }
}

static void expect_same(const char *store, int rc, const er_task_rec_t *sent, er_task_rec_t *got) {
  if (rc) {
    fprintf(stderr, "%s: an accepted record does not decode: %s\n", store, er_err_name(rc));
    abort();
  }
  same(store, "args", sent->args, got->args);
  same(store, "kwargs", sent->kwargs, got->kwargs);
  same(store, "context", sent->context, got->context);
  er_task_rec_free(got);
}

/* The HGETALL reply enqueue's script would leave for r, from the arguments
 * er__rd_args_rec makes (lib_enqueue.lua's enq_write). */
static void redis_round_trip(const er_task_rec_t *r) {
  er_rd_args_t a = {0};
  er__rd_args_rec(&a, r);
  if (a.oom || a.n != ER_RD_REC_FIELDS) {
    fprintf(stderr, "Redis: an accepted record does not encode\n");
    abort();
  }
  const char *s[16];
  size_t len[16], n = 0;
  static const char *const names[] = {"id", "task", "queue", "priority", "args", "kwargs",
                                      "context"};
  for (size_t i = 0; i < 7; i++) {
    const char *v = a.v[i];
    size_t vl = a.len[i];
    if (i == 6) { /* optional: "-" absent, "+" and the text present */
      if (v[0] == '-') break;
      v++, vl--;
    }
    s[n] = names[i], len[n++] = strlen(names[i]);
    s[n] = v, len[n++] = vl;
  }
  /* The script writes the state itself. */
  char state[16];
  snprintf(state, sizeof state, "%d", (int)ER_STATE_PENDING);
  s[n] = "state", len[n++] = 5;
  s[n] = state, len[n++] = strlen(state);
  er_task_rec_t *got = NULL;
  int rc = fz_redis_decode(s, len, n, true, &got);
  expect_same("Redis", rc, r, got);
  er__rd_args_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  json_t *v = NULL;
  if (data[0] == 'j') {
    size_t flags = (data[1] & 1 ? JSON_ALLOW_NUL : 0) | (data[1] & 2 ? JSON_DECODE_ANY : 0);
    v = json_loadb((const char *)data + 2, size - 2, flags, NULL);
  } else if (data[0] == 'b') {
    v = build(data + 1, size - 1);
  }
  if (!v) return 0;
  json_t *args = json_is_array(v) ? json_incref(v) : json_is_object(v) ? NULL : json_pack("[O]", v);
  json_t *kwargs = json_is_object(v) ? json_incref(v) : NULL;
  er_send_opts_t o = {.context = kwargs};
  char why[384];
  size_t max = 1 << 20;
  int rc = er__send_check("t", args, kwargs, &o, 1, max, why, sizeof why);
  if (rc == 0) {
    er_task_rec_t r = {.id = "01900000-0000-7000-8000-000000000000", .task = "t", .queue = "q"};
    r.args = args ? args : json_array();
    r.kwargs = kwargs ? kwargs : json_object();
    r.context = kwargs;
    er_store_t s = {.max_payload = max};
    rc = er__store_check_record(&s, &r);
    if (rc != 0 && rc != ER_ETOOBIG) {
      fprintf(stderr, "the store refuses what the send check accepted: %s\n", s.last_error);
      abort();
    }
    if (rc == 0) {
      er_task_rec_t *got = NULL;
      int drc = fz_sqlite_decode(bind_rec, &r, &got);
      expect_same("SQLite", drc, &r, got);
      redis_round_trip(&r);
    }
    if (!args) json_decref(r.args);
    if (!kwargs) json_decref(r.kwargs);
  } else if (rc != ER_EINVAL && rc != ER_ETOOBIG && rc != ER_ENOMEM) {
    abort();
  }
  json_decref(args);
  json_decref(kwargs);
  json_decref(v);
  return 0;
}
