/* The prefork pool: supervised child processes, forked from the worker so
 * they have its task libraries. The worker writes a job as one JSON line on a
 * socket; the child runs it and answers with one line. A child that crashes,
 * aborts or is killed (hard time limit, revocation) closes its socket: the
 * worker reaps it, fails its task naming the signal, and forks a new one. An
 * answer the worker cannot read (not JSON, longer than the result limit
 * allows) fails the task it was for. A child's stdout and stderr are pipes
 * the worker reads into its log (prefork_output.c). */
#include <errno.h>
#include <fcntl.h>
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

/* the pool's private types (child_t, prefork_t) are in prefork.h */

static int pool_capacity(const prefork_t *p) { return p->n * p->depth; }
static int requeue(prefork_t *p, er__job_t *j);

/* ---- spawning ---- */


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
    if (p->out_fd >= 0) close(p->out_fd);
    for (int i = 0; i < p->n; i++) {
      child_t *o = p->children[i];
      if (!o || o == c || o->fd < 0) continue;
      close(o->fd);
      for (int k = 0; k < 2; k++)
        if (o->out[k].fd >= 0) close(o->out[k].fd);
    }
    er__out_child_setup(fds[3], fds[5]);
    _exit(er__child_run(fds[1], p->base.store_url, p->base.base_url, p->base.secret,
                        p->base.max_result));
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
  uv_read_start((uv_stream_t *)&c->pipe, er__prefork_on_alloc, er__prefork_on_read);
  er__out_start(&c->out[0], uv, fds[2]);
  er__out_start(&c->out[1], uv, fds[4]);
  c->open += 3;
  return 0;
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

static void child_ready(child_t *c);

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
void er__prefork_child_gone(child_t *c) {
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
  er_free(req->data);
  er_free(req);
}

/* Writes job j to child c. */
static int send_to(child_t *c, er__job_t *j) {
  size_t n = 0;
  char *line = er__job_encode(j->rec, &n);
  if (!line) return ER_ENOMEM;
  uv_write_t *req = er_malloc(sizeof *req);
  if (!req) {
    er_free(line);
    return ER_ENOMEM;
  }
  req->data = line;
  uv_buf_t b = uv_buf_init(line, (unsigned)n);
  if (uv_write(req, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
    er_free(line);
    er_free(req);
    return ER_EIO;
  }
  c->seq = er__child_next_seq(c->seq);
  c->seqs[c->njobs] = c->seq;
  c->jobs[c->njobs++] = j;
  j->slot = c;
  if (c->njobs == 1)
    er__prefork_start_head(c);
  else
    j->started_wall_ms = 0; /* waits in the socket: reserved, not running yet */
  return 0;
}

/* The job at the head of c's queue has started (as far as the worker can
 * tell): its hard time limit runs from now, and a revoke that came while it
 * waited takes effect. */
static void revoke_head(child_t *c);
void er__prefork_start_head(child_t *c) {
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
  p->depth = pool->prefetch < ER__PREFORK_MAX_DEPTH ? pool->prefetch : ER__PREFORK_MAX_DEPTH;
  if (p->depth < 1) p->depth = 1;
  pool->capacity = pool_capacity(p);
  p->children = er_calloc((size_t)p->n, sizeof *p->children);
  p->waiting = er_calloc((size_t)pool->capacity, sizeof *p->waiting);
  if (!p->children || !p->waiting) return ER_ENOMEM;
  if (pool->task_output &&
      (p->out_fd = open(pool->task_output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
    er_log(ER_LOG_ERROR, "cannot open the task output file %s: %s", pool->task_output,
           strerror(errno));
    return ER_ESYS;
  }
  for (int i = 0; i < p->n; i++) {
    child_t *c = er_calloc(1, sizeof *c);
    if (!c) return ER_ENOMEM;
    c->pool = p;
    c->fd = -1;
    for (int k = 0; k < 2; k++)
      c->out[k] = (er__out_t){.fd = -1, .stream = k ? "stderr" : "stdout", .sink = p->out_fd,
                              .rate = &c->rate, .label = child_label, .ud = c};
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
  if (p->out_fd >= 0) close(p->out_fd);
  er_free(p);
}

static const er__pool_ops_t prefork_ops = {"prefork", start, submit, revoke_job, destroy};

er__pool_t *er__pool_prefork_new(void) {
  prefork_t *p = er_calloc(1, sizeof *p);
  if (!p) return NULL;
  p->base.ops = &prefork_ops;
  p->out_fd = -1;
  return &p->base;
}
