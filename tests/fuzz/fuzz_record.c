/* Fuzzes the stores' task-record decoders with what a damaged or foreign
 * store could hold. The first byte picks the store, the rest is fields
 * separated by '\n':
 *   's' a SQLite row (er__sq_read_rec): field i is column i of
 *       ER_SQ_TASK_COLS, its first byte its type: 'i' an integer, 'f' a real,
 *       'n' NULL, 'b' a blob, anything else text (the rest of the field);
 *   'r' a Redis task hash as HGETALL gives it (er__rd_read_rec): the fields
 *       are name, value, name, value...; 'R' the same as a non-array reply.
 * A decoder must answer a record, ER_ECORRUPT or ER_ENOMEM, never crash,
 * leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

#define MAX_FIELDS 80

typedef struct fields {
  const char *s[MAX_FIELDS];
  size_t len[MAX_FIELDS];
  size_t n;
} fields_t;

static void split(const uint8_t *p, size_t size, fields_t *f) {
  const char *s = (const char *)p, *end = s + size;
  f->n = 0;
  while (f->n < MAX_FIELDS) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *stop = nl ? nl : end;
    f->s[f->n] = s;
    f->len[f->n++] = (size_t)(stop - s);
    if (!nl) break;
    s = nl + 1;
  }
}

static void bind_fields(sqlite3_stmt *st, void *ud) {
  const fields_t *f = ud;
  for (size_t i = 0; i < f->n && i < ER_SQ_TASK_NCOLS; i++) {
    int col = (int)i + 1;
    size_t n = f->len[i];
    const char *s = f->s[i];
    char num[32];
    snprintf(num, sizeof num, "%.*s", n > 1 ? (int)(n - 1 < 31 ? n - 1 : 31) : 0, s + 1);
    switch (n ? s[0] : 0) {
      case 'i': sqlite3_bind_int64(st, col, strtoll(num, NULL, 10)); break;
      case 'f': sqlite3_bind_double(st, col, strtod(num, NULL)); break;
      case 'n': sqlite3_bind_null(st, col); break;
      case 'b': sqlite3_bind_blob(st, col, s + 1, (int)(n - 1), SQLITE_TRANSIENT); break;
      case 't': sqlite3_bind_text(st, col, s + 1, (int)(n - 1), SQLITE_TRANSIENT); break;
      default: sqlite3_bind_text(st, col, s, (int)n, SQLITE_TRANSIENT); break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fields_t f;
  split(data + 1, size - 1, &f);
  er_task_rec_t *r = NULL;
  int rc;
  if (data[0] == 's') rc = fz_sqlite_decode(bind_fields, &f, &r);
  else if (data[0] == 'r' || data[0] == 'R')
    rc = fz_redis_decode(f.s, f.len, f.n, data[0] == 'r', &r);
  else return 0;
  fz_check_answer(rc);
  er_task_rec_free(r);
  return 0;
}
