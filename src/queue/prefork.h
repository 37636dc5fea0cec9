/* The prefork pool's private pieces: the child's side (prefork_child.c) and
 * the children's stdout and stderr, read by the worker (prefork_output.c). */
#ifndef ER_QUEUE_PREFORK_H
#define ER_QUEUE_PREFORK_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "queue/pool.h"

/* ---- the child (prefork_child.c) ---- */

/* Serves jobs read from fd until it closes; results over max_result bytes
 * (0: the default) fail their task. Returns the child's exit code. */
int er__child_run(int fd, const char *store_url, const char *base_url, const uint8_t *secret,
                  size_t max_result);
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
  int sink;           /* a file the lines are appended to; -1: the log */
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

/* ---- the pool (pool_prefork.c) and its children's answers (prefork_answer.c) ---- */

#define ER__PREFORK_MAX_DEPTH 8

typedef struct child {
  struct prefork *pool;
  pid_t pid;
  int fd;
  uv_pipe_t pipe;
  uv_timer_t timer; /* the running job's hard time limit, then revocation grace */
  er__out_t out[2]; /* its stdout and stderr */
  er__out_rate_t rate;
  int open; /* handles not closed yet (the timer, pipe, out[]): freed at 0 */
  /* Jobs written to the child, in order: jobs[0] runs, the next ones wait in
   * the socket (up to the prefetch, at most ER__PREFORK_MAX_DEPTH) so the
   * child goes on while the worker is busy with the store. */
  er__job_t *jobs[ER__PREFORK_MAX_DEPTH];
  int seqs[ER__PREFORK_MAX_DEPTH]; /* each job's number in the child, for its revoke */
  int njobs;
  int seq; /* the number of the last job written to this child */
  char *buf;
  size_t len, cap;
  size_t scanned; /* bytes at the start of buf known to hold no newline */
  size_t skipped; /* bytes of an answer too long to keep, dropped so far */
  er__kill_t kill; /* why we killed it, if we did */
  bool closing;
  bool abandoned; /* it answered wrong: killed, and what it holds goes to others */
  bool pool_gone; /* the pool is being destroyed: do not fork again */
} child_t;

typedef struct prefork {
  er__pool_t base;
  child_t **children;
  int n;
  int depth; /* jobs written to a child at once: the prefetch, at most ER__PREFORK_MAX_DEPTH */
  er__job_t **waiting; /* jobs with no child to take them yet (one was replaced) */
  size_t nwaiting;
  bool stopping;
  int out_fd; /* the task output file (opts.task_output), or -1 */
} prefork_t;

/* The job at the head of c's queue has started (pool_prefork.c). */
void er__prefork_start_head(child_t *c);
/* c's socket closed or failed: reap it, fail or hand on its jobs, replace it. */
void er__prefork_child_gone(child_t *c);
/* The reader of c's answer socket (prefork_answer.c). */
void er__prefork_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void er__prefork_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

#endif
