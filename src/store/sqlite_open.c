/* Opening and closing the SQLite store: the URL's path and options, the
 * connection's pragmas, the file checks and schema, and the backend's vtable. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite_internal.h"

static void sq_close(er_store_t *s);

/* The path in "sqlite:PATH?opts" (also "sqlite://PATH"); a new string. */
static char *url_path(const char *url) {
  const char *p = url + strlen("sqlite:");
  if (p[0] == '/' && p[1] == '/') p += 2; /* sqlite:///abs/path -> /abs/path */
  size_t n = strcspn(p, "?");
  char *path = er_malloc(n + 1);
  if (path) {
    memcpy(path, p, n);
    path[n] = 0;
  }
  return path;
}

/* ?mode=0640: octal permission bits for the files the store creates; the
 * owner must keep read and write. Default 0600: args, results and context
 * are private. */
static int parse_mode(er_sq_t *sq, const char *url, char *errmsg, size_t size) {
  size_t len;
  const char *v = er__store_url_opt(url, "mode", &len);
  sq->mode = 0600;
  if (!v) return 0;
  unsigned m = 0;
  size_t i = 0;
  while (i < len && i < 5 && v[i] >= '0' && v[i] <= '7') m = m * 8 + (unsigned)(v[i++] - '0');
  if (!len || i != len || m > 0777 || (m & 0600) != 0600) {
    er__errmsg(errmsg, size,
               "store URL option mode=%.*s: want octal permission bits with owner rw, e.g. 0640",
               (int)(len > 40 ? 40 : len), v);
    return ER_EINVAL;
  }
  sq->mode = m;
  return 0;
}

static int parse_options(er_sq_t *sq, const char *url, char *errmsg, size_t size) {
  int64_t busy;
  int rc = er__store_url_int(url, "busy_ms", 5000, 0, INT32_MAX, &busy, errmsg, size);
  if (rc) return rc;
  sq->busy_ms = (int)busy;
  size_t len;
  const char *v = er__store_url_opt(url, "sync", &len);
  if (v && len == 4 && strncmp(v, "full", 4) == 0) {
    sq->sync_full = true;
  } else if (v && !(len == 6 && strncmp(v, "normal", 6) == 0)) {
    er__errmsg(errmsg, size, "store URL option sync=%.*s: want normal or full",
               (int)(len > 40 ? 40 : len), v);
    return ER_EINVAL;
  }
  return parse_mode(sq, url, errmsg, size);
}

/* The database is made here, before SQLite sees it, so that it gets
 * sq->mode rather than SQLite's 0644 less the umask; SQLite gives its -wal
 * and -shm the database file's mode. An existing file is left as it is. */
static void create_db(er_sq_t *sq) {
  if (strcmp(sq->path, ":memory:") == 0) return;
  int fd = er__sq_create_new(sq->path, O_RDWR, sq->mode);
  if (fd >= 0) close(fd); /* else exists, or SQLite reports why it cannot open */
}

/* ---- a file cut short or not SQLite's -------------------------------------
 * SQLite calls both "database disk image is malformed" or "file is not a
 * database", at whichever read first meets the damage, which for a cut file
 * may be long after open. Its header says more: the magic string, the page
 * size, and (when valid: its change counter matches version-valid-for) the
 * number of pages, which a whole file holds. */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool er__sq_file_problem(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char h[100];
  struct stat sb;
  ssize_t n = fstat(fd, &sb) == 0 ? pread(fd, h, sizeof h, 0) : -1;
  close(fd);
  if (n < 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0) return false; /* new: fine */
  if (n < (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0) {
    bool cut = n > 0 && memcmp(h, "SQLite format 3", (size_t)n < 16 ? (size_t)n : 16) == 0;
    if (cut) er__errmsg(out, size, "'%s': database file is truncated (%lld bytes)", path,
                        (long long)sb.st_size);
    else er__errmsg(out, size, "'%s' is corrupt (not an SQLite database)", path);
    return true;
  }
  uint32_t page = (uint32_t)h[16] << 8 | h[17];
  if (page == 1) page = 65536;
  if (page < 512 || page > 65536 || (page & (page - 1))) {
    er__errmsg(out, size, "'%s' is corrupt (not an SQLite database: page size %u)", path, page);
    return true;
  }
  uint32_t pages = be32(h + 28);
  bool counted = pages && be32(h + 24) == be32(h + 92);
  if (sb.st_size % page || (counted && (uint64_t)sb.st_size < (uint64_t)pages * page)) {
    er__errmsg(out, size, "'%s': database file is truncated (%lld bytes, want %llu)", path,
               (long long)sb.st_size,
               counted ? (unsigned long long)pages * page
                       : ((unsigned long long)sb.st_size / page + 1) * page);
    return true;
  }
  return false;
}

/* Whether a write may be in progress on the file by another connection: a
 * checkpoint copying pages from the -wal (it writes page 1, with the new
 * count, before the pages that grow the file) or a rollback journal's
 * transaction. Then a short file proves nothing, and open leaves the
 * diagnosis to the first error. */
static bool may_be_written(const char *path) {
  static const char *const ext[] = {"-wal", "-journal"};
  char p[4096];
  struct stat sb;
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    snprintf(p, sizeof p, "%s%s", path, ext[i]);
    if (stat(p, &sb) == 0 && sb.st_size > 0) return true;
  }
  return false;
}

/* The connection's settings. WAL lets readers run beside the one writer and
 * makes a commit one append to the -wal file; synchronous=NORMAL then loses
 * nothing on a process crash (only on power loss, the last commits), FULL
 * fsyncs every commit. */
static int pragmas(er_sq_t *sq, char *errmsg, size_t size) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(sq->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, "wal") != 0)
      er_log(ER_LOG_WARN,
             "store %s: journal_mode is %s, not wal (the file system may not allow it)",
             sq->path, mode ? mode : "?");
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  int err = rc == SQLITE_OK ? 0 : er__sq_fail(sq, rc, "journal_mode");
  if (!err)
    err = er__sq_exec(sq,
                      sq->sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                      "synchronous");
  /* Keep a -wal that grew in a burst from staying large after checkpoints. */
  if (!err) err = er__sq_exec(sq, "PRAGMA journal_size_limit = 67108864", "journal_size_limit");
  if (err) er__errmsg(errmsg, size, "'%s': %s", sq->path, sq->base.last_error);
  return err;
}

/* Checks the file, sets the journal mode and creates or migrates the schema.
 * Several processes opening a new file at once contend here, and SQLite
 * answers SQLITE_BUSY at once (without its busy handler) to one that asks
 * for WAL while another converts the file: every step can be repeated, so
 * the whole is retried until busy_ms has passed. */
static int prepare_file(er_sq_t *sq, char *errmsg, size_t size) {
  uint64_t deadline = er_now_mono_ms() + (uint64_t)sq->busy_ms;
  unsigned delay = 100;
  for (;;) {
    /* Read before writing anything: a file that is not ours is left alone. */
    int64_t version;
    int rc = er__sq_schema_read(sq, &version, errmsg, size);
    if (!rc) rc = pragmas(sq, errmsg, size);
    if (!rc) rc = er__sq_schema_upgrade(sq, version, errmsg, size);
    if (rc != ER_EBUSY || er_now_mono_ms() >= deadline) return rc;
    er__errmsg(errmsg, size, "%s", "");
    er__sq_nap(&delay);
  }
}

static int sq_open(const char *url, er_store_t **out, char *errmsg, size_t size) {
  er_sq_t *sq = er_calloc(1, sizeof *sq);
  if (!sq) return ER_ENOMEM;
  sq->base.ops = er__sqlite_backend.ops;
  sq->ifd = sq->bell_fd = sq->done_fd = sq->ctl_fd = sq->dir_wd = -1;
  int rc = parse_options(sq, url, errmsg, size);
  if (rc) goto fail;
  rc = ER_ENOMEM;
  if (!(sq->path = url_path(url))) goto fail;
  if (!*sq->path) {
    er__errmsg(errmsg, size, "store URL '%s' has no path (use sqlite:PATH)", url);
    rc = ER_EINVAL;
    goto fail;
  }
  create_db(sq);
  /* Checked before SQLite reads it (cheap: one header read and a stat), so
   * that a cut file is refused as such, not used until a read hits the cut. */
  if (strcmp(sq->path, ":memory:") != 0 && !may_be_written(sq->path) &&
      er__sq_file_problem(sq->path, errmsg, size)) {
    rc = ER_ECORRUPT;
    goto fail;
  }
  int src = sqlite3_open_v2(sq->path, &sq->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (src != SQLITE_OK) {
    rc = sq->db ? er__sq_fail(sq, src, "open") : ER_ENOMEM;
    if (rc == ER_EIO || rc == ER_ECORRUPT) rc = ER_EUNAVAILABLE;
    er__errmsg(errmsg, size, "cannot open '%s': %s", sq->path,
               sq->db ? sqlite3_errmsg(sq->db) : "out of memory");
    goto fail;
  }
  sqlite3_busy_handler(sq->db, er__sq_busy_handler, sq);
  rc = prepare_file(sq, errmsg, size);
  if (!rc) rc = er__sq_wake_init(sq);
  if (!rc) rc = er__sq_data_version(sq, &sq->dv_seen);
  if (rc == ER_ECORRUPT) er__sq_file_problem(sq->path, errmsg, size); /* says it better */
  if (rc) {
    if (errmsg && !*errmsg) er__errmsg(errmsg, size, "'%s': %s", sq->path, sq->base.last_error);
    goto fail;
  }
  *out = &sq->base;
  return 0;
fail:
  sq_close(&sq->base);
  return rc;
}

static void sq_close(er_store_t *s) {
  er_sq_t *sq = er__sq(s);
  if (!sq) return;
  er__sq_wake_close(sq);
  er__sq_counts_free(sq);
  for (size_t i = 0; i < sq->nstmts; i++) sqlite3_finalize(sq->stmts[i].st);
  er_free(sq->stmts);
  if (sq->db) sqlite3_close_v2(sq->db);
  er_free(sq->path);
  er_free(sq);
}

static const er_store_ops_t g_ops = {
    .version = ER_STORE_OPS_VERSION,
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .enqueue = er__sq_enqueue,
    .reserve = er__sq_reserve,
    .renew = er__sq_renew,
    .complete = er__sq_complete,
    .progress = er__sq_progress,
    .get = er__sq_get,
    .revoke = er__sq_revoke,
    .purge = er__sq_purge,
    .maintain = er__sq_maintain,
    .heartbeat = er__sq_heartbeat,
    .worker_gone = er__sq_worker_gone,
    .workers = er__sq_workers,
    .stats = er__sq_stats,
    .list_tasks = er__sq_list_tasks,
    .wakeup_fd = er__sq_wakeup_fd,
    .drain_wakeups = er__sq_drain_wakeups,
    .wait_change = er__sq_wait_change,
    .apply = er__sq_apply,
    .doc_get = er__sq_doc_get,
    .doc_list = er__sq_doc_list,
    .counter_get = er__sq_counter_get,
    .watch = er__sq_watch,
    .read_wakeups = er__sq_read_wakeups,
    .next_due = er__sq_next_due,
};

static const char *const g_options[] = {"sync", "busy_ms", "mode", NULL};

const er__store_backend_t er__sqlite_backend = {&g_ops, g_options};
