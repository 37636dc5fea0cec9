/* Wake-ups across processes without polling the database.
 *
 * Every connection that commits a change then writes one byte to a doorbell
 * file beside the database, PATH-bell, and watchers wait for inotify to report
 * that write. The bell is rung after COMMIT has returned, so whoever wakes
 * sees the change: the writes to PATH-wal itself come before the WAL index
 * makes the commit visible, and a watcher woken by them could look too soon
 * and then wait for nothing. A handle that watches everything watches the
 * database's DIRECTORY, not the bell file, so that a bell created (or
 * re-created) after it started is seen too; events for other files in the
 * directory are ignored.
 *
 * Precise bells (for a handle that called er_store_watch, sqlite_watch.c): a
 * commit also rings PATH-bell-q-HASH for each queue it gave work to (HASH: 16
 * hex digits of the name's FNV-1a hash; two names that share one only wake
 * each other's watchers), PATH-bell-done when it finished tasks and
 * PATH-bell-ctl when it revoked a running one. Those files are made by their
 * watchers; a ringer writes only to those that exist.
 *
 * Our own commits ring the bell as well, so er_store_wait_change decides by
 * PRAGMA data_version, which changes exactly when another connection has
 * committed: an event only tells it when to look. Without inotify (the
 * per-user limit reached, a file system that has none, or a bell that cannot
 * be created) it looks every 10 ms instead. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/sqlite_internal.h"

static const char SQL_DATA_VERSION[] = "PRAGMA data_version";

int er__sq_data_version(er_sq_t *sq, int64_t *out) {
  return er__sq_query_i64(sq, SQL_DATA_VERSION, "data_version", out);
}

int er__sq_wake_init(er_sq_t *sq) {
  const char *slash = strrchr(sq->path, '/');
  const char *base = slash ? slash + 1 : sq->path;
  char dir[PATH_MAX], bell[PATH_MAX];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == sq->path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - sq->path), sq->path);
  size_t n = strlen(base) + sizeof "-bell";
  if (!(sq->bell_name = er_malloc(n))) return ER_ENOMEM;
  snprintf(sq->bell_name, n, "%s-bell", base);
  snprintf(bell, sizeof bell, "%s-bell", sq->path);
  int rc = er__sq_open_bell(sq, bell, O_RDWR, true, &sq->bell_fd);
  if (rc) return rc;
  sq->ifd = sq->bell_fd >= 0 ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
  if (sq->ifd >= 0 &&
      (sq->dir_wd = inotify_add_watch(sq->ifd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO)) < 0) {
    close(sq->ifd);
    sq->ifd = -1;
  }
  if (sq->ifd < 0)
    er_log(ER_LOG_DEBUG, "store %s: no inotify or doorbell (%s); waiting for changes by polling",
           sq->path, strerror(errno));
  return 0;
}

int er__sq_create_new(const char *path, int flags, unsigned mode) {
  int fd = open(path, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
  /* The umask may have taken bits away; the option asked for exactly these.
   * A failed fchmod leaves fewer bits, never more. */
  if (fd >= 0) (void)fchmod(fd, (mode_t)mode);
  return fd;
}

/* O_NONBLOCK: a FIFO planted as a bell must not block the open; a regular
 * file ignores it. */
int er__sq_open_bell(er_sq_t *sq, const char *path, int flags, bool create, int *out) {
  *out = -1;
  int fd = create ? er__sq_create_new(path, flags | O_NONBLOCK, sq->mode) : -1;
  if (fd < 0 && (!create || errno == EEXIST))
    fd = open(path, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno != ELOOP) return 0; /* no bell: the caller copes */
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) {
    *out = fd;
    return 0;
  }
  if (fd >= 0) close(fd);
  er__store_set_error(&sq->base,
                      "doorbell %s is not a regular file owned by this user; refusing it", path);
  return ER_EINVAL;
}

uint64_t er__sq_queue_hash(const char *queue) {
  uint64_t h = 14695981039346656037ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)queue; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

void er__sq_bell_path(const er_sq_t *sq, const char *suffix, uint64_t hash, char *out,
                      size_t size) {
  if (suffix) snprintf(out, size, "%s-bell-%s", sq->path, suffix);
  else snprintf(out, size, "%s-bell-q-%016llx", sq->path, (unsigned long long)hash);
}

int er__sq_owe_queue(er_sq_t *sq, const char *queue) {
  uint64_t h = er__sq_queue_hash(queue);
  for (size_t i = 0; i < sq->nowed_q; i++)
    if (sq->owed_q[i] == h) return 0;
  if (sq->nowed_q == sq->capowed_q) {
    size_t cap = sq->capowed_q ? sq->capowed_q * 2 : 8;
    uint64_t *p = er_realloc(sq->owed_q, cap * sizeof *p);
    if (!p) return ER_ENOMEM;
    sq->owed_q = p;
    sq->capowed_q = cap;
  }
  sq->owed_q[sq->nowed_q++] = h;
  return 0;
}

void er__sq_owe_done(er_sq_t *sq) { sq->owed_done = true; }
void er__sq_owe_ctl(er_sq_t *sq) { sq->owed_ctl = true; }

void er__sq_owe_clear(er_sq_t *sq) {
  sq->nowed_q = 0;
  sq->owed_done = sq->owed_ctl = false;
}

/* The same byte each time: the file never grows, and each write is an
 * IN_MODIFY for the watchers. */
static void ring_fd(er_sq_t *sq, int fd) {
  if (fd >= 0 && pwrite(fd, "!", 1, 0) < 0)
    er_log(ER_LOG_DEBUG, "store %s: cannot ring a doorbell: %s", sq->path, strerror(errno));
}

/* A bell that exists (its watcher made it), opened for writing; -1 when there
 * is none. Never created here: a queue nobody watches needs no file. */
static int open_bell(er_sq_t *sq, const char *suffix, uint64_t hash) {
  char path[PATH_MAX];
  er__sq_bell_path(sq, suffix, hash, path, sizeof path);
  int fd;
  /* Past the commit nothing can fail: a refused bell is only not rung. */
  if (er__sq_open_bell(sq, path, O_WRONLY, false, &fd))
    er_log(ER_LOG_WARN, "store %s: %s", sq->path, sq->base.last_error);
  return fd;
}

static void ring_queue(er_sq_t *sq, uint64_t h) {
  for (size_t i = 0; i < sq->nqbells; i++)
    if (sq->qbells[i].hash == h) {
      ring_fd(sq, sq->qbells[i].fd);
      return;
    }
  int fd = open_bell(sq, NULL, h);
  if (fd < 0) return;
  ring_fd(sq, fd);
  if (sq->nqbells == ER_SQ_BELL_CACHE) { /* full: the oldest goes */
    close(sq->qbells[0].fd);
    memmove(sq->qbells, sq->qbells + 1, (ER_SQ_BELL_CACHE - 1) * sizeof sq->qbells[0]);
    sq->nqbells--;
  }
  sq->qbells[sq->nqbells++] = (er_sq_bell_t){h, fd};
}

static void ring_named(er_sq_t *sq, int *fd, const char *suffix) {
  if (*fd < 0) *fd = open_bell(sq, suffix, 0);
  ring_fd(sq, *fd);
}

void er__sq_ring(er_sq_t *sq) {
  ring_fd(sq, sq->bell_fd);
  for (size_t i = 0; i < sq->nowed_q; i++) ring_queue(sq, sq->owed_q[i]);
  if (sq->owed_done) ring_named(sq, &sq->done_fd, "done");
  if (sq->owed_ctl) ring_named(sq, &sq->ctl_fd, "ctl");
  er__sq_owe_clear(sq);
}

void er__sq_wake_close(er_sq_t *sq) {
  if (sq->ifd >= 0) close(sq->ifd);
  if (sq->bell_fd >= 0) close(sq->bell_fd);
  if (sq->done_fd >= 0) close(sq->done_fd);
  if (sq->ctl_fd >= 0) close(sq->ctl_fd);
  for (size_t i = 0; i < sq->nqbells; i++) close(sq->qbells[i].fd);
  sq->ifd = sq->bell_fd = sq->done_fd = sq->ctl_fd = -1;
  sq->nqbells = 0;
  er_free(sq->bell_name);
  er_free(sq->owed_q);
  er_free(sq->wds);
}

/* One event for a handle that watches precisely: which bell rang. A bell
 * removed (IN_IGNORED) or an overflowed event queue may hide anything. */
static bool precise_event(er_sq_t *sq, const struct inotify_event *ev) {
  if (ev->mask & IN_Q_OVERFLOW) {
    sq->got_work = sq->got_control = true;
    return true;
  }
  for (size_t i = 0; i < sq->nwds; i++) {
    if (sq->wds[i].wd != ev->wd) continue;
    if (ev->mask & IN_IGNORED) sq->got_work = sq->got_control = true;
    else if (sq->wds[i].kind == ER_SQ_BELL_QUEUE) sq->got_work = true;
    else if (sq->wds[i].kind == ER_SQ_BELL_CTL) sq->got_control = true;
    return true;
  }
  return false;
}

bool er__sq_drain(er_sq_t *sq) {
  bool hit = false;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = sq->ifd >= 0 ? read(sq->ifd, buf, sizeof buf) : 0;
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return hit;
    }
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      if (sq->watching) {
        if (precise_event(sq, ev)) hit = true;
      } else if ((ev->mask & IN_Q_OVERFLOW) ||
                 (ev->len && strcmp(ev->name, sq->bell_name) == 0)) {
        hit = sq->got_work = sq->got_control = true;
      }
      p += sizeof *ev + ev->len;
    }
  }
}

int er__sq_wakeup_fd(er_store_t *s) { return er__sq(s)->ifd; }

void er__sq_drain_wakeups(er_store_t *s) {
  er_sq_t *sq = er__sq(s);
  er__sq_drain(sq);
}

/* True (and the new version remembered) when another connection committed
 * since a change was last reported. A failing check counts as a change: the
 * caller will look and see the error itself. */
static bool changed(er_sq_t *sq) {
  int64_t dv = sq->dv_seen;
  if (er__sq_data_version(sq, &dv)) return true;
  if (dv != sq->dv_seen) {
    sq->dv_seen = dv;
    return true;
  }
  return false;
}

int er__sq_wait_change(er_store_t *s, int timeout_ms) {
  er_sq_t *sq = er__sq(s);
  uint64_t start = er_now_mono_ms();
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms;
  uint64_t settle_until = 0; /* after an event: look every millisecond until then */
  er__sq_drain(sq); /* older events: data_version speaks for them */
  for (;;) {
    if (changed(sq)) return 0;
    uint64_t now = er_now_mono_ms();
    if (now >= deadline) {
      er__store_set_error(s, "no change within %d ms", timeout_ms);
      return ER_ETIMEDOUT;
    }
    uint64_t left = deadline - now;
    /* Right after an event the commit is usually a few microseconds from
     * visible: look again every 100 us, not every millisecond. */
    uint64_t slice_us;
    if (sq->ifd < 0) slice_us = (left < 10 ? left : 10) * 1000;
    else if (now < settle_until) slice_us = 100;
    else slice_us = left > (uint64_t)INT_MAX ? (uint64_t)INT_MAX * 1000 : left * 1000;
    struct timespec ts = {(time_t)(slice_us / 1000000), (long)(slice_us % 1000000) * 1000};
    struct pollfd p = {.fd = sq->ifd, .events = POLLIN};
    int r = ppoll(sq->ifd >= 0 ? &p : NULL, sq->ifd >= 0 ? 1 : 0, &ts, NULL);
    if (r > 0 && er__sq_drain(sq)) settle_until = er_now_mono_ms() + 50;
  }
}
