/* The solo pool: tasks run one at a time on the worker's loop thread. While a
 * task runs nothing else does (no lease renewal either), so keep tasks shorter
 * than the lease; it has no hard time limit. For debugging and for tasks that
 * must not run concurrently. */
#include "queue/pool.h"

typedef struct solo {
  er__pool_t base;
} solo_t;

static int start(er__pool_t *p) {
  p->capacity = p->concurrency;
  return 0;
}

static void run(void *arg) {
  er__job_t *j = arg;
  er__pool_t *p = j->slot;
  er_task_t t;
  er__task_init(&t, j->rec, j->def);
  t.revoked = &j->revoked;
  t.loop = p->loop;
  t.max_result = p->max_result;
  t.store_url = p->store_url;
  t.base_url = p->base_url;
  t.secret = p->secret;
  t.progress = er__worker_progress;
  t.progress_ud = j->w;
  er__task_run(j->rec, j->def, &t);
  j->out = t.out;
  er__worker_job_done(j->w, j);
}

static int submit(er__pool_t *p, er__job_t *j) {
  j->slot = p;
  return er_loop_call_soon(p->loop, run, j);
}

static void revoke_job(er__pool_t *p, er__job_t *j) {}

static void destroy(er__pool_t *p, bool now) { er_free(p); }

static const er__pool_ops_t solo_ops = {"solo", start, submit, revoke_job, destroy};

er__pool_t *er__pool_solo_new(void) {
  solo_t *s = er_calloc(1, sizeof *s);
  if (s) s->base.ops = &solo_ops;
  return s ? &s->base : NULL;
}
