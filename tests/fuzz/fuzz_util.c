/* The fuzz targets' shared decoding harness (fuzz_util.h). */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3 *g_db;
static sqlite3_stmt *g_row;

/* One statement for every row: "SELECT ?1, ..., ?30", the columns of
 * ER_SQ_TASK_COLS in order, typed by what is bound. */
static sqlite3_stmt *row_stmt(void) {
  if (g_row) return g_row;
  char sql[512] = "SELECT ?1";
  for (int i = 2; i <= ER_SQ_TASK_NCOLS; i++)
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), ", ?%d", i);
  if (sqlite3_open(":memory:", &g_db) != SQLITE_OK ||
      sqlite3_prepare_v2(g_db, sql, -1, &g_row, NULL) != SQLITE_OK)
    abort();
  return g_row;
}

/* The lenient read (the one reserve uses: it notes what is wrong and goes on)
 * must answer as the strict one may, and free what it made. */
static void lenient_done(int rc, er_task_rec_t *rec) {
  fz_check_answer(rc);
  er_task_rec_free(rec);
}

int fz_sqlite_decode(fz_bind_fn bind, void *ud, er_task_rec_t **out) {
  static er_sq_t sq; /* the decoder touches only its error text */
  sqlite3_stmt *st = row_stmt();
  bind(st, ud);
  int rc = ER_EINTERNAL;
  if (sqlite3_step(st) == SQLITE_ROW) {
    er_task_rec_t *lenient = NULL;
    int lrc = er__sq_read_rec(&sq, st, 0, &lenient, NULL, &(er_rec_why_t){{0}});
    lenient_done(lrc, lenient);
    rc = er__sq_read_rec(&sq, st, 0, out, NULL, NULL);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

int fz_redis_decode(const char *const *s, const size_t *len, size_t n, bool array,
                    er_task_rec_t **out) {
  static er_rd_t rd;
  redisReply top = {.type = array ? REDIS_REPLY_ARRAY : REDIS_REPLY_STRING, .elements = n};
  redisReply *el = calloc(n ? n : 1, sizeof *el);
  redisReply **els = calloc(n ? n : 1, sizeof *els);
  if (!el || !els) abort();
  for (size_t i = 0; i < n; i++) {
    el[i].type = REDIS_REPLY_STRING;
    el[i].len = len[i];
    el[i].str = malloc(len[i] + 1);
    if (!el[i].str) abort();
    memcpy(el[i].str, s[i], len[i]);
    el[i].str[len[i]] = 0;
    els[i] = &el[i];
  }
  top.element = els;
  er_task_rec_t *lenient = NULL;
  int lrc = er__rd_read_rec(&rd, &top, &lenient, &(er_rec_why_t){{0}});
  lenient_done(lrc, lenient);
  int rc = er__rd_read_rec(&rd, &top, out, NULL);
  for (size_t i = 0; i < n; i++) free(el[i].str);
  free(el);
  free(els);
  return rc;
}

void fz_check_answer(int rc) {
  if (rc != 0 && rc != ER_ECORRUPT && rc != ER_ENOMEM) {
    fprintf(stderr, "a decoder answered %s\n", er_err_name(rc));
    abort();
  }
}
