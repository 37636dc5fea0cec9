/* The worker's pools: where a reserved task's function runs. The worker hands
 * a pool one job per free slot; the pool calls er__worker_job_done on the
 * worker's loop thread when the job's outcome is known. */
#ifndef ER_QUEUE_POOL_H
#define ER_QUEUE_POOL_H

#include "queue/queue_internal.h"
#include "queue/store_thread.h"

typedef struct er__worker er__worker_t;

typedef struct er__job {
  er_task_rec_t *rec;
  const er_task_def_t *def;
  er__outcome_t out;
  volatile sig_atomic_t revoked; /* revoke requested (threads, solo, tasklet) */
  bool fenced;                   /* the lease was lost: the outcome will be refused */
  bool submitted;                /* handed to the pool (else still in the backlog) */
  bool ended;                    /* its outcome is known: no longer running or waiting */
  bool dead;                     /* freed while pinned: the last unpin frees it */
  int pins;                      /* store requests that still refer to it */
  uint64_t started_ms;           /* monotonic: reserved, then started */
  int64_t started_wall_ms;       /* when it started running, 0 before */
  struct er__job *prev, *next;   /* the worker's running list */
  void *slot;                    /* the pool's own record of where it runs */
  er_worker_t *w;
} er__job_t;

typedef struct er__pool er__pool_t;
typedef struct er__pool_ops {
  const char *name;
  /* Starts the pool's processes or threads. */
  int (*start)(er__pool_t *p);
  /* Runs job; the pool has a free slot for it. */
  int (*submit)(er__pool_t *p, er__job_t *job);
  /* The job was revoked while running: tell it, and in prefork kill it after
   * the revoke grace period. */
  void (*revoke)(er__pool_t *p, er__job_t *job);
  /* Stops: now kills what runs (its jobs get no outcome). Then frees. */
  void (*destroy)(er__pool_t *p, bool now);
} er__pool_ops_t;

struct er__pool {
  const er__pool_ops_t *ops;
  er_worker_t *w;
  er_loop_t *loop;
  int concurrency;
  int prefetch;  /* the worker's prefetch multiplier */
  int capacity;  /* jobs it takes at once; start() sets it (>= concurrency) */
  const char *store_url;
  const char *base_url; /* for the pipelines' callback URLs; may be NULL */
  const uint8_t *secret; /* their tokens' key (the worker's); NULL: the store's */
  int64_t revoke_grace_ms;
  size_t max_result; /* a result's limit in bytes (er__result_limit): set on each er_task_t */
  const char *task_output; /* prefork: the file for what tasks print; NULL: the log */
  er__sthread_t *io; /* the worker's store thread: held still while forking */
};

er__pool_t *er__pool_prefork_new(void);
er__pool_t *er__pool_threads_new(void);
er__pool_t *er__pool_solo_new(void);
/* Fault injection for tests: when set, the worker makes its pool with it. */
extern er__pool_t *(*er__pool_new_hook)(er_pool_kind_t kind);

/* Called by pools, on the loop thread, when job's outcome (job->out) is known. */
void er__worker_job_done(er_worker_t *w, er__job_t *job);
/* The progress writer for tasks run in this process on the loop thread. */
void er__worker_progress(void *ud, const char *id, int attempt, double p, const char *msg);

#endif
