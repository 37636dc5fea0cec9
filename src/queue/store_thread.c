/* A worker's store thread: every store call the worker makes runs here, one
 * at a time in the order asked, on the worker's own store handle, so that the
 * worker's loop never waits on the store. A store that is slow, locked or
 * away then delays only what needs it (the next reservation, the writing of
 * outcomes), while the pool's children go on with the tasks they hold.
 * Finished requests go back to the loop through a uv_async, in order. */
#include <pthread.h>
#include <stdio.h>

#include "queue/store_thread.h"

struct er__sthread {
  er_store_t *store;
  pthread_t tid;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  er__sreq_t *todo, *todo_tail; /* FIFO */
  er__sreq_t *done, *done_tail; /* FIFO */
  bool quit;
  bool joined; /* the thread has ended: post runs a request at once */
  /* Held by the thread while it runs a request, and by the loop thread while
   * it forks: a child forked while the thread is inside a store call could
   * inherit a lock (the allocator's, SQLite's, the logger's) held forever. */
  pthread_mutex_t gate;
  bool hold_wanted; /* the loop waits for the gate: take no next request */
  uv_async_t async;
  size_t pending; /* posted, their done not yet run (loop thread only) */
};

static void push(er__sreq_t **head, er__sreq_t **tail, er__sreq_t *r) {
  r->next = NULL;
  if (*tail)
    (*tail)->next = r;
  else
    *head = r;
  *tail = r;
}

/* Runs r; a failure's message is read here, where the store handle is used. */
static void run_one(er__sthread_t *t, er__sreq_t *r) {
  r->run(r, t->store);
  if (r->rc < 0) snprintf(r->err, sizeof r->err, "%s", er_store_last_error(t->store));
}

static void *thread_main(void *arg) {
  er__sthread_t *t = arg;
  pthread_mutex_lock(&t->lock);
  for (;;) {
    while ((!t->todo || t->hold_wanted) && !t->quit) pthread_cond_wait(&t->cond, &t->lock);
    er__sreq_t *r = t->todo;
    if (!r) break; /* quit, and nothing left to do */
    t->todo = r->next;
    if (!t->todo) t->todo_tail = NULL;
    pthread_mutex_unlock(&t->lock);
    pthread_mutex_lock(&t->gate);
    run_one(t, r);
    pthread_mutex_unlock(&t->gate);
    pthread_mutex_lock(&t->lock);
    push(&t->done, &t->done_tail, r);
    uv_async_send(&t->async);
  }
  pthread_mutex_unlock(&t->lock);
  return NULL;
}

/* Runs the done callbacks of finished requests, in the order they were asked. */
static void deliver(er__sthread_t *t) {
  pthread_mutex_lock(&t->lock);
  er__sreq_t *r = t->done;
  t->done = t->done_tail = NULL;
  pthread_mutex_unlock(&t->lock);
  while (r) {
    er__sreq_t *next = r->next;
    t->pending--;
    r->done(r);
    r = next;
  }
}

static void on_async(uv_async_t *h) { deliver(h->data); }

int er__sthread_start(er_loop_t *loop, er_store_t *store, er__sthread_t **out) {
  er__sthread_t *t = er_calloc(1, sizeof *t);
  if (!t) return ER_ENOMEM;
  t->store = store;
  pthread_mutex_init(&t->lock, NULL);
  pthread_mutex_init(&t->gate, NULL);
  pthread_cond_init(&t->cond, NULL);
  if (uv_async_init(er_loop_uv(loop), &t->async, on_async) != 0) {
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->gate);
    pthread_cond_destroy(&t->cond);
    er_free(t);
    return ER_ESYS;
  }
  t->async.data = t;
  if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
    er__sthread_free(t);
    return ER_ESYS;
  }
  t->started = true;
  *out = t;
  return 0;
}

void er__sthread_post(er__sthread_t *t, er__sreq_t *r) {
  if (t->joined) {
    /* A done() run by er__sthread_free asked for more: the thread is gone,
     * and this thread may use the store now. */
    run_one(t, r);
    r->done(r);
    return;
  }
  t->pending++;
  pthread_mutex_lock(&t->lock);
  push(&t->todo, &t->todo_tail, r);
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->lock);
}

void er__sthread_hold(er__sthread_t *t) {
  if (!t || t->joined) return;
  pthread_mutex_lock(&t->lock);
  t->hold_wanted = true;
  pthread_mutex_unlock(&t->lock);
  pthread_mutex_lock(&t->gate);
}

void er__sthread_release(er__sthread_t *t) {
  if (!t || t->joined) return;
  pthread_mutex_unlock(&t->gate);
  pthread_mutex_lock(&t->lock);
  t->hold_wanted = false;
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->lock);
}

size_t er__sthread_pending(const er__sthread_t *t) { return t ? t->pending : 0; }

void er__sthread_unref(er__sthread_t *t) {
  if (t) uv_unref((uv_handle_t *)&t->async);
}

static void on_closed(uv_handle_t *h) { er_free(h->data); }

void er__sthread_free(er__sthread_t *t) {
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  t->quit = true;
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->lock);
  /* The thread runs what is left before it ends; their done callbacks then
   * run here, so every request is released. */
  if (t->started) pthread_join(t->tid, NULL);
  t->joined = true;
  deliver(t);
  pthread_mutex_destroy(&t->lock);
  pthread_mutex_destroy(&t->gate);
  pthread_cond_destroy(&t->cond);
  uv_close((uv_handle_t *)&t->async, on_closed);
}
