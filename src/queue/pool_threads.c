/* The threads pool: N threads take jobs from a queue, run them, and hand the
 * finished ones back to the loop through an async handle. Each thread has its
 * own store handle for progress reports. A thread cannot be killed safely, so
 * this pool honours soft time limits and revocation (er_task_check) only. */
#include <pthread.h>

#include "celery/celery_internal.h"
#include "queue/pool.h"

typedef struct threads {
  er__pool_t base;
  pthread_t *tids;
  int nthreads;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  er__job_t **todo; /* ring */
  size_t head, len, cap;
  er__job_t **done;
  size_t ndone, capdone;
  uv_async_t async;
  bool quit;
} threads_t;

static void progress(void *ud, const char *id, int attempt, double p, const char *msg) {
  er_store_progress(ud, id, attempt, p, msg);
}

static void *thread_main(void *arg) {
  threads_t *tp = arg;
  er_store_t *store = NULL;
  er_store_open(tp->base.store_url, &store, NULL, 0);
  for (;;) {
    pthread_mutex_lock(&tp->lock);
    while (!tp->len && !tp->quit) pthread_cond_wait(&tp->cond, &tp->lock);
    if (tp->quit) {
      pthread_mutex_unlock(&tp->lock);
      break;
    }
    er__job_t *j = tp->todo[tp->head];
    tp->head = (tp->head + 1) % tp->cap;
    tp->len--;
    pthread_mutex_unlock(&tp->lock);

    er_task_t t;
    er__task_init(&t, j->rec, j->def);
    t.revoked = &j->revoked;
    t.max_result = tp->base.max_result;
    t.progress = store ? progress : NULL;
    t.progress_ud = store;
#ifdef ER_HAVE_REDIS
    if (er__celery_borne(j->rec)) { /* --celery: the PROGRESS state of its result key */
      t.progress = er__celery_progress;
      t.progress_ud = (void *)tp->base.store_url;
    }
#endif
    t.store_url = tp->base.store_url;
    t.base_url = tp->base.base_url;
    t.secret = tp->base.secret;
    if (__atomic_load_n(&j->revoked, __ATOMIC_RELAXED)) {
      /* Revoked, or its lease lost, while it waited here: it never starts. */
      t.out.rc = ER_EREVOKED;
      t.out.message = er_strdup("revoked before it started");
    } else {
      er__task_run(j->rec, j->def, &t);
    }
    j->out = t.out;

    pthread_mutex_lock(&tp->lock);
    tp->done[tp->ndone++] = j; /* capdone >= concurrency: never overflows */
    pthread_mutex_unlock(&tp->lock);
    uv_async_send(&tp->async);
  }
  er_store_close(store);
  return NULL;
}

static void on_async(uv_async_t *h) {
  threads_t *tp = h->data;
  pthread_mutex_lock(&tp->lock);
  size_t n = tp->ndone;
  er__job_t *batch[n ? n : 1];
  for (size_t i = 0; i < n; i++) batch[i] = tp->done[i];
  tp->ndone = 0;
  pthread_mutex_unlock(&tp->lock);
  for (size_t i = 0; i < n; i++) er__worker_job_done(tp->base.w, batch[i]);
}

static int start(er__pool_t *p) {
  threads_t *tp = (threads_t *)p;
  /* With prefetch, a job waits in the queue for the next free thread, so no
   * thread waits for the worker's loop between two tasks. */
  p->capacity = p->prefetch > 1 ? 2 * p->concurrency : p->concurrency;
  tp->cap = tp->capdone = (size_t)p->capacity;
  tp->todo = er_calloc(tp->cap, sizeof *tp->todo);
  tp->done = er_calloc(tp->capdone, sizeof *tp->done);
  tp->tids = er_calloc((size_t)p->concurrency, sizeof *tp->tids);
  if (!tp->todo || !tp->done || !tp->tids) return ER_ENOMEM;
  uv_async_init(er_loop_uv(p->loop), &tp->async, on_async);
  tp->async.data = tp;
  for (int i = 0; i < p->concurrency; i++) {
    if (pthread_create(&tp->tids[i], NULL, thread_main, tp) != 0) return ER_ESYS;
    tp->nthreads++;
  }
  return 0;
}

static int submit(er__pool_t *p, er__job_t *j) {
  threads_t *tp = (threads_t *)p;
  pthread_mutex_lock(&tp->lock);
  tp->todo[(tp->head + tp->len++) % tp->cap] = j;
  pthread_cond_signal(&tp->cond);
  pthread_mutex_unlock(&tp->lock);
  return 0;
}

static void revoke_job(er__pool_t *p, er__job_t *j) {}

static void on_closed(uv_handle_t *h) { er_free(h->data); }

static void destroy(er__pool_t *p, bool now) {
  threads_t *tp = (threads_t *)p;
  /* Threads cannot be stopped mid-task: wait for them either way. */
  pthread_mutex_lock(&tp->lock);
  tp->quit = true;
  tp->len = 0;
  pthread_cond_broadcast(&tp->cond);
  pthread_mutex_unlock(&tp->lock);
  for (int i = 0; i < tp->nthreads; i++) pthread_join(tp->tids[i], NULL);
  er_free(tp->tids);
  er_free(tp->todo);
  er_free(tp->done);
  pthread_mutex_destroy(&tp->lock);
  pthread_cond_destroy(&tp->cond);
  if (tp->async.loop)
    uv_close((uv_handle_t *)&tp->async, on_closed);
  else
    er_free(tp);
}

static const er__pool_ops_t threads_ops = {"threads", start, submit, revoke_job, destroy};

er__pool_t *er__pool_threads_new(void) {
  threads_t *tp = er_calloc(1, sizeof *tp);
  if (!tp) return NULL;
  tp->base.ops = &threads_ops;
  pthread_mutex_init(&tp->lock, NULL);
  pthread_cond_init(&tp->cond, NULL);
  return &tp->base;
}
