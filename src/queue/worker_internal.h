/* The worker's pieces, shared by worker.c (jobs, pool, life), worker_io.c
 * (everything it asks of the store, through its store thread) and
 * worker_info.c (its log lines and heartbeat). Loop thread only. */
#ifndef ER_QUEUE_WORKER_INTERNAL_H
#define ER_QUEUE_WORKER_INTERNAL_H

#include <stdatomic.h>

#include "queue/client_internal.h"
#include "queue/histogram.h"
#include "queue/pool.h"
#include "queue/store_thread.h"

#define ER__SAFETY_TICK_MS 1000 /* with precise wake-ups and due times */
#define ER__POLL_TICK_MS 100    /* a store without them: look this often */
#define ER__MAINTAIN_MS 1000

/* worker_backoff.c: the back-off of the worker's store calls. */
typedef struct er__backoff {
  unsigned fails;     /* in a row; 0: the store answers */
  uint64_t since_ms;  /* the first of them (monotonic) */
  uint64_t delay_ms;  /* the last wait's scale, doubling */
  uint64_t until_ms;  /* nothing that can wait is asked before (monotonic) */
  uint64_t warned_ms; /* the last warning, for the reminder */
  int rc;
  char cause[200]; /* what was warned about: a new one is warned again */
  uv_timer_t timer; /* asks again when the wait is over */
} er__backoff_t;

struct er_worker {
  er_worker_opts_t opts;
  uint8_t secret[32]; /* opts.secret as a key (er__pipe_secret_derive) */
  bool has_secret;
  char **queues;
  size_t nqueues;
  char id[160];
  char hostname[128];
  er_store_t *store;   /* the store thread's; this thread only before and after it */
  er__sthread_t *io;   /* the store thread */
  er_client_t *client; /* for tasklet tasks */
  er_loop_t *loop;
  er__pool_t *pool;
  uv_poll_t wake;
  bool has_wake, wake_on, reading_wakeups;
  uv_timer_t tick, beat, renew, grace, flush_timer, due_timer;
  uv_signal_t sigterm, sigint;
  uv_async_t stop_async;
  atomic_int stop_req; /* 1 warm, 2 now: from er_worker_stop on any thread */

  er__job_t *running; /* every reserved job: in the pool, a tasklet, or backlog */
  size_t nslots_used, ntasklets;
  /* Reserved ahead (prefetch) and waiting for a free slot, oldest first: the
   * pool goes from one task to the next without a store round trip. */
  er__job_t **backlog;
  size_t bl_head, bl_len, bl_cap;
  /* Outcomes waiting to be written in one batch. */
  er_completion_t *done;
  er__job_t **done_jobs;
  size_t ndone, capdone;
  bool flush_scheduled;
  /* At most one of each in flight on the store thread; *_again: asked for
   * while one was, run when it is back. */
  bool reserving, fill_again, flushing, renewing, renew_again, beating, maintaining;
  bool asking_due, due_again;
  /* What the store offers: -1 not known yet, 0 no (ER_ENOTSUP), 1 yes. */
  int precise; /* er_store_watch and er_store_read_wakeups */
  int has_due; /* er_store_next_due */
  int64_t due_ms;          /* what the due timer is set for (wall), 0 none */
  int64_t past_due_delay;  /* backs off while what is due cannot be taken */
  /* After the pool refused a task: nothing is reserved or handed to it until
   * refused_until (monotonic); the back-off doubles, reset by a submit taken. */
  uint64_t refused_until_ms, refuse_backoff_ms;
  uint64_t last_renew_ms;  /* monotonic */
  int stopping;            /* 0 running, 1 warm shutdown, 2 at once */
  uint64_t last_maintain_ms;
  int64_t started_ms;
  uint64_t processed, failed;
  /* Durations of the tasks this worker ended (run time of each attempt
   * that ran; created to finished of each that finished), for /metrics. */
  er__hist_t runtime, roundtrip;
  struct er__unknown *unknown;  /* tasks not registered here (worker_unknown.c) */
  er__backoff_t bo; /* the store failing: worker_backoff.c */
  int exit_rc;      /* what er_worker_run returns: its store's file was deleted */
  double rate;                  /* tasks finished per second, smoothed */
  uint64_t rate_ms, rate_count; /* the current measuring window */
  /* Set by er_worker_start (worker_embed.c): the worker runs on a thread of
   * its own in a host process and leaves the process's signals alone. */
  struct er__embed *embed;
};

/* A reserved job not handed to the pool yet (tasklets never wait). */
static inline bool er__in_backlog(const er__job_t *j) {
  return !j->submitted && !(j->def && j->def->tasklet);
}

/* worker.c */
/* The pool refused a task a moment ago: take and hand it nothing for now. */
bool er__worker_backing_off(const er_worker_t *w);
void er__worker_dispatch(er_worker_t *w, er_task_rec_t *rec);
void er__worker_job_free(er__job_t *j);
void er__worker_unlink(er_worker_t *w, er__job_t *j);
void er__worker_start_backlog(er_worker_t *w);
void er__worker_maybe_finish(er_worker_t *w);
/* After a renewal: acts on the revoked and fenced flags of w's jobs. */
void er__worker_apply_flags(er_worker_t *w, er__job_t *j, bool revoked, bool fenced);
void er__worker_update_rate(er_worker_t *w, size_t n);
/* The periodic look: outcomes kept, housekeeping, work. */
void er__worker_tick(er_worker_t *w);
void er__worker_on_renew(uv_timer_t *h);

/* er_worker_run's body. started (may be NULL) is told how start-up went (0
 * or an error), on the worker's thread, before the loop runs or the call
 * returns that error. */
int er__worker_run(er_worker_t *w, void (*started)(er_worker_t *w, int rc));

/* worker_opts.c */
/* *out = *in with the defaults filled in; ER_EINVAL (errmsg, may be NULL,
 * says which option) for one out of its range in errand/worker.h. */
int er__worker_opts_resolve(const er_worker_opts_t *in, er_worker_opts_t *out, char *errmsg,
                            size_t size);

/* worker_stop.c */
void er__worker_on_signal(uv_signal_t *h, int signum);
void er__worker_on_stop_async(uv_async_t *h);

/* worker_io.c (reserving, outcomes, giving back) and worker_lease.c (leases,
 * heartbeats, housekeeping, progress): each posts a request to the store thread. */
/* A request of size bytes whose first member is an er__sreq_t. */
void *er__io_req_new(size_t size, void (*run)(er__sreq_t *, er_store_t *),
                     void (*done)(er__sreq_t *));
void er__io_fill(er_worker_t *w);
void er__io_flush(er_worker_t *w);
void er__io_renew(er_worker_t *w);
void er__io_renew_soon(er_worker_t *w);
void er__io_beat(er_worker_t *w);
void er__io_maintain(er_worker_t *w);
void er__io_next_due(er_worker_t *w);
/* Starts watching the worker's queues; then fills and asks what is due. */
void er__io_watch(er_worker_t *w);
/* Gives jobs back to the queue (PENDING, no retry counted), fenced by their
 * attempts; the jobs are freed at once. */
void er__io_give_back(er_worker_t *w, er__job_t **jobs, size_t n, const char *why);
void er__io_progress(er_worker_t *w, const char *id, int attempt, double p, const char *msg);
/* --celery --track-started: job j, handed to a slot now, is STARTED in its
 * Celery result key (when it is a Celery message that keeps its result). */
void er__io_celery_started(er_worker_t *w, const er__job_t *j);
void er__io_push_completion(er_worker_t *w, er__job_t *j, const er_completion_t *c);

/* worker_unknown.c: tasks this worker has not registered go back to the
 * queue for live workers that have them, or fail when none has. */
typedef struct er__unknown er__unknown_t;
/* Takes rec (a task not registered here) until er__unknown_flush. */
void er__unknown_add(er_worker_t *w, er_task_rec_t *rec);
/* After a reservation: decides what becomes of the tasks er__unknown_add
 * took, on the store thread. */
void er__unknown_flush(er_worker_t *w);
/* True while no reservation should be made: a decision is in flight, or the
 * worker gave back more than its budget allows for now. */
bool er__unknown_holding(const er_worker_t *w);
void er__unknown_free(er__unknown_t *u); /* accepts NULL */

/* worker_backoff.c */
/* rc says the store failed (full, corrupt, locked, away), not that it refused
 * what was asked: what failed is kept and asked again. */
bool er__store_fault(int rc);
/* A store call failed with rc and the store's message msg: backs off, logs a
 * new cause once; ER_ENOENT (the store's file was deleted) stops the worker. */
void er__store_failed(er_worker_t *w, int rc, const char *msg);
/* A call that writes succeeded: the back-off ends. */
void er__store_ok(er_worker_t *w);
/* Backing off: reserve, flush, housekeeping and due times wait. */
bool er__store_waiting(const er_worker_t *w);
void er__store_backoff_close(er_worker_t *w, uv_close_cb cb);

/* worker_info.c */
json_t *er__worker_info(er_worker_t *w);
void er__worker_banner(er_worker_t *w);
void er__log_received(const er__job_t *j);
void er__log_outcome(const er__job_t *j, const er_completion_t *c);
/* "850 ms", "2.5 s", "3 min" */
void er__human_ms(int64_t ms, char *buf, size_t size);

#endif
