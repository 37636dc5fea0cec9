/* Documents and counters in the SQLite store: reading them, and the
 * mutations er_store_apply makes of them (sqlite_apply.c), each inside the
 * batch's transaction.
 *
 *   docs(coll, key, value JSON text, version)   version 1 at creation, +1 per change
 *   counters(coll, key, value)                  a counter at 0 has no row */
#include <stdio.h>
#include <string.h>

#include "store/sqlite_internal.h"

static const char SQL_DOC_GET[] = "SELECT value, version FROM docs WHERE coll = ?1 AND key = ?2";
static const char SQL_DOC_LIST[] =
    "SELECT key, value, version FROM docs WHERE coll = ?1 AND key > ?2 ORDER BY key LIMIT ?3";
static const char SQL_DOC_PUT[] =
    "INSERT OR REPLACE INTO docs(coll, key, value, version) VALUES(?1, ?2, ?3, ?4)";
static const char SQL_DOC_DEL[] = "DELETE FROM docs WHERE coll = ?1 AND key = ?2";
static const char SQL_COUNTER_GET[] = "SELECT value FROM counters WHERE coll = ?1 AND key = ?2";
static const char SQL_COUNTER_PUT[] =
    "INSERT OR REPLACE INTO counters(coll, key, value) VALUES(?1, ?2, ?3)";
static const char SQL_COUNTER_DEL[] = "DELETE FROM counters WHERE coll = ?1 AND key = ?2";

/* The stored JSON text at column c as a new value; ER_ECORRUPT when it does
 * not parse. */
static int col_value(er_sq_t *sq, sqlite3_stmt *st, int c, const char *coll, const char *key,
                     json_t **out) {
  const char *t = (const char *)sqlite3_column_text(st, c);
  *out = t ? json_loadb(t, (size_t)sqlite3_column_bytes(st, c),
                        JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)
            : NULL;
  if (*out) return 0;
  er__store_set_error(&sq->base, "document %s/%s: the stored JSON does not parse", coll, key);
  return ER_ECORRUPT;
}

/* Runs a statement bound to (coll, key) and maybe a third value. */
static int prep2(er_sq_t *sq, const char *sql, const char *coll, const char *key,
                 sqlite3_stmt **st) {
  int rc = er__sq_prep(sq, sql, st);
  if (rc) return rc;
  if (er__sq_bind_text(*st, 1, coll) || er__sq_bind_text(*st, 2, key)) {
    er__sq_done(*st);
    return er__sq_fail(sq, SQLITE_NOMEM, "document");
  }
  return 0;
}

/* *found, and the version and (when value is not NULL) the value. */
static int read_doc(er_sq_t *sq, const char *coll, const char *key, json_t **value,
                    int64_t *version, bool *found) {
  sqlite3_stmt *st;
  int rc = prep2(sq, SQL_DOC_GET, coll, key, &st);
  if (rc) return rc;
  rc = er__sq_step(sq, st, "document");
  *found = rc == SQLITE_ROW;
  if (*found) {
    *version = sqlite3_column_int64(st, 1);
    rc = value ? col_value(sq, st, 0, coll, key, value) : 0;
  }
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

int er__sq_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                   int64_t *version) {
  er_sq_t *sq = er__sq(s);
  bool found;
  int64_t v = 0;
  int rc = read_doc(sq, coll, key, value, &v, &found);
  if (!rc && !found) {
    er__store_set_error(s, "no document %s/%s", coll, key);
    rc = ER_ENOENT;
  }
  if (!rc && version) *version = v;
  return rc;
}

int er__sq_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                    json_t **out) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = prep2(sq, SQL_DOC_LIST, coll, after, &st);
  if (rc) return rc;
  json_t *arr = json_array();
  if (!arr) rc = ER_ENOMEM;
  sqlite3_bind_int64(st, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
  while (!rc && (rc = er__sq_step(sq, st, "doc_list")) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(st, 0);
    json_t *v = NULL;
    rc = col_value(sq, st, 1, coll, key, &v);
    json_t *item = rc ? NULL
                      : json_pack("{s:s, s:o, s:I}", "key", key, "value", v, "version",
                                  (json_int_t)sqlite3_column_int64(st, 2));
    if (!rc && (!item || json_array_append_new(arr, item))) rc = ER_ENOMEM;
  }
  er__sq_done(st);
  if (rc != SQLITE_DONE) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return 0;
}

/* ---- mutations --------------------------------------------------------------------- */

static int check_version(er_sq_t *sq, const er_mut_t *m, bool found, int64_t version) {
  if (m->if_version == ER_VERSION_ANY) return 0;
  if (m->if_version == ER_VERSION_ABSENT) {
    if (!found) return 0;
    er__store_set_error(&sq->base, "document %s/%s exists (version %lld)", m->coll, m->key,
                        (long long)version);
    return ER_EEXIST;
  }
  if (!found) {
    er__store_set_error(&sq->base, "no document %s/%s", m->coll, m->key);
    return ER_ENOENT;
  }
  if (version == m->if_version) return 0;
  er__store_set_error(&sq->base, "document %s/%s is at version %lld, not %lld", m->coll, m->key,
                      (long long)version, (long long)m->if_version);
  return ER_ESTATE;
}

static int write_doc(er_sq_t *sq, const er_mut_t *m, const json_t *value, int64_t version) {
  sqlite3_stmt *st;
  int rc = prep2(sq, SQL_DOC_PUT, m->coll, m->key, &st);
  if (rc) return rc;
  if (er__sq_bind_json(st, 3, value)) {
    er__sq_done(st);
    return er__sq_fail(sq, SQLITE_NOMEM, "document (encoding the value)");
  }
  sqlite3_bind_int64(st, 4, version);
  rc = er__sq_step(sq, st, "document");
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

/* Runs a statement on (coll, key) that returns no rows. */
static int run2(er_sq_t *sq, const char *sql, const char *coll, const char *key) {
  sqlite3_stmt *st;
  int rc = prep2(sq, sql, coll, key, &st);
  if (rc) return rc;
  rc = er__sq_step(sq, st, "document");
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

int er__sq_doc_mut(er_sq_t *sq, const er_mut_t *m, er_mut_result_t *res) {
  bool merge = m->kind == ER_MUT_DOC_MERGE, found;
  json_t *cur = NULL;
  int64_t version = 0;
  int rc = read_doc(sq, m->coll, m->key, merge ? &cur : NULL, &version, &found);
  if (!rc) rc = check_version(sq, m, found, version);
  if (rc || m->kind == ER_MUT_DOC_DEL) {
    json_decref(cur);
    return rc || !found ? rc : run2(sq, SQL_DOC_DEL, m->coll, m->key);
  }
  const json_t *value = m->value;
  if (merge) {
    if (!cur && !(cur = json_object())) return ER_ENOMEM;
    if (!json_is_object(cur)) {
      er__store_set_error(&sq->base, "document %s/%s is not an object: cannot merge", m->coll,
                          m->key);
      rc = ER_ESTATE;
    } else if (json_object_update(cur, m->value)) {
      rc = ER_ENOMEM;
    }
    value = cur;
  }
  if (!rc) rc = write_doc(sq, m, value, version + 1);
  if (!rc) res->version = version + 1;
  json_decref(cur);
  return rc;
}

int er__sq_counter_get(er_store_t *s, const char *coll, const char *key, int64_t *value) {
  er_sq_t *sq = er__sq(s);
  sqlite3_stmt *st;
  int rc = prep2(sq, SQL_COUNTER_GET, coll, key, &st);
  if (rc) return rc;
  rc = er__sq_step(sq, st, "counter");
  *value = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

int er__sq_counter_add(er_sq_t *sq, const er_mut_t *m, er_mut_result_t *res) {
  int64_t v, sum;
  int rc = er__sq_counter_get(&sq->base, m->coll, m->key, &v);
  if (rc) return rc;
  if (m->if_value != ER_COUNTER_ANY && v != m->if_value) {
    er__store_set_error(&sq->base, "counter %s/%s is %lld, not %lld", m->coll, m->key,
                        (long long)v, (long long)m->if_value);
    return ER_ESTATE;
  }
  if (__builtin_add_overflow(v, m->delta, &sum) || sum >= ER__COUNTER_LIMIT ||
      sum <= -ER__COUNTER_LIMIT) {
    er__store_set_error(&sq->base, "counter '%s/%s' would pass 9.2e18 (%lld + %lld)", m->coll,
                        m->key, (long long)v, (long long)m->delta);
    return ER_EINVAL;
  }
  if (sum == 0) {
    rc = run2(sq, SQL_COUNTER_DEL, m->coll, m->key);
  } else {
    sqlite3_stmt *st;
    if (!(rc = prep2(sq, SQL_COUNTER_PUT, m->coll, m->key, &st))) {
      sqlite3_bind_int64(st, 3, sum);
      rc = er__sq_step(sq, st, "counter");
      er__sq_done(st);
      rc = rc < 0 ? rc : 0;
    }
  }
  if (!rc) res->value = sum;
  return rc;
}
