/* The prefork pool: supervised child processes, forked from the worker so
 * they have its task libraries. The worker writes a job as one JSON line on a
 * socket; the child runs it and answers with one line. A child that crashes,
 * aborts or is killed (hard time limit, revocation) closes its socket: the
 * worker reaps it, fails its task naming the signal, and forks a new one. An
 * answer the worker cannot read (not JSON, longer than the result limit
 * allows) fails the task it was for. A child's stdout and stderr are pipes
 * the worker reads into its log (prefork_output.c). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/pool.h"
#include "queue/prefork.h"

#define MAX_DEPTH 8
/* An answer is the result plus a few fields (a message is at most 1 KiB):
 * a line longer than the result limit and this is not one. */
#define ANSWER_SLACK 65536
#define BUF_KEEP 131072 /* a reader's buffer shrinks back to this after a big answer */

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
   * the socket (up to the prefetch, at most MAX_DEPTH) so the child goes on
   * while the worker is busy with the store. */
  er__job_t *jobs[MAX_DEPTH];
  int seqs[MAX_DEPTH]; /* each job's number in the child, for its revoke */
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
  int depth;           /* jobs written to a child at once: the prefetch, at most MAX_DEPTH */
  er__job_t **waiting; /* jobs with no child to take them yet (one was replaced) */
  size_t nwaiting;
  bool stopping;
} prefork_t;

static int pool_capacity(const prefork_t *p) { return p->n * p->depth; }
static int requeue(prefork_t *p, er__job_t *j);

/* ---- spawning ---- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void close_fds(const int *fds, int n) {
  for (int i = 0; i < n; i++) close(fds[i]);
}

static int spawn(prefork_t *p, child_t *c) {
  /* the answer socket, then stdout's and stderr's pipes: the worker's end
   * first in each pair */
  int fds[6];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return ER_ESYS;
  if (er__out_pipe(fds + 2) < 0) {
    close_fds(fds, 2);
    return ER_ESYS;
  }
  if (er__out_pipe(fds + 4) < 0) {
    close_fds(fds, 4);
    return ER_ESYS;
  }
  pid_t parent = getpid();
  sigset_t revoke, mask;
  er__child_revoke_set(&revoke);
  pthread_sigmask(SIG_BLOCK, &revoke, &mask);
  er__sthread_hold(p->base.io);
  pid_t pid = fork();
  if (pid > 0 || pid < 0) {
    er__sthread_release(p->base.io);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
  }
  if (pid < 0) {
    close_fds(fds, 6);
    return ER_ESYS;
  }
  if (pid == 0) {
    /* Die with the worker, even if it is killed with -9. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    close(fds[0]);
    close(fds[2]);
    close(fds[4]);
    for (int i = 0; i < p->n; i++) {
      child_t *o = p->children[i];
      if (!o || o == c || o->fd < 0) continue;
      close(o->fd);
      for (int k = 0; k < 2; k++)
        if (o->out[k].fd >= 0) close(o->out[k].fd);
    }
    er__out_child_setup(fds[3], fds[5]);
    _exit(er__child_run(fds[1], p->base.store_url, p->base.max_result));
  }
  close(fds[1]);
  close(fds[3]);
  close(fds[5]);
  c->pid = pid;
  c->fd = fds[0];
  c->len = c->scanned = c->skipped = 0;
  c->seq = 0;
  c->kill = ER__KILL_NONE;
  c->closing = c->abandoned = false;
  uv_loop_t *uv = er_loop_uv(p->base.loop);
  uv_pipe_init(uv, &c->pipe, 0);
  c->pipe.data = c;
  uv_pipe_open(&c->pipe, c->fd);
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
  er__out_start(&c->out[0], uv, fds[2]);
  er__out_start(&c->out[1], uv, fds[4]);
  c->open += 3;
  return 0;
}

/* ---- the child's answers ---- */

static void start_head(child_t *c);

/* The job at the head of c's queue is over: its output so far is its own. */
static er__job_t *pop_head(child_t *c) {
  er__job_t *j = c->jobs[0];
  for (int k = 0; k < 2; k++) er__out_drain(&c->out[k]);
  er__out_note(&c->out[0]);
  uv_timer_stop(&c->timer);
  c->njobs--;
  memmove(c->jobs, c->jobs + 1, (size_t)c->njobs * sizeof *c->jobs);
  memmove(c->seqs, c->seqs + 1, (size_t)c->njobs * sizeof *c->seqs);
  start_head(c);
  return j;
}

/* The head job fails with rc and msg: its answer could not be read. The
 * child is no longer trusted to answer in step: it is killed, the jobs
 * behind go to other children (on_child_gone), and none is written to it. */
static void fail_head(child_t *c, int rc, const char *msg) {
  er__job_t *j = pop_head(c);
  j->out.rc = rc;
  j->out.message = er_strdup(msg);
  er_log(ER_LOG_WARN, "task %s[%s]: %s", j->rec->task, j->rec->id, msg);
  c->abandoned = true;
  uv_timer_stop(&c->timer);
  kill(c->pid, SIGKILL);
  er__worker_job_done(c->pool->base.w, j);
}

/* One line from the child (len bytes, NUL-terminated): the answer for the
 * job at the head of its queue. A line without an id comes from a child
 * that could not read its job; one with another job's id is stale (logged,
 * dropped). */
static void take_answer(child_t *c, const char *line, size_t len) {
  if (!c->njobs) {
    er_log(ER_LOG_ERROR, "prefork: unexpected line from child %d", (int)c->pid);
    return;
  }
  er__job_t *j = c->jobs[0];
  json_error_t jerr;
  /* A NUL in a result's string is carried as \u0000: read it back intact. */
  json_t *a = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
  if (!json_is_object(a)) {
    char msg[300];
    snprintf(msg, sizeof msg, "worker child sent an unreadable answer: %s",
             a ? "not an object" : jerr.text);
    json_decref(a);
    fail_head(c, ER_EPARSE, msg);
    return;
  }
  const char *id = json_string_value(json_object_get(a, "id"));
  if (id && strcmp(id, j->rec->id) != 0) {
    er_log(ER_LOG_ERROR, "prefork: child %d answered for task %s, not %s", (int)c->pid, id,
           j->rec->id);
    json_decref(a);
    return;
  }
  pop_head(c);
  j->out.rc = (int)json_integer_value(json_object_get(a, "rc"));
  if (j->out.rc > 0) j->out.rc = ER_EFAIL;
  json_t *res = json_object_get(a, "result");
  if (j->out.rc == 0) j->out.result = json_incref(res ? res : json_null());
  const char *msg = json_string_value(json_object_get(a, "message"));
  if (msg) j->out.message = er_strdup(msg);
  j->out.retry = json_is_true(json_object_get(a, "retry"));
  j->out.countdown_ms = json_integer_value(json_object_get(a, "countdown"));
  json_decref(a);
  er__worker_job_done(c->pool->base.w, j);
}

/* A line longer than any answer, n bytes, dropped as it came. */
static void answer_too_long(child_t *c, size_t n) {
  if (!c->njobs) return;
  char msg[300];
  snprintf(msg, sizeof msg,
           "worker child sent an answer of %zu bytes, more than a result of %zu bytes needs "
           "(set --max-result-size / opts.max_result_bytes)",
           n, c->pool->base.max_result);
  fail_head(c, ER_ETOOBIG, msg);
}

static size_t line_max(const child_t *c) {
  size_t m = c->pool->base.max_result;
  return m > SIZE_MAX - ANSWER_SLACK ? SIZE_MAX : m + ANSWER_SLACK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  child_t *c = h->data;
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : BUF_KEEP;
    char *b = er_realloc(c->buf, cap);
    if (b) {
      c->buf = b;
      c->cap = cap;
    }
  }
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_child_gone(child_t *c);
static void child_ready(child_t *c);

/* Each byte is looked at once (a big answer comes in many reads: scanning
 * the whole buffer again on each made an 80 MiB result take seconds), and
 * what a line needs is kept only up to line_max. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_t *c = s->data;
  if (nread < 0) {
    on_child_gone(c);
    return;
  }
  c->len += (size_t)nread;
  size_t start = 0, pos = c->scanned;
  char *nl;
  while (!c->closing && (nl = memchr(c->buf + pos, '\n', c->len - pos))) {
    size_t end = (size_t)(nl - c->buf);
    *nl = '\0';
    if (c->skipped) {
      answer_too_long(c, c->skipped + (end - start));
      c->skipped = 0;
    } else {
      take_answer(c, c->buf + start, end - start);
    }
    start = pos = end + 1;
  }
  size_t rest = c->len - start;
  if (c->skipped || rest > line_max(c)) {
    c->skipped += rest;
    start = c->len;
    rest = 0;
  }
  memmove(c->buf, c->buf + start, rest);
  c->len = c->scanned = rest;
  if (c->cap > BUF_KEEP && c->len < BUF_KEEP / 2) {
    char *b = er_realloc(c->buf, BUF_KEEP);
    if (b) {
      c->buf = b;
      c->cap = BUF_KEEP;
    }
  }
}

static void describe_death(int status, const char *reason, char *buf, size_t size) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char *abbrev = sigabbrev_np(sig);
    snprintf(buf, size, "%s%sworker child killed by signal %d (SIG%s: %s)", reason ? reason : "",
             reason ? "; " : "", sig, abbrev ? abbrev : "?", strsignal(sig));
  } else {
    snprintf(buf, size, "%s%sworker child exited with status %d", reason ? reason : "",
             reason ? "; " : "", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
}

/* One of c's handles closed. With the pool gone the last frees it; else,
 * once the dead child's socket and pipes are closed (the timer stays), a
 * new child takes its place. */
static void handle_closed(child_t *c) {
  if (--c->open > (c->pool_gone ? 0 : 1)) return;
  if (c->pool_gone) {
    er_free(c->buf);
    er_free(c);
  } else if (spawn(c->pool, c) < 0) {
    er_log(ER_LOG_ERROR, "prefork: cannot fork a new child: %s", strerror(errno));
  } else {
    child_ready(c);
  }
}

static void on_pipe_closed(uv_handle_t *h) { handle_closed(h->data); }
static void on_out_closed(uv_handle_t *h) { handle_closed(((er__out_t *)h->data)->ud); }

/* Closes the child's socket and pipes (their fds are closed with them). */
static void close_streams(child_t *c) {
  c->fd = -1;
  uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
  for (int k = 0; k < 2; k++) er__out_close(&c->out[k], on_out_closed);
}

/* The child's socket closed: it died. Reap it, fail its task, replace it. */
static void on_child_gone(child_t *c) {
  if (c->closing) return;
  c->closing = true;
  uv_read_stop((uv_stream_t *)&c->pipe);
  uv_timer_stop(&c->timer);
  int status = 0;
  while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
  /* An abandoned child's jobs are not failed for its death: they go to
   * another child. */
  er__job_t *j = c->njobs && !c->abandoned ? c->jobs[0] : NULL;
  /* What it wrote before it died is the running job's. */
  for (int k = 0; k < 2; k++) er__out_drain(&c->out[k]);
  er__out_note(&c->out[0]);
  /* Jobs behind the one that ran never started: another child takes them. */
  for (int i = j ? 1 : 0; i < c->njobs; i++) requeue(c->pool, c->jobs[i]);
  c->njobs = 0;
  if (j) {
    char msg[512];
    describe_death(status, er__kill_text(c->kill), msg, sizeof msg);
    j->out.rc = c->kill == ER__KILL_HARD_LIMIT ? ER_ETIMEDOUT : ER_EFAIL;
    j->out.killed = c->kill;
    j->out.message = er_strdup(msg);
    j->out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (!c->pool->stopping) er_log(ER_LOG_WARN, "task %s: %s", j->rec->id, msg);
  }
  close_streams(c);
  if (j) er__worker_job_done(c->pool->base.w, j);
}

/* ---- jobs ---- */

static void on_hard_limit(uv_timer_t *t) {
  child_t *c = t->data;
  if (!c->njobs) return;
  c->kill = ER__KILL_HARD_LIMIT;
  kill(c->pid, SIGKILL);
}

static void on_revoke_grace(uv_timer_t *t) {
  child_t *c = t->data;
  if (!c->njobs) return;
  c->kill = ER__KILL_REVOKE;
  kill(c->pid, SIGKILL);
}

static void on_written(uv_write_t *req, int status) {
  free(req->data); /* from json_dumps */
  er_free(req);
}

/* Writes job j to child c. */
static int send_to(child_t *c, er__job_t *j) {
  json_t *msg = er__job_to_json(j->rec);
  char *line = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  json_decref(msg);
  if (!line) return ER_ENOMEM;
  size_t n = strlen(line);
  line[n] = '\n'; /* json_dumps left room: the NUL becomes the newline */
  uv_write_t *req = er_malloc(sizeof *req);
  if (!req) {
    free(line);
    return ER_ENOMEM;
  }
  req->data = line;
  uv_buf_t b = uv_buf_init(line, (unsigned)(n + 1));
  if (uv_write(req, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
    free(line);
    er_free(req);
    return ER_EIO;
  }
  c->seq = er__child_next_seq(c->seq);
  c->seqs[c->njobs] = c->seq;
  c->jobs[c->njobs++] = j;
  j->slot = c;
  if (c->njobs == 1)
    start_head(c);
  else
    j->started_wall_ms = 0; /* waits in the socket: reserved, not running yet */
  return 0;
}

/* The job at the head of c's queue has started (as far as the worker can
 * tell): its hard time limit runs from now, and a revoke that came while it
 * waited takes effect. */
static void revoke_head(child_t *c);
static void start_head(child_t *c) {
  if (!c->njobs) return;
  er__job_t *j = c->jobs[0];
  j->started_ms = er_now_mono_ms();
  j->started_wall_ms = er_now_wall_ms();
  int64_t hard = er__eff_hard_ms(j->rec, j->def);
  if (j->revoked)
    revoke_head(c);
  else if (hard > 0)
    uv_timer_start(&c->timer, on_hard_limit, (uint64_t)hard, 0);
}

/* The least busy live child with room, or NULL. */
static child_t *pick(prefork_t *p) {
  child_t *best = NULL;
  for (int i = 0; i < p->n; i++) {
    child_t *c = p->children[i];
    if (c->closing || c->abandoned || c->njobs >= p->depth) continue;
    if (!best || c->njobs < best->njobs) best = c;
    if (!c->njobs) break;
  }
  return best;
}

static int submit(er__pool_t *pool, er__job_t *j) {
  prefork_t *p = (prefork_t *)pool;
  child_t *c = pick(p);
  if (c) return send_to(c, j);
  /* Every child with room is being replaced (one just died): the job waits
   * for the new child. */
  return requeue(p, j);
}

static int requeue(prefork_t *p, er__job_t *j) {
  if (p->nwaiting == (size_t)pool_capacity(p)) return ER_EBUSY;
  j->started_wall_ms = 0; /* not running: waits for a child */
  p->waiting[p->nwaiting++] = j;
  return 0;
}

/* A new child is ready: give it the jobs that waited longest, if any. */
static void child_ready(child_t *c) {
  prefork_t *p = c->pool;
  while (p->nwaiting && c->njobs < p->depth) {
    er__job_t *j = p->waiting[0];
    memmove(p->waiting, p->waiting + 1, --p->nwaiting * sizeof *p->waiting);
    if (send_to(c, j) < 0) {
      j->out.rc = ER_EINTERNAL;
      j->out.message = er_strdup("cannot hand the task to a worker child");
      er__worker_job_done(p->base.w, j);
    }
  }
}

static void revoke_head(child_t *c) {
  /* er_task_check now says ER_EREVOKED, in that job only */
  er__child_revoke(c->pid, c->seqs[0]);
  uv_timer_stop(&c->timer);
  uv_timer_start(&c->timer, on_revoke_grace, (uint64_t)c->pool->base.revoke_grace_ms, 0);
}

/* A job still waiting behind another is revoked when it reaches the head
 * (start_head); j->revoked is already set by the worker. */
static void revoke_job(er__pool_t *pool, er__job_t *j) {
  child_t *c = j->slot;
  if (c && c->njobs && c->jobs[0] == j) revoke_head(c);
}

/* ---- life ---- */

/* Who wrote a line of output: the task the child runs, else the child. */
static void child_label(void *ud, char *buf, size_t size) {
  child_t *c = ud;
  if (c->njobs)
    snprintf(buf, size, "task %s[%s]", c->jobs[0]->rec->task, c->jobs[0]->rec->id);
  else
    snprintf(buf, size, "worker child %d", (int)c->pid);
}

static int start(er__pool_t *pool) {
  prefork_t *p = (prefork_t *)pool;
  p->n = pool->concurrency;
  p->depth = pool->prefetch < MAX_DEPTH ? pool->prefetch : MAX_DEPTH;
  if (p->depth < 1) p->depth = 1;
  pool->capacity = pool_capacity(p);
  p->children = er_calloc((size_t)p->n, sizeof *p->children);
  p->waiting = er_calloc((size_t)pool->capacity, sizeof *p->waiting);
  if (!p->children || !p->waiting) return ER_ENOMEM;
  for (int i = 0; i < p->n; i++) {
    child_t *c = er_calloc(1, sizeof *c);
    if (!c) return ER_ENOMEM;
    c->pool = p;
    c->fd = -1;
    for (int k = 0; k < 2; k++)
      c->out[k] = (er__out_t){.fd = -1, .stream = k ? "stderr" : "stdout", .rate = &c->rate,
                              .label = child_label, .ud = c};
    uv_timer_init(er_loop_uv(pool->loop), &c->timer);
    c->timer.data = c;
    c->open = 1;
    p->children[i] = c;
    int rc = spawn(p, c);
    if (rc < 0) return rc;
  }
  return 0;
}

static void on_timer_closed(uv_handle_t *h) { handle_closed(h->data); }

static void destroy(er__pool_t *pool, bool now) {
  prefork_t *p = (prefork_t *)pool;
  p->stopping = true;
  for (int i = 0; i < p->n; i++) {
    child_t *c = p->children[i];
    if (!c) continue;
    c->pool_gone = true;
    if (!c->closing && c->fd >= 0) {
      c->closing = true;
      kill(c->pid, SIGKILL);
      while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {}
      close_streams(c);
    }
    c->njobs = 0;
    /* The last of its handles to close frees the child. */
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  }
  er_free(p->children);
  er_free(p->waiting);
  er_free(p);
}

static const er__pool_ops_t prefork_ops = {"prefork", start, submit, revoke_job, destroy};

er__pool_t *er__pool_prefork_new(void) {
  prefork_t *p = er_calloc(1, sizeof *p);
  if (p) p->base.ops = &prefork_ops;
  return p ? &p->base : NULL;
}
