/* The worker's leases, heartbeats, housekeeping and the progress of tasks
 * run in its own process, as requests to its store thread (see worker_io.c).
 * A renewal pins the jobs it names: one that ends meanwhile is freed when
 * the renewal is back. */
#include "celery/celery_internal.h"
#include "pipeline/pipe_maint.h"
#include "queue/worker_internal.h"

#define RENEW_MIN_MS 500 /* a store without precise wake-ups: renew on a wake at most this often */

/* ---- leases ---- */

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  size_t n;
  er__job_t **jobs; /* pinned until done */
  const char **ids;
  int *attempts;
  bool *revoked, *fenced;
  int64_t until;
} renew_t;

static void renew_run(er__sreq_t *r, er_store_t *s) {
  renew_t *q = (renew_t *)r;
  q->until = er_now_wall_ms() + q->w->opts.lease_ms;
  r->rc = er_store_renew(s, q->ids, q->attempts, q->n, q->until, q->revoked, q->fenced);
}

static void renew_free(renew_t *q) {
  er_free(q->jobs);
  er_free(q->ids);
  er_free(q->attempts);
  er_free(q->revoked);
  er_free(q->fenced);
  er_free(q);
}

static void renew_done(er__sreq_t *r) {
  renew_t *q = (renew_t *)r;
  er_worker_t *w = q->w;
  w->renewing = false;
  if (r->rc < 0)
    er__store_failed(w, r->rc, r->err); /* the leases are renewed again at the next turn */
  else
    er__store_ok(w);
  for (size_t i = 0; i < q->n; i++) {
    er__job_t *j = q->jobs[i];
    j->pins--;
    if (j->dead) {
      if (!j->pins) er__worker_job_free(j); /* freed while the renewal ran */
    } else if (r->rc == 0 && w->stopping != 2 && !j->ended) {
      er__worker_apply_flags(w, j, q->revoked[i], q->fenced[i]);
    }
  }
  renew_free(q);
  if (w->renew_again) er__io_renew(w);
  er__worker_maybe_finish(w);
}

/* Extends the leases of every job the worker holds (running, tasklets and
 * the backlog); the answer says which were revoked or lost. */
void er__io_renew(er_worker_t *w) {
  if (w->renewing) {
    w->renew_again = true;
    return;
  }
  w->renew_again = false;
  size_t n = 0;
  for (er__job_t *j = w->running; j; j = j->next) n++;
  if (!n) return;
  renew_t *q = er__io_req_new(sizeof *q, renew_run, renew_done);
  if (!q) return;
  q->w = w;
  q->n = n;
  q->jobs = er_calloc(n, sizeof *q->jobs);
  q->ids = er_calloc(n, sizeof *q->ids);
  q->attempts = er_calloc(n, sizeof *q->attempts);
  q->revoked = er_calloc(n, sizeof *q->revoked);
  q->fenced = er_calloc(n, sizeof *q->fenced);
  if (!q->jobs || !q->ids || !q->attempts || !q->revoked || !q->fenced) {
    renew_free(q);
    return;
  }
  size_t i = 0;
  for (er__job_t *j = w->running; j; j = j->next, i++) {
    j->pins++;
    q->jobs[i] = j;
    q->ids[i] = j->rec->id; /* the record lives while the job is pinned */
    q->attempts[i] = j->rec->attempt;
  }
  w->renewing = true;
  w->last_renew_ms = er_now_mono_ms();
  er__sthread_post(w->io, &q->r);
}

/* A store without precise wake-ups may have been told of a revoke: renew
 * soon, but not on every one of its (many) wake-ups. */
void er__io_renew_soon(er_worker_t *w) {
  if (!w->running) return;
  uint64_t since = er_now_mono_ms() - w->last_renew_ms;
  if (since >= RENEW_MIN_MS) {
    er__io_renew(w);
    return;
  }
  uint64_t every = (uint64_t)w->opts.lease_ms / 3;
  uint64_t left = RENEW_MIN_MS - since;
  if (uv_timer_get_due_in(&w->renew) > left)
    uv_timer_start(&w->renew, er__worker_on_renew, left, every ? every : 1);
}

/* ---- heartbeats, housekeeping, progress ---- */

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  json_t *info;
  er_maint_counts_t mc;
  char *id, *msg;
  int attempt;
  double p;
} misc_t;

static void beat_run(er__sreq_t *r, er_store_t *s) {
  misc_t *q = (misc_t *)r;
  r->rc = er_store_heartbeat(s, q->info, er_now_wall_ms(), 3 * q->w->opts.heartbeat_ms);
}

static void misc_done(er__sreq_t *r) {
  misc_t *q = (misc_t *)r;
  er_worker_t *w = q->w;
  if (r->run == beat_run) {
    w->beating = false;
    if (r->rc < 0)
      er__store_failed(w, r->rc, r->err);
    else
      er__store_ok(w);
  }
  json_decref(q->info);
  er_free(q->id);
  er_free(q->msg);
  er_free(q);
  er__worker_maybe_finish(w);
}

void er__io_beat(er_worker_t *w) {
  if (w->beating) return;
  misc_t *q = er__io_req_new(sizeof *q, beat_run, misc_done);
  if (!q) return;
  q->w = w;
  if (!(q->info = er__worker_info(w))) {
    er_free(q);
    return;
  }
  w->beating = true;
  er__sthread_post(w->io, &q->r);
}

static void maintain_run(er__sreq_t *r, er_store_t *s) {
  misc_t *q = (misc_t *)r;
  r->rc = er_store_maintain(s, er_now_wall_ms(), &q->mc);
  if (r->rc == 0) er__pipe_maintain(s); /* old pipeline roots, a bounded part (it logs) */
}

static void maintain_done(er__sreq_t *r) {
  misc_t *q = (misc_t *)r;
  er_worker_t *w = q->w;
  w->maintaining = false;
  if (r->rc < 0) er__store_failed(w, r->rc, r->err);
  if (r->rc == 0 && q->mc.requeued) {
    er_log(ER_LOG_INFO, "worker %s: %zu tasks whose lease ended went back to the queue", w->id,
           q->mc.requeued);
    er__io_fill(w);
  }
  misc_done(r);
}

void er__io_maintain(er_worker_t *w) {
  if (w->maintaining || er__store_waiting(w)) return;
  misc_t *q = er__io_req_new(sizeof *q, maintain_run, maintain_done);
  if (!q) return;
  q->w = w;
  w->maintaining = true;
  w->last_maintain_ms = er_now_mono_ms();
  er__sthread_post(w->io, &q->r);
}

static void progress_run(er__sreq_t *r, er_store_t *s) {
  misc_t *q = (misc_t *)r;
  r->rc = er_store_progress(s, q->id, q->attempt, q->p, q->msg);
}

#ifdef ER_HAVE_REDIS
static void started_run(er__sreq_t *r, er_store_t *s) {
  misc_t *q = (misc_t *)r;
  r->rc = er__cel_started(s, q->id, q->w->id);
}
#endif

void er__io_celery_started(er_worker_t *w, const er__job_t *j) {
#ifdef ER_HAVE_REDIS
  if (!w->opts.celery || !w->opts.celery_track_started || j->rec->ignore_result ||
      !er__celery_borne(j->rec))
    return;
  misc_t *q = er__io_req_new(sizeof *q, started_run, misc_done);
  if (!q) return;
  q->w = w;
  if (!(q->id = er_strdup(j->rec->id))) {
    er_free(q);
    return;
  }
  er__sthread_post(w->io, &q->r); /* before its outcome: the store thread keeps the order */
#else
  (void)w;
  (void)j;
#endif
}

void er__io_progress(er_worker_t *w, const char *id, int attempt, double p, const char *msg) {
  misc_t *q = er__io_req_new(sizeof *q, progress_run, misc_done);
  if (!q) return;
  q->w = w;
  q->id = er_strdup(id);
  q->msg = msg ? er_strdup(msg) : NULL;
  q->attempt = attempt;
  q->p = p;
  er__sthread_post(w->io, &q->r);
}
