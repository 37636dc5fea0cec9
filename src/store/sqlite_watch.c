/* Precise wake-ups for the SQLite store, and the next due time.
 *
 * A handle that watches stops watching the directory (every commit) and
 * watches only the bells it asked for (sqlite_wake.c): one per queue, the
 * finished bell, the control bell. It makes those files, so that ringers find
 * them. Which tasks finished is not carried by the bell: every finish appends
 * the task's id to the finished log (a trigger, in the same transaction), and
 * read_wakeups lists the entries after the last one this handle reported. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "store/sqlite_internal.h"

/* Makes the bell file (if needed) and watches it into *out. */
static int add_bell(er_sq_t *sq, const char *suffix, uint64_t hash, er_sq_bell_kind_t kind,
                    er_sq_wd_t *out) {
  char path[PATH_MAX];
  er__sq_bell_path(sq, suffix, hash, path, sizeof path);
  int fd, rc = er__sq_open_bell(sq, path, O_RDONLY, true, &fd);
  if (rc) return rc;
  if (fd >= 0) close(fd);
  int wd = fd >= 0 ? inotify_add_watch(sq->ifd, path, IN_MODIFY) : -1;
  if (wd < 0) {
    er__store_set_error(&sq->base, "watch: cannot watch the doorbell %s: %s", path,
                        strerror(errno));
    return ER_ESYS;
  }
  *out = (er_sq_wd_t){wd, kind};
  return 0;
}

static bool has_wd(const er_sq_wd_t *wds, size_t n, int wd) {
  for (size_t i = 0; i < n; i++)
    if (wds[i].wd == wd) return true;
  return false;
}

static const char SQL_FIN_MAX[] = "SELECT coalesce(max(seq), 0) FROM finished";

static int fin_max(er_sq_t *sq, int64_t *out) {
  return er__sq_query_i64(sq, SQL_FIN_MAX, "read_wakeups", out);
}

int er__sq_watch(er_store_t *s, const er_watch_t *w) {
  er_sq_t *sq = er__sq(s);
  er_sq_wd_t *wds = er_calloc(w->nqueues + 2, sizeof *wds);
  if (!wds) return ER_ENOMEM;
  size_t n = 0;
  int rc = 0;
  if (sq->ifd >= 0) {
    for (size_t i = 0; !rc && i < w->nqueues; i++)
      rc = add_bell(sq, NULL, er__sq_queue_hash(w->queues[i]), ER_SQ_BELL_QUEUE, &wds[n++]);
    if (!rc && w->finished) rc = add_bell(sq, "done", 0, ER_SQ_BELL_DONE, &wds[n++]);
    if (!rc && w->control) rc = add_bell(sq, "ctl", 0, ER_SQ_BELL_CTL, &wds[n++]);
  }
  if (rc) {
    /* Watches added for the new set that are not in the old one report
     * nothing (their descriptors are unknown) until the next watch. */
    er_free(wds);
    return rc;
  }
  /* What the old set saw so far still counts. */
  er__sq_drain(sq);
  for (size_t i = 0; sq->ifd >= 0 && i < sq->nwds; i++)
    if (!has_wd(wds, n, sq->wds[i].wd)) inotify_rm_watch(sq->ifd, sq->wds[i].wd);
  if (sq->ifd >= 0 && sq->dir_wd >= 0) inotify_rm_watch(sq->ifd, sq->dir_wd);
  sq->dir_wd = -1;
  er_free(sq->wds);
  sq->wds = wds;
  sq->nwds = n;
  /* The record starts now, so that a waiter who watches, then reads a task's
   * state, then waits, cannot miss a finish between the two; watching
   * finished already: keep the record going, lose no id. */
  if (w->finished && !(sq->watching && sq->w_finished))
    sq->fin_started = fin_max(sq, &sq->fin_seen) == 0;
  sq->watching = true;
  sq->w_finished = w->finished;
  sq->w_control = w->control;
  return 0;
}

/* ---- the finished log ------------------------------------------------------ */

static const char SQL_FIN_SINCE[] =
    "SELECT seq, id FROM finished WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/* The ids after sq->fin_seen. Entries pruned before this handle read them, or
 * more than ER_SQ_FINISHED_LIST_MAX, give finished_overflow and no list. */
static int read_finished(er_sq_t *sq, er_wakeups_t *out) {
  if (!sq->fin_started) {
    /* watch could not start the record: what finished since is unknown */
    int rc = fin_max(sq, &sq->fin_seen);
    sq->fin_started = rc == 0;
    out->finished_overflow = sq->fin_started;
    return rc;
  }
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, SQL_FIN_SINCE, &st);
  if (rc) return rc;
  char **ids = NULL;
  size_t n = 0, cap = 0;
  int64_t last = sq->fin_seen;
  bool overflow = false;
  sqlite3_bind_int64(st, 1, sq->fin_seen);
  sqlite3_bind_int64(st, 2, ER_SQ_FINISHED_LIST_MAX + 1);
  while ((rc = er__sq_step(sq, st, "read_wakeups")) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    if (seq != last + 1 || n == ER_SQ_FINISHED_LIST_MAX) overflow = true;
    last = seq;
    if (overflow) break;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **p = er_realloc(ids, cap * sizeof *p);
      if (!p) break;
      ids = p;
    }
    if (!(ids[n] = er_strdup((const char *)sqlite3_column_text(st, 1)))) break;
    n++;
  }
  er__sq_done(st);
  if (rc == SQLITE_ROW && !overflow) rc = ER_ENOMEM;
  if (overflow) rc = fin_max(sq, &last);
  if (rc < 0 || overflow) {
    for (size_t i = 0; i < n; i++) er_free(ids[i]);
    er_free(ids);
    ids = NULL;
    n = 0;
  }
  if (rc < 0) return rc;
  out->finished = ids;
  out->nfinished = n;
  out->finished_overflow = overflow;
  sq->fin_seen = last;
  return 0;
}

int er__sq_read_wakeups(er_store_t *s, er_wakeups_t *out) {
  er_sq_t *sq = er__sq(s);
  er__sq_drain(sq);
  if (!sq->watching) {
    /* woken by every change, as before: anything may have happened */
    out->work = out->control = out->finished_overflow = sq->got_work;
  } else if (sq->ifd < 0) {
    /* No inotify: the caller polls, and every poll may find anything. */
    out->work = true;
    out->control = sq->w_control;
  } else {
    out->work = sq->got_work && sq->nwds > 0;
    out->control = sq->got_control && sq->w_control;
  }
  int rc = sq->watching && sq->w_finished ? read_finished(sq, out) : 0;
  if (rc) return rc;
  sq->got_work = sq->got_control = false;
  return 0;
}

/* ---- next_due ----------------------------------------------------------------
 * Both are the first entry of a partial index: tasks_delayed (queue, eta_ms)
 * per queue, tasks_lease (lease_until_ms) over all queues. */

static const char SQL_NEXT_ETA[] =
    "SELECT min(eta_ms) FROM tasks WHERE queued = 1 AND ready = 0 AND queue = ?1";
static const char SQL_NEXT_LEASE_END[] =
    "SELECT min(lease_until_ms) FROM tasks WHERE state = " ER__SQL_STARTED;

static int earliest(er_sq_t *sq, const char *sql, const char *queue, int64_t *due) {
  sqlite3_stmt *st;
  int rc = er__sq_prep(sq, sql, &st);
  if (rc) return rc;
  if (queue) er__sq_bind_text(st, 1, queue);
  rc = er__sq_step(sq, st, "next_due");
  if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
    int64_t t = sqlite3_column_int64(st, 0);
    if (!*due || t < *due) *due = t;
  }
  er__sq_done(st);
  return rc < 0 ? rc : 0;
}

int er__sq_next_due(er_store_t *s, const char *const *queues, size_t nqueues, int64_t *due_ms) {
  er_sq_t *sq = er__sq(s);
  int rc = earliest(sq, SQL_NEXT_LEASE_END, NULL, due_ms);
  for (size_t i = 0; !rc && i < nqueues; i++) rc = earliest(sq, SQL_NEXT_ETA, queues[i], due_ms);
  return rc;
}
