/* How a worker stops: at a signal or er_worker_stop, warm (the running tasks
 * finish within the grace period; those reserved ahead go back at once) or
 * at once (everything goes back). The loop ends when nothing is left running
 * and every store request is back. */
#include <stdio.h>

#include "queue/worker_internal.h"

/* ---- stopping ---- */

static void close_all(er_worker_t *w) {
  uv_timer_t *timers[] = {&w->tick, &w->beat, &w->renew, &w->grace, &w->flush_timer, &w->due_timer};
  for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) uv_timer_stop(timers[i]);
  if (w->wake_on) uv_poll_stop(&w->wake);
  w->wake_on = false;
  if (w->sigterm.loop) uv_signal_stop(&w->sigterm); /* an embedded worker has none */
  if (w->sigint.loop) uv_signal_stop(&w->sigint);
  uv_unref((uv_handle_t *)&w->stop_async);
  er__sthread_unref(w->io);
}

void er__worker_maybe_finish(er_worker_t *w) {
  if (!w->stopping || w->running || w->ndone || er__sthread_pending(w->io)) return;
  close_all(w);
  er_loop_stop(w->loop);
}

/* The jobs of the running list that match: all, or the backlog only. */
static size_t collect(er_worker_t *w, bool backlog_only, er__job_t ***out) {
  size_t n = 0;
  for (er__job_t *j = w->running; j; j = j->next) n += !backlog_only || er__in_backlog(j);
  *out = er_calloc(n ? n : 1, sizeof **out);
  if (!*out) return 0;
  size_t i = 0;
  for (er__job_t *j = w->running; j; j = j->next)
    if (!backlog_only || er__in_backlog(j)) (*out)[i++] = j;
  return n;
}

static void give_back_jobs(er_worker_t *w, bool backlog_only, const char *why) {
  er__job_t **jobs;
  size_t n = collect(w, backlog_only, &jobs);
  for (size_t i = 0; i < n; i++) er__worker_unlink(w, jobs[i]);
  if (n) er__io_give_back(w, jobs, n, why);
  er_free(jobs);
}

static void stop_now(er_worker_t *w) {
  w->stopping = 2;
  er__io_flush(w);
  if (w->pool) {
    w->pool->ops->destroy(w->pool, true);
    w->pool = NULL;
  }
  /* The pool has stopped running them: every reserved task goes back. */
  give_back_jobs(w, false, "the worker stopped");
  w->nslots_used = w->ntasklets = 0;
  w->bl_len = 0;
  er__worker_maybe_finish(w);
}

static void on_grace(uv_timer_t *h) {
  er_worker_t *w = h->data;
  er_log(ER_LOG_WARN, "worker %s: grace period over", w->id);
  stop_now(w);
}

static void request_stop(er_worker_t *w, bool now) {
  if (now || w->stopping == 1) {
    if (w->stopping != 2) stop_now(w);
    return;
  }
  if (w->stopping) return;
  w->stopping = 1;
  if (!w->opts.quiet)
    fprintf(stderr, "errand worker: stopping; %zu tasks still running (again to stop now)\n",
            w->nslots_used + w->ntasklets);
  if (w->wake_on) uv_poll_stop(&w->wake);
  w->wake_on = false;
  uv_timer_stop(&w->due_timer);
  /* The tasks reserved ahead go back at once, for other workers; only those
   * already running are waited for. */
  w->bl_len = 0;
  give_back_jobs(w, true, "reserved ahead, the worker is stopping");
  uv_timer_start(&w->grace, on_grace, (uint64_t)w->opts.grace_ms, 0);
  er__worker_maybe_finish(w);
}

void er__worker_on_signal(uv_signal_t *h, int signum) { request_stop(h->data, false); }

void er__worker_on_stop_async(uv_async_t *h) {
  er_worker_t *w = h->data;
  int req = atomic_exchange(&w->stop_req, 0);
  if (req) request_stop(w, req == 2);
}

void er_worker_stop(er_worker_t *w, bool now) {
  atomic_store(&w->stop_req, now ? 2 : 1);
  uv_async_send(&w->stop_async);
}
