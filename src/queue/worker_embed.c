/* An embedded worker: er_worker_run on a thread of its own inside a host
 * process (a web server that hands its slow work to errand), started and
 * stopped as often as the host likes. The host owns the process: nothing
 * here changes a signal's disposition, and no process-directed signal is
 * ever delivered to one of the worker's threads, so the host's handlers (or
 * its sigwait thread) see them all. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "queue/worker_internal.h"

typedef struct er__embed {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool ready; /* start-up is over: start_rc says how it went */
  int start_rc;
  int run_rc; /* er_worker_run's answer, read after the thread is joined */
} er__embed_t;

/* Every signal the kernel sends to the process rather than raises on the
 * thread at fault. The faults a thread causes itself (a bad address, a bad
 * instruction, an arithmetic trap) cannot be blocked usefully: blocked, they
 * kill the process without its handler. SIGPIPE and SIGXFSZ are raised on
 * the writing thread: blocked, the write fails with EPIPE or EFBIG instead,
 * which is what the worker's own process ignores them for. */
static void async_signals(sigset_t *set) {
  sigfillset(set);
  static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) sigdelset(set, faults[i]);
}

static void on_started(er_worker_t *w, int rc) {
  er__embed_t *e = w->embed;
  pthread_mutex_lock(&e->lock);
  e->start_rc = rc;
  e->ready = true;
  pthread_cond_signal(&e->cond);
  pthread_mutex_unlock(&e->lock);
}

static void *thread_main(void *arg) {
  er_worker_t *w = arg;
  w->embed->run_rc = er__worker_run(w, on_started);
  return NULL;
}

static void embed_free(er__embed_t *e) {
  pthread_mutex_destroy(&e->lock);
  pthread_cond_destroy(&e->cond);
  er_free(e);
}

static int refuse(char *errmsg, size_t size, const char *why) {
  if (errmsg && size) snprintf(errmsg, size, "%s", why);
  return ER_EINVAL;
}

int er_worker_start(const er_worker_opts_t *opts, er_worker_t **out, char *errmsg,
                    size_t errmsg_size) {
  *out = NULL;
  if (!opts) return refuse(errmsg, errmsg_size, "embedded worker: no options given");
  /* prefork would fork the host: each child a copy of the server (its
   * listening sockets, its memory) made while the host's other threads may
   * hold the allocator's or any library's lock, which the child then waits
   * on forever. The worker orders its own threads around fork; it cannot
   * order the host's. */
  if (opts->pool == ER_POOL_PREFORK)
    return refuse(errmsg, errmsg_size,
                  "embedded worker: pool prefork would fork the host process; use "
                  "ER_POOL_THREADS or ER_POOL_SOLO (or run `errand worker` beside it)");
  er_worker_t *w;
  int rc = er_worker_new(opts, &w, errmsg, errmsg_size);
  if (rc < 0) return rc;
  er__embed_t *e = er_calloc(1, sizeof *e);
  if (!e) {
    er_worker_free(w);
    return ER_ENOMEM;
  }
  pthread_mutex_init(&e->lock, NULL);
  pthread_cond_init(&e->cond, NULL);
  w->embed = e;
  /* The worker's thread, and every thread it starts (store thread, pool
   * threads), inherit this mask. */
  sigset_t block, old;
  async_signals(&block);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int prc = pthread_create(&e->thread, NULL, thread_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (prc != 0) {
    embed_free(e);
    w->embed = NULL;
    er_worker_free(w);
    if (errmsg && errmsg_size) snprintf(errmsg, errmsg_size, "embedded worker: no thread");
    return ER_ESYS;
  }
  pthread_mutex_lock(&e->lock);
  while (!e->ready) pthread_cond_wait(&e->cond, &e->lock);
  rc = e->start_rc;
  pthread_mutex_unlock(&e->lock);
  if (rc < 0) {
    pthread_join(e->thread, NULL);
    embed_free(e);
    w->embed = NULL;
    er_worker_free(w);
    if (errmsg && errmsg_size)
      snprintf(errmsg, errmsg_size, "embedded worker: could not start: %s", er_strerror(rc));
    return rc;
  }
  *out = w;
  return 0;
}

int er_worker_join(er_worker_t *w, int *rc) {
  if (!w || !w->embed) return ER_EINVAL;
  er__embed_t *e = w->embed;
  pthread_join(e->thread, NULL);
  if (rc) *rc = e->run_rc;
  embed_free(e);
  w->embed = NULL;
  er_worker_free(w);
  return 0;
}
