/* A prefork child's stdout and stderr. They are pipes the worker's loop
 * reads, never the worker's own fds: a task that prints while the worker's
 * stdout is a pipe nobody reads, or a terminal that is stopped, would block
 * in write() and hold its slot forever. Lines go to the worker's log (warn
 * level, like Celery's redirected stdout), prefixed with the task, cut at
 * ER__OUT_LINE_MAX, control characters escaped, at most ER__OUT_LINES_PER_S
 * a second per child; what is over the rate, or would block the log (its
 * stderr full), is dropped and counted, and the count logged later. With a
 * task output file (opts.task_output) the lines are appended there instead. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <unistd.h>

#include "errand/common.h"
#include "queue/prefork.h"

#define DRAIN_MAX (1 << 20) /* a drain reads at most this: a flood goes on being read by the loop */

int er__out_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) < 0 ? ER_ESYS : 0; }

void er__out_child_setup(int out_fd, int err_fd) {
  __fpurge(stdout);
  __fpurge(stderr);
  dup2(out_fd, STDOUT_FILENO);
  dup2(err_fd, STDERR_FILENO);
  close(out_fd);
  close(err_fd);
  setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Whether a line written to the log now would not block. The log writes to
 * stderr (er_log); a full pipe or a stopped terminal there says no. */
static bool log_ready(const er__out_t *o) {
  if (o->sink >= 0) return true; /* a file */
  struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* One line to the log, or appended to the task output file in one write. */
ER_PRINTF(2, 3) static void say(const er__out_t *o, const char *fmt, ...) {
  char line[1100];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (o->sink < 0) {
    er_log(ER_LOG_WARN, "%s", line);
    return;
  }
  size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
  line[len++] = '\n';
  if (write(o->sink, line, len) < 0) {} /* a full disk: the line is lost */
}

void er__out_note(er__out_t *o) {
  er__out_rate_t *r = o->rate;
  if (!r->dropped || !log_ready(o)) return;
  char who[300];
  o->label(o->ud, who, sizeof who);
  say(o, "%s: %llu lines of output dropped (over %d lines/s, or the log was full)", who,
      (unsigned long long)r->dropped, ER__OUT_LINES_PER_S);
  r->dropped = 0;
}

/* The line in o->line, escaped, to the log, if the rate and the log allow. */
static void emit(er__out_t *o, bool cut) {
  er__out_rate_t *r = o->rate;
  uint64_t now = er_now_mono_ms();
  if (now - r->window_ms >= 1000) {
    r->window_ms = now;
    r->lines = 0;
    er__out_note(o);
  }
  if (r->lines >= ER__OUT_LINES_PER_S || !log_ready(o)) {
    r->dropped++;
    return;
  }
  r->lines++;
  char text[ER__OUT_LINE_MAX * 4 + 1];
  size_t n = 0;
  for (size_t i = 0; i < o->len; i++) {
    unsigned char ch = (unsigned char)o->line[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      n += (size_t)snprintf(text + n, sizeof text - n, "\\x%02x", ch);
    else
      text[n++] = (char)ch;
  }
  text[n] = 0;
  char who[300];
  o->label(o->ud, who, sizeof who);
  say(o, "%s %s: %s%s", who, o->stream, text, cut ? " [line cut]" : "");
}

/* Splits n bytes of output into lines. */
static void take(er__out_t *o, const char *p, size_t n) {
  while (n) {
    const char *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) : n;
    if (!o->cut) {
      size_t room = ER__OUT_LINE_MAX - o->len, c = k < room ? k : room;
      memcpy(o->line + o->len, p, c);
      o->len += c;
      if (k > c) {
        /* Too long: what fits goes out now, the rest up to '\n' is skipped. */
        emit(o, true);
        o->len = 0;
        o->cut = true;
      }
    }
    if (nl) {
      if (!o->cut) emit(o, false);
      o->len = 0;
      o->cut = false;
      k++;
    }
    p += k;
    n -= k;
  }
}

/* take() copies what it keeps; one per thread, as workers embedded in one
 * process each have a loop thread. */
static _Thread_local char g_chunk[65536];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  *buf = uv_buf_init(g_chunk, sizeof g_chunk);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  er__out_t *o = s->data;
  if (nread < 0) {
    uv_read_stop(s); /* the child is gone: its answer socket says so too */
    return;
  }
  take(o, buf->base, (size_t)nread);
}

int er__out_start(er__out_t *o, uv_loop_t *loop, int fd) {
  o->fd = fd;
  o->len = 0;
  o->cut = false;
  int rc = uv_pipe_init(loop, &o->pipe, 0);
  if (rc == 0) {
    o->pipe.data = o;
    rc = uv_pipe_open(&o->pipe, fd);
  }
  if (rc == 0) rc = uv_read_start((uv_stream_t *)&o->pipe, on_alloc, on_read);
  return rc < 0 ? ER_ESYS : 0;
}

void er__out_drain(er__out_t *o) {
  if (o->fd < 0) return;
  size_t total = 0;
  /* uv_pipe_open made the fd non-blocking: this stops at what is there. */
  while (total < DRAIN_MAX) {
    ssize_t got = read(o->fd, g_chunk, sizeof g_chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    take(o, g_chunk, (size_t)got);
    total += (size_t)got;
  }
  if (o->len && !o->cut) emit(o, false);
  o->len = 0;
  o->cut = false;
}

void er__out_close(er__out_t *o, uv_close_cb cb) {
  o->fd = -1;
  uv_close((uv_handle_t *)&o->pipe, cb);
}
