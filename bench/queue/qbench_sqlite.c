/*
 * qbench_sqlite: the raw reference under errand's figures: how many one-row
 * INSERT commits per second SQLite itself makes on this file system, with the
 * settings errand's store uses (src/store/sqlite_open.c: journal_mode=WAL,
 * synchronous=NORMAL, journal_size_limit=64 MiB; sync=full gives FULL).
 *
 *   qbench_sqlite --path FILE --sync normal|full -n N [--seconds S]
 *
 * Each INSERT runs in its own transaction (autocommit), with a prepared
 * statement, a row of about the size of a task's: id text, name, queue, a
 * small JSON payload. Stops after N rows or S seconds (default 10), whichever
 * comes first. Prints insert_rate (commits/s).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qbench_util.h"

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) qb_die("%s: %s", sql, err);
}

int main(int argc, char **argv) {
  const char *path = qb_opt(argc, argv, "--path", NULL);
  const char *sync = qb_opt(argc, argv, "--sync", "normal");
  long n = qb_opt_long(argc, argv, "-n", 20000);
  double max_s = (double)qb_opt_long(argc, argv, "--seconds", 10);
  if (!path) qb_die("--path FILE is required");
  if (strcmp(sync, "normal") && strcmp(sync, "full")) qb_die("--sync normal|full");
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) qb_die("cannot open %s", path);
  exec(db, "PRAGMA journal_mode = WAL");
  exec(db, strcmp(sync, "full") == 0 ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  exec(db, "PRAGMA journal_size_limit = 67108864");
  exec(db, "CREATE TABLE IF NOT EXISTS t (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, task TEXT, "
           "queue TEXT, args TEXT, created_ms INTEGER)");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT INTO t (id, task, queue, args, created_ms) VALUES (?, 'noop', "
                             "'default', '[]', ?)", -1, &st, NULL) != SQLITE_OK)
    qb_die("prepare: %s", sqlite3_errmsg(db));
  double t0 = qb_now(), deadline = t0 + max_s;
  long i;
  for (i = 0; i < n; i++) {
    char id[64];
    snprintf(id, sizeof id, "0190f000-0000-7000-8000-%012ld", i + (long)getpid() * 1000000L);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(t0 * 1000));
    if (sqlite3_step(st) != SQLITE_DONE) qb_die("insert: %s", sqlite3_errmsg(db));
    sqlite3_reset(st);
    if ((i & 63) == 63 && qb_now() > deadline) {
      i++;
      break;
    }
  }
  double dt = qb_now() - t0;
  sqlite3_finalize(st);
  sqlite3_close(db);
  qb_result(NULL, "insert_rate", (double)i / dt);
  qb_result(NULL, "insert_rows", (double)i);
  return 0;
}
