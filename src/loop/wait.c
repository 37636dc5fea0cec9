/* Waiting for futures: outside a tasklet the caller's thread runs the loop
 * until the future is done; inside one the tasklet is suspended instead, so
 * the loop never runs nested on a tasklet's stack. And ndb's toplevel: a
 * tasklet run to the end on a loop of its own. */
#include "loop/loop_internal.h"

int er_future_wait(er_future_t *f) {
  if (!er_is_future(f)) return ER_ENOTFUTURE;
  if (er__tasklet_current()) {
    /* Once f is done, waiting succeeded whatever f's outcome: telling the two
     * apart by er_await's code mistook a future failed with ER_EINVAL or
     * ER_EDEADLK for a failed wait (and wait_all then stopped early). */
    int rc = er_await(f);
    return er_future_done(f) ? 0 : rc;
  }
  er_loop_t *loop = f->loop;
  while (!er_future_done(f)) {
    if (!er_loop_run1(loop)) return ER_EDEADLK;
  }
  return 0;
}

int er_future_get_result(er_future_t *f) {
  int rc = er_future_wait(f);
  return rc < 0 ? rc : er_future_status(f);
}

int er_future_check_success(er_future_t *f) { return er_future_get_result(f); }

static void any_done(er_future_t *f, void *arg) {
  er_future_t *any = arg;
  er_future_set_none(any); /* the first one wins; later ones get EALREADY */
  er_future_unref(any);
}

int er_future_wait_any(er_future_t *const *fs, size_t n, size_t *index) {
  if (n == 0) return ER_ENOENT;
  for (size_t i = 0; i < n; i++) {
    if (!er_is_future(fs[i])) return ER_ENOTFUTURE;
    if (er_future_done(fs[i])) {
      if (index) *index = i;
      return 0;
    }
  }
  /* One helper future that the first completion sets; each callback holds a
   * reference to it. */
  er_future_t *any = er_future_new(fs[0]->loop);
  if (!any) return ER_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    rc = er_future_add_immediate_callback(fs[i], any_done, er_future_ref(any));
    if (rc < 0) er_future_unref(any);
  }
  if (rc == 0) rc = er_future_wait(any);
  /* Take back the callbacks of the futures still pending (all of them after a
   * deadlock): left in place, they would keep `any` alive until those futures
   * complete, and leak it if they are freed first. */
  for (size_t i = 0; i < n; i++)
    while (er__future_remove_callback(fs[i], any_done, any)) er_future_unref(any);
  er_future_unref(any);
  if (rc < 0) return rc;
  for (size_t i = 0; i < n; i++) {
    if (er_future_done(fs[i])) {
      if (index) *index = i;
      return 0;
    }
  }
  return ER_EINTERNAL;
}

static void turned(er_future_t *turn, void *arg) {
  (void)arg;
  er_future_set_none(turn);
}

/* ndb's wait_all returns once the loop has turned after the last future
 * completed, so the callbacks those completions queued have run: a call queued
 * now runs after every one of them (the queue is FIFO). Nothing queued, nothing
 * to wait for. */
static int wait_queued_callbacks(er_loop_t *loop) {
  if (!loop->calls_len) return 0;
  er_future_t *turn = er_future_new(loop);
  if (!turn) return ER_ENOMEM;
  int rc = er__loop_call_future_cb(loop, turned, turn, NULL);
  if (rc == 0) rc = er_future_wait(turn);
  er_future_unref(turn);
  return rc;
}

int er_future_wait_all(er_future_t *const *fs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = er_future_wait(fs[i]);
    if (rc < 0) return rc;
  }
  return n && fs[0]->loop ? wait_queued_callbacks(fs[0]->loop) : 0;
}

int er_tasklet_run(er_tasklet_fn fn, void *arg, const er_tasklet_opts_t *opts, er_future_t **out) {
  if (out) *out = NULL;
  if (!fn) return ER_EINVAL;
  if (er__tasklet_current()) return ER_ESTATE; /* its await would be on another loop */
  er_loop_t *prev = er_loop_current(), *loop;
  int rc = er_loop_new(&loop, NULL);
  if (rc < 0) return rc;
  er__loop_swap_current(loop); /* fn's er_loop_current(), even on its first run */
  er_future_t *f = er_tasklet_spawn(loop, fn, arg, opts);
  if (!f) {
    rc = ER_ENOMEM;
  } else {
    rc = er_await(f); /* the error also becomes this thread's (er_last_error) */
    /* As ndb's toplevel: what the tasklet started finishes too. */
    er_loop_run(loop);
    if (!er_future_done(f)) {
      rc = ER_EDEADLK;
      er_future_unref(f);
    } else {
      f->loop = NULL; /* detached: outlives the loop, for reading */
      if (out)
        *out = f;
      else
        er_future_unref(f);
    }
  }
  er__loop_swap_current(prev);
  er_loop_free(loop);
  return rc;
}
