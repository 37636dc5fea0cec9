/* The prefork pool's private pieces: the child's side (prefork_child.c) and
 * the children's stdout and stderr, read by the worker (prefork_output.c). */
#ifndef ER_QUEUE_PREFORK_H
#define ER_QUEUE_PREFORK_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* ---- the child (prefork_child.c) ---- */

/* Serves jobs read from fd until it closes; results over max_result bytes
 * (0: the default) fail their task. Returns the child's exit code. */
int er__child_run(int fd, const char *store_url, size_t max_result);
/* er__child_run with the default limit. */
int er__child_main(int fd, const char *store_url);
int er__child_next_seq(int seq);
void er__child_revoke_set(sigset_t *set);
int er__child_revoke(pid_t pid, int seq);

/* ---- a child's output (prefork_output.c) ---- */

#define ER__OUT_LINE_MAX 800     /* bytes of a line forwarded; the rest is cut */
#define ER__OUT_LINES_PER_S 100  /* lines forwarded per child and second */

/* Shared by a child's two streams: lines forwarded in the current second,
 * and lines dropped (over the rate, or the log would block) not yet noted. */
typedef struct er__out_rate {
  uint64_t window_ms;
  unsigned lines;
  uint64_t dropped;
} er__out_rate_t;

/* Who wrote a line, for its prefix: "task add[<id>]", "worker child 123". */
typedef void (*er__out_label_fn)(void *ud, char *buf, size_t size);

typedef struct er__out {
  uv_pipe_t pipe;
  int fd;             /* the worker's end; -1 when closed */
  const char *stream; /* "stdout" or "stderr" */
  char line[ER__OUT_LINE_MAX];
  size_t len;
  bool cut; /* the line was too long: what is left of it is skipped */
  er__out_rate_t *rate;
  er__out_label_fn label;
  void *ud;
} er__out_t;

/* Makes the pipe for one stream: fds[0] for the worker, fds[1] for the
 * child (both close-on-exec). */
int er__out_pipe(int fds[2]);
/* In a forked child: stdout and stderr become out_fd and err_fd, stdout
 * line-buffered (what the worker's stdio held before the fork is dropped,
 * not written twice). */
void er__out_child_setup(int out_fd, int err_fd);
/* Starts reading fd on loop; o->stream, rate, label and ud are set. */
int er__out_start(er__out_t *o, uv_loop_t *loop, int fd);
/* Forwards what the pipe holds now, and a last line without its newline:
 * called when a task ends (the child flushed its output before answering)
 * or the child died, so their lines carry that task's name. */
void er__out_drain(er__out_t *o);
/* Logs "<label>: N lines of output dropped" when lines were dropped. */
void er__out_note(er__out_t *o);
/* Stops reading and closes; cb as uv_close's. */
void er__out_close(er__out_t *o, uv_close_cb cb);

#endif
