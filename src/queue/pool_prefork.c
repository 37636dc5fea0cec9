/* The prefork pool: supervised child processes, forked from the worker so
 * they have its task libraries. The worker writes a job as one JSON line on a
 * socket; the child runs it and answers with one line. A child that crashes,
 * aborts or is killed (hard time limit, revocation) closes its socket: the
 * worker reaps it, fails its task naming the signal, and forks a new one. */
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

#define MAX_DEPTH 8

typedef struct child {
  struct prefork *pool;
  pid_t pid;
  int fd;
  uv_pipe_t pipe;
  uv_timer_t timer; /* the running job's hard time limit, then revocation grace */
  /* Jobs written to the child, in order: jobs[0] runs, the next ones wait in
   * the socket (up to the prefetch, at most MAX_DEPTH) so the child goes on
   * while the worker is busy with the store. */
  er__job_t *jobs[MAX_DEPTH];
  int seqs[MAX_DEPTH]; /* each job's number in the child, for its revoke */
  int njobs;
  int seq; /* the number of the last job written to this child */
  char *buf;
  size_t len, cap;
  er__kill_t kill; /* why we killed it, if we did */
  bool closing;
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

/* prefork_child.c */
int er__child_main(int fd, const char *store_url);
int er__child_next_seq(int seq);
void er__child_revoke_set(sigset_t *set);
int er__child_revoke(pid_t pid, int seq);

static int pool_capacity(const prefork_t *p) { return p->n * p->depth; }
static int requeue(prefork_t *p, er__job_t *j);

/* ---- spawning ---- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static int spawn(prefork_t *p, child_t *c) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return ER_ESYS;
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
    close(sv[0]);
    close(sv[1]);
    return ER_ESYS;
  }
  if (pid == 0) {
    /* Die with the worker, even if it is killed with -9. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    close(sv[0]);
    for (int i = 0; i < p->n; i++)
      if (p->children[i] && p->children[i] != c && p->children[i]->fd >= 0)
        close(p->children[i]->fd);
    _exit(er__child_main(sv[1], p->base.store_url));
  }
  close(sv[1]);
  c->pid = pid;
  c->fd = sv[0];
  c->len = 0;
  c->seq = 0;
  c->kill = ER__KILL_NONE;
  c->closing = false;
  uv_pipe_init(er_loop_uv(p->base.loop), &c->pipe, 0);
  c->pipe.data = c;
  uv_pipe_open(&c->pipe, c->fd);
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
  return 0;
}

/* ---- the child's answers ---- */

static void start_head(child_t *c);

static void take_answer(child_t *c, const char *line) {
  er__job_t *j = c->njobs ? c->jobs[0] : NULL;
  json_error_t jerr;
  json_t *a = json_loads(line, 0, &jerr);
  const char *id = a ? json_string_value(json_object_get(a, "id")) : NULL;
  if (!j || !id || strcmp(id, j->rec->id) != 0) {
    er_log(ER_LOG_ERROR, "prefork: unexpected line from child %d", (int)c->pid);
    json_decref(a);
    return;
  }
  uv_timer_stop(&c->timer);
  c->njobs--;
  memmove(c->jobs, c->jobs + 1, (size_t)c->njobs * sizeof *c->jobs);
  memmove(c->seqs, c->seqs + 1, (size_t)c->njobs * sizeof *c->seqs);
  start_head(c);
  j->out.rc = (int)json_integer_value(json_object_get(a, "rc"));
  json_t *res = json_object_get(a, "result");
  if (j->out.rc == 0) j->out.result = json_incref(res ? res : json_null());
  const char *msg = json_string_value(json_object_get(a, "message"));
  if (msg) j->out.message = er_strdup(msg);
  j->out.retry = json_is_true(json_object_get(a, "retry"));
  j->out.countdown_ms = json_integer_value(json_object_get(a, "countdown"));
  json_decref(a);
  er__worker_job_done(c->pool->base.w, j);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  child_t *c = h->data;
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : 131072;
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

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_t *c = s->data;
  if (nread < 0) {
    on_child_gone(c);
    return;
  }
  c->len += (size_t)nread;
  size_t start = 0;
  for (size_t i = 0; i < c->len; i++) {
    if (c->buf[i] != '\n') continue;
    c->buf[i] = '\0';
    take_answer(c, c->buf + start);
    start = i + 1;
  }
  memmove(c->buf, c->buf + start, c->len - start);
  c->len -= start;
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

static void on_pipe_closed(uv_handle_t *h) {
  child_t *c = h->data;
  if (c->pool_gone) return;
  if (spawn(c->pool, c) < 0)
    er_log(ER_LOG_ERROR, "prefork: cannot fork a new child: %s", strerror(errno));
  else
    child_ready(c);
}

/* The child's socket closed: it died. Reap it, fail its task, replace it. */
static void on_child_gone(child_t *c) {
  if (c->closing) return;
  c->closing = true;
  uv_read_stop((uv_stream_t *)&c->pipe);
  uv_timer_stop(&c->timer);
  int status = 0;
  while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
  er__job_t *j = c->njobs ? c->jobs[0] : NULL;
  /* Jobs behind the one that ran never started: another child takes them. */
  for (int i = 1; i < c->njobs; i++) requeue(c->pool, c->jobs[i]);
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
  c->fd = -1;
  uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
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
    if (c->closing || c->njobs >= p->depth) continue;
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
    uv_timer_init(er_loop_uv(pool->loop), &c->timer);
    c->timer.data = c;
    p->children[i] = c;
    int rc = spawn(p, c);
    if (rc < 0) return rc;
  }
  return 0;
}

static void on_child_freed(uv_handle_t *h) {
  child_t *c = h->data;
  if (h == (uv_handle_t *)&c->timer) {
    er_free(c->buf);
    er_free(c);
  }
}

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
      uv_close((uv_handle_t *)&c->pipe, NULL);
    }
    c->njobs = 0;
    /* The timer's close frees the child, after the pipe's (closed first). */
    uv_close((uv_handle_t *)&c->timer, on_child_freed);
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
