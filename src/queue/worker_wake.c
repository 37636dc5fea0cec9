/* When the worker looks at the store. With a store that has precise wake-ups
 * (er_store_watch) it is woken only for its own queues' work and for revokes
 * of running tasks; with one that knows its next due time
 * (er_store_next_due) one timer is set for the next delayed task or lease
 * end, and a slow safety tick covers the rest. A store without them (a call
 * answers ER_ENOTSUP) gets what came before: any change wakes the worker, and
 * a 100 ms tick finds delayed tasks. */
#include <string.h>

#include "queue/worker_internal.h"

#define PAST_DUE_MAX_MS 1000
#define WAKE_RETRY_MS 100

static void poll_on(er_worker_t *w);
static void poll_on_later(void *arg) { poll_on(arg); }

/* Looks at the wake-up fd again a little later rather than at once: it may
 * stay readable while what failed still fails, round and round. */
static void poll_on_soon(er_worker_t *w) {
  if (!er_loop_call_later(w->loop, WAKE_RETRY_MS, poll_on_later, w)) poll_on(w);
}

/* ---- reading the wake-ups ---- */

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  er_wakeups_t wk;
  bool precise;
} wake_t;

static void wake_run(er__sreq_t *r, er_store_t *s) {
  wake_t *q = (wake_t *)r;
  if (q->precise) {
    r->rc = er_store_read_wakeups(s, &q->wk);
  } else {
    er_store_drain_wakeups(s);
    r->rc = 0;
  }
}

static void wake_done(er__sreq_t *r) {
  wake_t *q = (wake_t *)r;
  er_worker_t *w = q->w;
  w->reading_wakeups = false;
  if (q->precise && r->rc == ER_ENOTSUP) w->precise = 0; /* watch without reads: as before */
  bool precise = q->precise && r->rc == 0;
  if (!precise || q->wk.work) {
    er__io_fill(w);
    er__io_next_due(w); /* a delayed task may have come */
  }
  if (precise && q->wk.control) er__io_renew(w); /* its answer names the revoked tasks */
  if (!precise) er__io_renew_soon(w);
  bool failed = q->precise && r->rc < 0 && r->rc != ER_ENOTSUP;
  er_wakeups_clear(&q->wk);
  er_free(q);
  if (failed) {
    poll_on_soon(w); /* the store is away */
  } else {
    poll_on(w);
  }
  er__worker_maybe_finish(w);
}

static void on_wake(uv_poll_t *h, int status, int events) {
  er_worker_t *w = h->data;
  /* Level-triggered: stop until the store thread has read what it says. */
  uv_poll_stop(&w->wake);
  w->wake_on = false;
  if (w->reading_wakeups) return;
  wake_t *q = er__io_req_new(sizeof *q, wake_run, wake_done);
  if (!q) {
    poll_on_soon(w); /* out of memory: not deaf from now on */
    return;
  }
  q->w = w;
  q->precise = w->precise == 1;
  w->reading_wakeups = true;
  er__sthread_post(w->io, &q->r);
}

static void poll_on(er_worker_t *w) {
  if (!w->has_wake || w->wake_on || w->stopping || w->reading_wakeups) return;
  if (uv_poll_start(&w->wake, UV_READABLE, on_wake) == 0) w->wake_on = true;
}

/* ---- watching ---- */

static void watch_run(er__sreq_t *r, er_store_t *s) {
  wake_t *q = (wake_t *)r;
  er_worker_t *w = q->w;
  er_watch_t watch = {(const char *const *)w->queues, w->nqueues, false, true};
  r->rc = er_store_watch(s, &watch);
  if (r->rc == 0) er_store_read_wakeups(s, &q->wk); /* start the record */
  else er_store_drain_wakeups(s);
}

static void watch_done(er__sreq_t *r) {
  wake_t *q = (wake_t *)r;
  er_worker_t *w = q->w;
  w->precise = r->rc == 0;
  if (r->rc < 0 && r->rc != ER_ENOTSUP)
    er_log(ER_LOG_WARN, "worker %s: cannot watch its queues (%s); woken by every change", w->id,
           er_strerror(r->rc));
  er_wakeups_clear(&q->wk);
  er_free(q);
  poll_on(w);
  er__io_fill(w);
  er__io_next_due(w);
  er__worker_maybe_finish(w);
}

void er__io_watch(er_worker_t *w) {
  wake_t *q = er__io_req_new(sizeof *q, watch_run, watch_done);
  if (!q) return;
  q->w = w;
  er__sthread_post(w->io, &q->r);
}

/* ---- the next due time ---- */

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  int64_t due_ms;
} due_t;

static void due_run(er__sreq_t *r, er_store_t *s) {
  due_t *q = (due_t *)r;
  r->rc = er_store_next_due(s, (const char *const *)q->w->queues, q->w->nqueues, &q->due_ms);
}

static void on_due(uv_timer_t *h) {
  er_worker_t *w = h->data;
  w->due_ms = 0;
  /* A lease may have ended (maintain puts its task back) or a delayed task
   * come due (fill takes it); both go to the store thread in this order. */
  er__io_maintain(w);
  er__io_fill(w);
  er__io_next_due(w);
}

static void on_tick_safety(uv_timer_t *h);

static void arm(er_worker_t *w, int64_t due_ms) {
  if (!due_ms) {
    uv_timer_stop(&w->due_timer);
    w->due_ms = 0;
    return;
  }
  int64_t delay = due_ms - er_now_wall_ms();
  if (delay <= 0) {
    /* Due already, yet still there: nothing free to take it, or another
     * worker is on it. Look again, less often each time. */
    delay = w->past_due_delay;
    w->past_due_delay = w->past_due_delay ? w->past_due_delay * 2 : 1;
    if (w->past_due_delay > PAST_DUE_MAX_MS) w->past_due_delay = PAST_DUE_MAX_MS;
  } else {
    w->past_due_delay = 0;
    delay += 1; /* the loop's clock counts whole milliseconds: never early */
  }
  w->due_ms = due_ms;
  uv_update_time(er_loop_uv(w->loop));
  uv_timer_start(&w->due_timer, on_due, (uint64_t)delay, 0);
}

static void due_done(er__sreq_t *r) {
  due_t *q = (due_t *)r;
  er_worker_t *w = q->w;
  w->asking_due = false;
  if (r->rc == ER_ENOTSUP) {
    w->has_due = 0;
  } else if (r->rc < 0) {
    er__store_failed(w, r->rc, r->err); /* its timer asks again */
  } else if (r->rc == 0) {
    if (w->has_due != 1 && w->has_wake) {
      /* Due times and wake-ups cover what the fast tick was for. */
      uv_timer_start(&w->tick, on_tick_safety, ER__SAFETY_TICK_MS, ER__SAFETY_TICK_MS);
    }
    w->has_due = 1;
    if (!w->stopping) arm(w, q->due_ms);
  }
  er_free(q);
  if (w->due_again) er__io_next_due(w);
  er__worker_maybe_finish(w);
}

void er__io_next_due(er_worker_t *w) {
  if (!w->has_due || w->stopping || er__store_waiting(w)) return;
  if (w->asking_due) {
    w->due_again = true;
    return;
  }
  w->due_again = false;
  due_t *q = er__io_req_new(sizeof *q, due_run, due_done);
  if (!q) return;
  q->w = w;
  w->asking_due = true;
  er__sthread_post(w->io, &q->r);
}

static void on_tick_safety(uv_timer_t *h) {
  er_worker_t *w = h->data;
  er__worker_tick(w);
  er__io_next_due(w);
}
