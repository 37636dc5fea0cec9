/* libpbench_commits.so, preloaded (LD_PRELOAD) into the processes of a
 * pipeline benchmark run on SQLite: every connection opened with
 * sqlite3_open_v2 (as errand's store opens its own) gets a commit hook that
 * adds one to the shared counter of pbench_counter.h. SQLite calls the hook
 * for each transaction that commits writes, and never for a read, so the
 * count is the store's durable commits, whoever made them (worker, prefork
 * child, client), with nothing changed in errand. The store sets no commit
 * hook of its own, which this would replace. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <sqlite3.h>

#include "pbench_counter.h"

static uint64_t *g_counter;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void map_counter(void) { g_counter = pbench_counter_map(); }

static int on_commit(void *ud) {
  (void)ud;
  if (g_counter) __atomic_fetch_add(g_counter, 1, __ATOMIC_RELAXED);
  return 0; /* 0: let the commit go on */
}

typedef int (*open_fn)(const char *, sqlite3 **, int, const char *);

int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags, const char *vfs) {
  static open_fn real;
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "sqlite3_open_v2");
  if (!real) return SQLITE_ERROR;
  int rc = real(filename, db, flags, vfs);
  pthread_once(&g_once, map_counter);
  if (rc == SQLITE_OK && *db) sqlite3_commit_hook(*db, on_commit, NULL);
  return rc;
}
