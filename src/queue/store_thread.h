/* A worker's store thread (store_thread.c): runs store calls off the loop.
 * A request's run() runs on the store thread with the store handle; its
 * done() then runs on the loop thread, requests in the order they were
 * posted. The request is the caller's (usually the first member of a larger
 * struct that done() frees). */
#ifndef ER_QUEUE_STORE_THREAD_H
#define ER_QUEUE_STORE_THREAD_H

#include <uv.h>

#include "errand/loop.h"
#include "errand/store.h"

typedef struct er__sreq er__sreq_t;
struct er__sreq {
  void (*run)(er__sreq_t *r, er_store_t *s); /* store thread */
  void (*done)(er__sreq_t *r);               /* loop thread */
  int rc;                                    /* for run to set */
  char err[200]; /* rc < 0: the store's message (er_store_last_error) */
  er__sreq_t *next;
};

typedef struct er__sthread er__sthread_t;

/* Starts the thread for store (borrowed: it must outlive the thread; only the
 * thread uses it until er__sthread_free returns). Loop thread. */
int er__sthread_start(er_loop_t *loop, er_store_t *store, er__sthread_t **out);
/* Queues r. Loop thread. */
void er__sthread_post(er__sthread_t *t, er__sreq_t *r);
/* Keeps the thread out of the store while this thread forks: waits for the
 * request it runs, if any, to end (a store call: milliseconds, or up to the
 * store's timeout when it is stuck), and holds it before the next one until
 * er__sthread_release. Loop thread. NULL: nothing to do. */
void er__sthread_hold(er__sthread_t *t);
void er__sthread_release(er__sthread_t *t);
/* Requests posted whose done() has not run yet. */
size_t er__sthread_pending(const er__sthread_t *t);
/* Lets the loop end while the thread idles (its handle stops counting). */
void er__sthread_unref(er__sthread_t *t);
/* Runs what is still queued, delivers every done(), ends the thread and
 * closes its loop handle (the loop must still run or be freed after). */
void er__sthread_free(er__sthread_t *t);

#endif
