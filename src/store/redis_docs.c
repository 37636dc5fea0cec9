/* Transition batches, documents and counters: er_store_apply as one script
 * (lua/apply.lua) that checks every mutation against what the earlier ones
 * will have done before it writes anything, with the same Lua the single
 * enqueue and complete scripts use; and their reads (lua/docread.lua). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

/* A mutation as apply.lua reads it: its kind, then its fields. */
static void add_mut(er_rd_args_t *a, const er_mut_t *m) {
  er__rd_args_i64(a, m->kind);
  switch (m->kind) {
    case ER_MUT_ENQUEUE:
      er__rd_args_i64(a, m->flags);
      er__rd_args_rec(a, m->rec);
      return;
    case ER_MUT_COMPLETE:
      er__rd_args_done(a, &m->completion);
      return;
    case ER_MUT_TASK_GUARD:
      er__rd_args_str(a, m->id);
      er__rd_args_i64(a, m->state);
      er__rd_args_i64(a, m->attempt);
      return;
    case ER_MUT_COUNTER_ADD:
      er__rd_args_str(a, m->coll);
      er__rd_args_str(a, m->key);
      er__rd_args_i64(a, m->delta);
      if (m->if_value == ER_COUNTER_ANY) er__rd_args_str(a, "-");
      else er__rd_args_fmt(a, "+%lld", (long long)m->if_value);
      return;
    case ER_MUT_DOC_PUT:
    case ER_MUT_DOC_MERGE:
    case ER_MUT_DOC_DEL:
      er__rd_args_str(a, m->coll);
      er__rd_args_str(a, m->key);
      er__rd_args_i64(a, m->if_version);
      if (m->kind != ER_MUT_DOC_DEL) er__rd_args_json(a, m->value, false);
      return;
  }
}

/* The ER_E* code named name ("EEXIST"), or ER_EIO. */
static int code_named(const char *name, size_t len) {
  for (int c = -1; c > -100; c--) {
    const char *n = er_err_name(c);
    if (strcmp(n, "EUNKNOWN") == 0) break;
    if (strlen(n) == len && memcmp(n, name, len) == 0) return c;
  }
  return ER_EIO;
}

static bool is_str(const redisReply *r) { return r->type == REDIS_REPLY_STRING; }

static int unexpected(er_store_t *s, const char *what) {
  er__store_set_error(s, "redis %s: an unexpected reply", what);
  return ER_EIO;
}

/* {'ok', result per mutation} or {'fail', index, name, message}. */
static int read_apply(er_store_t *s, const redisReply *r, const er_mut_t *muts, size_t n,
                      er_mut_result_t *results, size_t *failed) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_str(r->element[0]))
    return unexpected(s, "apply");
  if (strcmp(r->element[0]->str, "fail") == 0) {
    if (r->elements != 4 || r->element[1]->type != REDIS_REPLY_INTEGER ||
        !is_str(r->element[2]) || !is_str(r->element[3]))
      return unexpected(s, "apply");
    size_t at = (size_t)r->element[1]->integer;
    if (failed) *failed = at < n ? at : n;
    er__store_set_error(s, "%.240s", r->element[3]->str);
    return code_named(r->element[2]->str, r->element[2]->len);
  }
  if (r->elements != n + 1) return unexpected(s, "apply");
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = r->element[i + 1];
    if (!is_str(e)) return unexpected(s, "apply");
    const er_mut_t *m = &muts[i];
    er_mut_result_t *res = results ? &results[i] : NULL;
    switch (m->kind) {
      case ER_MUT_ENQUEUE:
        if (e->len) snprintf(m->rec->id, sizeof m->rec->id, "%s", e->str);
        else m->rec->state = ER_STATE_PENDING;
        if (res) res->existing = e->len > 0;
        break;
      case ER_MUT_DOC_PUT:
      case ER_MUT_DOC_MERGE:
        if (res) res->version = strtoll(e->str, NULL, 10);
        break;
      case ER_MUT_COUNTER_ADD:
        if (res) res->value = strtoll(e->str, NULL, 10);
        break;
      default:
        break;
    }
  }
  return 0;
}

int er__rd_apply(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
                 size_t *failed) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, s->tombstone_ms);
  er__rd_args_i64(&a, er_now_wall_ms());
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) add_mut(&a, &muts[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_APPLY, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  rc = read_apply(s, r, muts, n, results, failed);
  freeReplyObject(r);
  if (!rc && failed) *failed = n;
  return rc;
}

/* ---- reads (lua/docread.lua) --------------------------------------------------- */

static int docread(er_rd_t *rd, const char *what, const char *coll, const char *x,
                   const char *y, redisReply **out) {
  er_rd_args_t a = {0};
  er__rd_args_str(&a, what);
  er__rd_args_str(&a, coll);
  er__rd_args_str(&a, x);
  if (y) er__rd_args_str(&a, y);
  int rc = er__rd_run(rd, ER_RD_DOCREAD, true, &a, out);
  er__rd_args_free(&a);
  return rc;
}

static int parse_doc(er_store_t *s, const redisReply *v, json_t **out) {
  json_t *j = json_loadb(v->str, v->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (!j) {
    er__store_set_error(s, "redis: a stored document does not parse");
    return ER_ECORRUPT;
  }
  *out = j;
  return 0;
}

int er__rd_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                   int64_t *version) {
  redisReply *r;
  int rc = docread(er__rd(s), "g", coll, key, NULL, &r);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY) {
    er__store_set_error(s, "no document '%s/%s'", coll, key);
    rc = ER_ENOENT;
  } else if (r->elements != 2 || !is_str(r->element[0]) || !is_str(r->element[1])) {
    rc = unexpected(s, "doc_get");
  } else {
    if (version) *version = strtoll(r->element[1]->str, NULL, 10);
    if (value) rc = parse_doc(s, r->element[0], value);
  }
  freeReplyObject(r);
  return rc;
}

int er__rd_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                    json_t **out) {
  char lim[32];
  snprintf(lim, sizeof lim, "%zu", limit);
  redisReply *r;
  int rc = docread(er__rd(s), "l", coll, after, lim, &r);
  if (rc) return rc;
  json_t *arr = json_array();
  if (!arr) rc = ER_ENOMEM;
  else if (r->type != REDIS_REPLY_ARRAY || r->elements % 3) rc = unexpected(s, "doc_list");
  for (size_t i = 0; !rc && i < r->elements; i += 3) {
    const redisReply *k = r->element[i], *v = r->element[i + 1], *ver = r->element[i + 2];
    if (!is_str(k) || !is_str(v) || !is_str(ver)) {
      rc = unexpected(s, "doc_list");
      break;
    }
    json_t *val;
    rc = parse_doc(s, v, &val);
    if (!rc && json_array_append_new(arr, json_pack("{s:s%, s:o, s:I}", "key", k->str, k->len,
                                                    "value", val, "version",
                                                    (json_int_t)strtoll(ver->str, NULL, 10))))
      rc = ER_ENOMEM;
  }
  freeReplyObject(r);
  if (rc) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return 0;
}

int er__rd_counter_get(er_store_t *s, const char *coll, const char *key, int64_t *value) {
  redisReply *r;
  int rc = docread(er__rd(s), "c", coll, key, NULL, &r);
  if (rc) return rc;
  if (is_str(r)) *value = strtoll(r->str, NULL, 10);
  else rc = unexpected(s, "counter_get");
  freeReplyObject(r);
  return rc;
}
