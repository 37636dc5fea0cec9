/* Everything the worker asks of the store, as requests to its store thread
 * (store_thread.c). The loop only schedules: each request copies or pins what
 * it needs, and its done callback, back on the loop, acts on the answer. At
 * most one reservation, one batch of outcomes and one renewal are in flight;
 * what is asked meanwhile waits for them and goes out together. */
#include <stdio.h>
#include <string.h>

#include "queue/worker_internal.h"

#define RESERVE_BATCH 64
#define MAX_RESERVED 4096
#define MAX_TASKLETS 10000
#define FLUSH_BATCH 128
#define FLUSH_DELAY_MS 5
#define FLUSH_RETRY_MS 200
#define RENEW_MIN_MS 250 /* a store without precise wake-ups: renew on a wake at most this often */

static bool transient(int rc) {
  return rc == ER_EUNAVAILABLE || rc == ER_EBUSY || rc == ER_EIO || rc == ER_ENOMEM;
}

/* Allocates a request of size bytes whose first member is an er__sreq_t. */
static void *req_new(size_t size, void (*run)(er__sreq_t *, er_store_t *),
                     void (*done)(er__sreq_t *)) {
  er__sreq_t *r = er_calloc(1, size);
  if (r) {
    r->run = run;
    r->done = done;
  }
  return r;
}

/* Every done callback ends here: the worker may be waiting for the last one to
 * stop. */
static void after(er_worker_t *w) { er__worker_maybe_finish(w); }

/* ---- reserving ---- */

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  er_reserve_req_t req;
  er_task_rec_t **recs;
  size_t n;
} reserve_t;

static void reserve_run(er__sreq_t *r, er_store_t *s) {
  reserve_t *q = (reserve_t *)r;
  q->req.now_ms = er_now_wall_ms();
  r->rc = er_store_reserve(s, &q->req, &q->recs, &q->n);
}

static void give_back_recs(er_worker_t *w, er_task_rec_t **recs, size_t n);

static void reserve_done(er__sreq_t *r) {
  reserve_t *q = (reserve_t *)r;
  er_worker_t *w = q->w;
  w->reserving = false;
  if (r->rc < 0) {
    er_log(ER_LOG_WARN, "worker %s: reserve failed: %s", w->id, er_strerror(r->rc));
  } else if (w->stopping) {
    give_back_recs(w, q->recs, q->n); /* reserved as the worker began to stop */
  } else {
    for (size_t i = 0; i < q->n; i++) er__worker_dispatch(w, q->recs[i]);
    er_free(q->recs);
    /* A full batch: there may be more. */
    if (q->n == q->req.max) w->fill_again = true;
  }
  er_free(q);
  if (w->fill_again) er__io_fill(w);
  er__io_next_due(w);
  after(w);
}

/* Reserves more when what is reserved falls to half the prefetch target, so
 * that a store round trip serves many tasks. */
void er__io_fill(er_worker_t *w) {
  if (w->stopping) return;
  if (w->reserving) {
    w->fill_again = true;
    return;
  }
  w->fill_again = false;
  /* Beyond the prefetch, hold about 50 ms of work at the rate tasks have been
   * finishing: short tasks then cost one store round trip per batch, while a
   * worker of long tasks holds nothing back from the others. */
  size_t target = (size_t)w->opts.concurrency * (size_t)w->opts.prefetch + (size_t)(w->rate * 0.05);
  if (target > MAX_RESERVED) target = MAX_RESERVED;
  size_t have = w->nslots_used + w->bl_len;
  if (have > target / 2 || w->ntasklets >= MAX_TASKLETS) return;
  size_t want = target - have;
  if (want > RESERVE_BATCH) want = RESERVE_BATCH;
  reserve_t *q = req_new(sizeof *q, reserve_run, reserve_done);
  if (!q) return;
  q->w = w;
  q->req = (er_reserve_req_t){(const char *const *)w->queues, w->nqueues, w->id, 0,
                              w->opts.lease_ms, want};
  w->reserving = true;
  er__sthread_post(w->io, &q->r);
}

/* ---- outcomes ---- */

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  er_completion_t *cs;
  er__job_t **jobs;
  size_t n;
  bool *fenced;
  char why[96]; /* give-backs: for the log */
  char (*ids)[ER_ID_LEN + 1];
} complete_t;

static void complete_run(er__sreq_t *r, er_store_t *s) {
  complete_t *q = (complete_t *)r;
  q->fenced = er_calloc(q->n ? q->n : 1, sizeof *q->fenced);
  r->rc = er_store_complete(s, q->cs, q->n, q->fenced);
  if (r->rc < 0)
    snprintf(q->why + strlen(q->why), sizeof q->why - strlen(q->why), ": %s",
             er_store_last_error(s));
}

static void on_flush_timer(uv_timer_t *h) { er__io_flush(h->data); }

/* Puts back outcomes a failed write kept, before any newer ones. */
static bool keep(er_worker_t *w, complete_t *q) {
  size_t need = w->ndone + q->n;
  if (need > w->capdone) {
    er_completion_t *d = er_realloc(w->done, need * sizeof *d);
    if (d) w->done = d;
    er__job_t **dj = er_realloc(w->done_jobs, need * sizeof *dj);
    if (dj) w->done_jobs = dj;
    if (!d || !dj) return false;
    w->capdone = need;
  }
  memmove(w->done + q->n, w->done, w->ndone * sizeof *w->done);
  memmove(w->done_jobs + q->n, w->done_jobs, w->ndone * sizeof *w->done_jobs);
  memcpy(w->done, q->cs, q->n * sizeof *w->done);
  memcpy(w->done_jobs, q->jobs, q->n * sizeof *w->done_jobs);
  w->ndone = need;
  return true;
}

static void flush_done(er__sreq_t *r) {
  complete_t *q = (complete_t *)r;
  er_worker_t *w = q->w;
  w->flushing = false;
  if (transient(r->rc) && w->stopping != 2 && keep(w, q)) {
    /* The store is away: keep the outcomes and write them a little later.
     * Each is fenced by its attempt, so one that did get written before the
     * connection broke is refused the second time, never stored twice. */
    er_log(ER_LOG_WARN, "worker %s: cannot record %zu outcomes yet (will retry)%s", w->id, q->n,
           q->why);
    if (!w->flush_scheduled) {
      w->flush_scheduled = true;
      uv_timer_start(&w->flush_timer, on_flush_timer, FLUSH_RETRY_MS, 0);
    }
  } else {
    /* Refused, or stopping now: nothing was written; the leases will end and
     * the tasks run again. */
    if (r->rc < 0)
      er_log(ER_LOG_ERROR, "worker %s: cannot record %zu outcomes%s", w->id, q->n, q->why);
    bool retry_later = false;
    for (size_t i = 0; i < q->n; i++) {
      if (r->rc == 0 && q->fenced && q->fenced[i])
        er_log(ER_LOG_WARN, "task %s: lease lost; this attempt's outcome was refused", q->cs[i].id);
      retry_later |= q->cs[i].state == ER_STATE_RETRY;
      json_decref(q->cs[i].error);
      er__worker_job_free(q->jobs[i]);
    }
    er__worker_update_rate(w, q->n);
    /* A retry is due later: the timer must know. */
    if (retry_later) er__io_next_due(w);
  }
  er_free(q->cs);
  er_free(q->jobs);
  er_free(q->fenced);
  er_free(q);
  if (w->ndone && !w->flush_scheduled) er__io_flush(w); /* what came meanwhile */
  er__io_fill(w);
  after(w);
}

/* Writes the outcomes waiting, as one batch; while a batch is in flight the
 * next one gathers. */
void er__io_flush(er_worker_t *w) {
  w->flush_scheduled = false;
  uv_timer_stop(&w->flush_timer);
  if (!w->ndone || w->flushing) return;
  complete_t *q = req_new(sizeof *q, complete_run, flush_done);
  if (!q) return;
  q->w = w;
  q->cs = w->done;
  q->jobs = w->done_jobs;
  q->n = w->ndone;
  w->done = NULL;
  w->done_jobs = NULL;
  w->ndone = w->capdone = 0;
  w->flushing = true;
  er__sthread_post(w->io, &q->r);
}

static void flush_soon(void *arg) {
  er_worker_t *w = arg;
  if (w->flush_scheduled) er__io_flush(w);
}

void er__io_push_completion(er_worker_t *w, er__job_t *j, const er_completion_t *c) {
  if (w->ndone == w->capdone) {
    size_t cap = w->capdone ? w->capdone * 2 : 64;
    er_completion_t *d = er_realloc(w->done, cap * sizeof *d);
    if (d) w->done = d;
    er__job_t **dj = er_realloc(w->done_jobs, cap * sizeof *dj);
    if (dj) w->done_jobs = dj;
    if (!d || !dj) {
      /* Out of memory: drop the outcome; the lease ends and the task reruns. */
      json_decref(c->error);
      er__worker_job_free(j);
      return;
    }
    w->capdone = cap;
  }
  w->done[w->ndone] = *c;
  w->done_jobs[w->ndone++] = j;
  /* Outcomes are written in batches: at once when nothing else is waiting to
   * run (a poller wants its result now), else after 5 ms or 128 of them, so a
   * busy worker pays one write for many tasks. A batch in flight gathers the
   * next one anyway. */
  if (w->flushing) return;
  bool busy = w->bl_len > 0 && w->ndone < FLUSH_BATCH;
  if (w->flush_scheduled) {
    if (busy || !uv_is_active((uv_handle_t *)&w->flush_timer)) return;
    uv_timer_stop(&w->flush_timer);
  }
  w->flush_scheduled = true;
  if (busy)
    uv_timer_start(&w->flush_timer, on_flush_timer, FLUSH_DELAY_MS, 0);
  else
    er_loop_call_soon(w->loop, flush_soon, w);
}

/* ---- giving back ---- */

static void give_back_done(er__sreq_t *r) {
  complete_t *q = (complete_t *)r;
  er_worker_t *w = q->w;
  if (r->rc < 0)
    er_log(ER_LOG_ERROR, "worker %s: cannot give %zu tasks back (their leases will end)%s", w->id,
           q->n, q->why);
  er_free(q->cs);
  er_free(q->ids);
  er_free(q->fenced);
  er_free(q);
  after(w);
}

/* A give-back of n tasks, their ids and attempts to be filled in by the
 * caller through set(). */
static complete_t *give_back_new(er_worker_t *w, size_t n, const char *why) {
  complete_t *q = req_new(sizeof *q, complete_run, give_back_done);
  if (!q) return NULL;
  q->w = w;
  q->n = n;
  q->cs = er_calloc(n, sizeof *q->cs);
  q->ids = er_calloc(n, sizeof *q->ids);
  if (!q->cs || !q->ids) {
    er_free(q->cs);
    er_free(q->ids);
    er_free(q);
    return NULL; /* their leases will end and they come back */
  }
  snprintf(q->why, sizeof q->why, " (%s)", why);
  if (n) er_log(ER_LOG_WARN, "worker %s: giving %zu tasks back to the queue: %s", w->id, n, why);
  return q;
}

static void give_back_set(complete_t *q, size_t i, const er_task_rec_t *rec) {
  memcpy(q->ids[i], rec->id, sizeof q->ids[i]);
  q->cs[i] = (er_completion_t){.id = q->ids[i], .attempt = rec->attempt,
                               .state = ER_STATE_PENDING, .now_ms = er_now_wall_ms()};
}

void er__io_give_back(er_worker_t *w, er__job_t **jobs, size_t n, const char *why) {
  complete_t *q = give_back_new(w, n, why);
  for (size_t i = 0; i < n; i++) {
    if (q) give_back_set(q, i, jobs[i]->rec);
    er__worker_job_free(jobs[i]);
  }
  if (q) er__sthread_post(w->io, &q->r);
}

static void give_back_recs(er_worker_t *w, er_task_rec_t **recs, size_t n) {
  complete_t *q = n ? give_back_new(w, n, "reserved as the worker was stopping") : NULL;
  for (size_t i = 0; i < n; i++) {
    if (q) give_back_set(q, i, recs[i]);
    er_task_rec_free(recs[i]);
  }
  er_free(recs);
  if (q) er__sthread_post(w->io, &q->r);
}

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
  if (r->rc < 0)
    er_log(ER_LOG_WARN, "worker %s: cannot renew leases: %s", q->w->id, er_store_last_error(s));
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
  for (size_t i = 0; i < q->n; i++) {
    er__job_t *j = q->jobs[i];
    j->pins--;
    if (j->dead) {
      if (!j->pins) er__worker_job_free(j); /* finished while the renewal ran */
    } else if (r->rc == 0 && w->stopping != 2) {
      er__worker_apply_flags(w, j, q->revoked[i], q->fenced[i]);
    }
  }
  renew_free(q);
  if (w->renew_again) er__io_renew(w);
  after(w);
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
  renew_t *q = req_new(sizeof *q, renew_run, renew_done);
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
  if (r->run == beat_run) w->beating = false;
  json_decref(q->info);
  er_free(q->id);
  er_free(q->msg);
  er_free(q);
  after(w);
}

void er__io_beat(er_worker_t *w) {
  if (w->beating) return;
  misc_t *q = req_new(sizeof *q, beat_run, misc_done);
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
}

static void maintain_done(er__sreq_t *r) {
  misc_t *q = (misc_t *)r;
  er_worker_t *w = q->w;
  w->maintaining = false;
  if (r->rc == 0 && q->mc.requeued) {
    er_log(ER_LOG_INFO, "worker %s: %zu tasks whose lease ended went back to the queue", w->id,
           q->mc.requeued);
    er__io_fill(w);
  }
  misc_done(r);
}

void er__io_maintain(er_worker_t *w) {
  if (w->maintaining) return;
  misc_t *q = req_new(sizeof *q, maintain_run, maintain_done);
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

void er__io_progress(er_worker_t *w, const char *id, int attempt, double p, const char *msg) {
  misc_t *q = req_new(sizeof *q, progress_run, misc_done);
  if (!q) return;
  q->w = w;
  q->id = er_strdup(id);
  q->msg = msg ? er_strdup(msg) : NULL;
  q->attempt = attempt;
  q->p = p;
  er__sthread_post(w->io, &q->r);
}
