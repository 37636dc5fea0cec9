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

void *er__io_req_new(size_t size, void (*run)(er__sreq_t *, er_store_t *),
                     void (*done)(er__sreq_t *)) {
  er__sreq_t *r = er_calloc(1, size);
  if (r) {
    r->run = run;
    r->done = done;
  }
  return r;
}

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
    er__store_failed(w, r->rc, r->err); /* fill waits for the back-off */
  } else {
    er__store_ok(w);
    if (w->stopping) {
      give_back_recs(w, q->recs, q->n); /* reserved as the worker began to stop */
    } else {
      for (size_t i = 0; i < q->n; i++) er__worker_dispatch(w, q->recs[i]);
      er__unknown_flush(w); /* those not registered here */
      er_free(q->recs);
      /* A full batch: there may be more. */
      if (q->n == q->req.max) w->fill_again = true;
    }
  }
  er_free(q);
  if (w->fill_again) er__io_fill(w);
  er__io_next_due(w);
  er__worker_maybe_finish(w); /* it may wait for the last request to stop */
}

/* Reserves more when what is reserved falls to half the prefetch target, so
 * that a store round trip serves many tasks. */
void er__io_fill(er_worker_t *w) {
  if (w->stopping || er__worker_backing_off(w) || er__store_waiting(w) || er__unknown_holding(w))
    return;
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
  reserve_t *q = er__io_req_new(sizeof *q, reserve_run, reserve_done);
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

/* Room for need outcomes waiting. */
static bool grow_done(er_worker_t *w, size_t need) {
  if (need <= w->capdone) return true;
  size_t cap = w->capdone ? w->capdone * 2 : 64;
  if (cap < need) cap = need;
  er_completion_t *d = er_realloc(w->done, cap * sizeof *d);
  if (d) w->done = d;
  er__job_t **dj = er_realloc(w->done_jobs, cap * sizeof *dj);
  if (dj) w->done_jobs = dj;
  if (!d || !dj) return false;
  w->capdone = cap;
  return true;
}

/* Puts back outcomes a failed write kept, before any newer ones. */
static bool keep(er_worker_t *w, complete_t *q) {
  size_t need = w->ndone + q->n;
  if (!grow_done(w, need)) return false;
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
  if (er__store_fault(r->rc) && w->stopping != 2 && keep(w, q)) {
    /* The store is full, locked or away: keep the outcomes and write them
     * when the back-off ends (its timer flushes what is kept). Each is fenced
     * by its attempt, so one that did get written before the connection
     * broke is refused the second time, never stored twice. */
    er__store_failed(w, r->rc, r->err);
  } else {
    if (r->rc == 0) er__store_ok(w);
    /* Refused, or stopping now: nothing was written; the leases will end and
     * the tasks run again. */
    if (r->rc < 0)
      er_log(ER_LOG_ERROR, "worker %s: cannot record %zu outcomes%s", w->id, q->n, q->why);
    bool retry_later = false;
    for (size_t i = 0; i < q->n; i++) {
      if (r->rc == 0 && q->fenced && q->fenced[i]) {
        /* Worded as when the renewal finds the lease lost first (worker.c):
         * which of the two sees it is a race, the news is the same. */
        const er_task_rec_t *rec = q->jobs[i] ? q->jobs[i]->rec : NULL;
        er_log(ER_LOG_WARN, "task %s[%s] lease lost: this attempt's outcome was refused",
               rec && rec->task ? rec->task : "?", q->cs[i].id);
      }
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
  er__worker_maybe_finish(w); /* it may wait for the last request to stop */
}

/* Writes the outcomes waiting, as one batch; while a batch is in flight the
 * next one gathers. */
void er__io_flush(er_worker_t *w) {
  w->flush_scheduled = false;
  uv_timer_stop(&w->flush_timer);
  if (!w->ndone || w->flushing) return;
  if (er__store_waiting(w) && w->stopping != 2) return; /* its timer flushes */
  complete_t *q = er__io_req_new(sizeof *q, complete_run, flush_done);
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
  if (!grow_done(w, w->ndone + 1)) {
    /* Out of memory: drop the outcome; the lease ends and the task reruns. */
    json_decref(c->error);
    er__worker_job_free(j);
    return;
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
  er__worker_maybe_finish(w); /* it may wait for the last request to stop */
}

/* A give-back of n tasks, their ids and attempts to be filled in by the
 * caller through set(). */
static complete_t *give_back_new(er_worker_t *w, size_t n, const char *why) {
  complete_t *q = er__io_req_new(sizeof *q, complete_run, give_back_done);
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
