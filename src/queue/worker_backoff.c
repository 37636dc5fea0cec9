/* One back-off for every store call the worker makes (reserve, the writing
 * of outcomes, renewals, heartbeats, housekeeping, the next due time). A
 * store that is full, corrupt, locked or away fails every call the same way:
 * without a pause the worker would ask again as fast as its loop turns and
 * log each failure, thousands of lines a second that bury the one that says
 * why. So after a failure nothing that can wait is asked before the back-off
 * ends (50 ms, doubling to 5 s, with jitter so that many workers do not come
 * back in step), the cause is logged once when it starts (again when it
 * changes, and as a reminder each minute), and the end is logged once with
 * how long it lasted. Outcomes wait in the worker meanwhile, never dropped. */
#include <stdio.h>
#include <string.h>

#include "queue/worker_internal.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define REMIND_MS 60000

bool er__store_fault(int rc) {
  return rc == ER_EUNAVAILABLE || rc == ER_EBUSY || rc == ER_EIO || rc == ER_ENOMEM ||
         rc == ER_ECORRUPT || rc == ER_ESYS || rc == ER_ETIMEDOUT || rc == ER_ENOENT;
}

bool er__store_waiting(const er_worker_t *w) {
  return w->bo.fails && er_now_mono_ms() < w->bo.until_ms;
}

/* The back-off is over: ask again what waited. */
static void on_retry(uv_timer_t *h) {
  er_worker_t *w = h->data;
  er__worker_tick(w); /* outcomes kept, housekeeping, work */
  er__io_next_due(w);
}

/* The file of the worker's store was deleted (the SQLite store answers
 * ER_ENOENT with that reason): whatever the worker writes goes to a file no
 * one else can open, so it stops rather than work for no one. */
static void store_gone(er_worker_t *w, const char *msg) {
  if (w->exit_rc) return;
  w->exit_rc = ER_ENOENT;
  er_log(ER_LOG_ERROR,
         "worker %s: %s; stopping: what it would record there no one else could read "
         "(restart it once the store is back)",
         w->id, msg);
  er_worker_stop(w, true);
}

/* The cause in a store's message: what follows the call it names ("sqlite
 * reserve: database is locked"), the same whichever call met it. */
static const char *cause_of(const char *msg) {
  const char *p = strstr(msg, ": ");
  return p ? p + 2 : msg;
}

void er__store_failed(er_worker_t *w, int rc, const char *msg) {
  er__backoff_t *b = &w->bo;
  uint64_t now = er_now_mono_ms();
  if (!msg || !*msg) msg = er_strerror(rc);
  if (rc == ER_ENOENT) {
    store_gone(w, msg);
    return;
  }
  if (!b->fails) b->since_ms = now;
  b->fails++;
  char cause[sizeof b->cause];
  snprintf(cause, sizeof cause, "%s", cause_of(msg));
  bool same = b->rc == rc && !strcmp(b->cause, cause);
  if (!same || now - b->warned_ms >= REMIND_MS) {
    er_log(ER_LOG_WARN, "worker %s: store calls %s: %s; backing off (up to %d s)", w->id,
           same ? "still fail" : "fail", msg, BACKOFF_MAX_MS / 1000);
    b->rc = rc;
    memcpy(b->cause, cause, sizeof b->cause);
    b->warned_ms = now;
  }
  /* Calls asked together fail together: one round doubles the wait once. */
  if (now < b->until_ms) return;
  b->delay_ms = b->delay_ms ? b->delay_ms * 2 : BACKOFF_MIN_MS;
  if (b->delay_ms > BACKOFF_MAX_MS) b->delay_ms = BACKOFF_MAX_MS;
  /* Equal jitter, as a task's retries: half fixed, half random. */
  uint64_t wait = b->delay_ms / 2 + (uint64_t)(er__jitter() * (double)(b->delay_ms / 2));
  b->until_ms = now + wait;
  if (!b->timer.loop) {
    uv_timer_init(er_loop_uv(w->loop), &b->timer);
    b->timer.data = w;
  }
  uv_timer_start(&b->timer, on_retry, wait, 0);
}

void er__store_ok(er_worker_t *w) {
  er__backoff_t *b = &w->bo;
  if (!b->fails) return;
  uint64_t took = er_now_mono_ms() - b->since_ms;
  char t[32];
  er__human_ms((int64_t)took, t, sizeof t);
  er_log(ER_LOG_INFO, "worker %s: store recovered after %u failures in %s", w->id, b->fails, t);
  if (b->timer.loop) uv_timer_stop(&b->timer);
  b->fails = 0;
  b->delay_ms = b->until_ms = b->warned_ms = 0;
  b->rc = 0;
  b->cause[0] = 0;
}

void er__store_backoff_close(er_worker_t *w, uv_close_cb cb) {
  uv_handle_t *h = (uv_handle_t *)&w->bo.timer;
  if (h->loop && !uv_is_closing(h)) uv_close(h, cb);
}
