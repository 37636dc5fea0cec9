/* Blocking work on libuv's thread pool. The function runs on a pool thread and
 * completes its future there (completions are thread-safe); the libuv request
 * keeps the loop alive until the work is back. */
#include "loop/loop_internal.h"

typedef struct work {
  uv_work_t req;
  er_work_fn fn;
  void *arg;
  er_future_t *out;
} work_t;

static void run_work(uv_work_t *req) {
  work_t *w = req->data;
  int rc = w->fn(w->arg, w->out);
  if (rc < 0)
    er_future_set_error(w->out, rc, NULL); /* ER_EALREADY if fn completed it: fine */
  else
    er_future_set_none(w->out);
}

static void after_work(uv_work_t *req, int status) {
  work_t *w = req->data;
  er__loop_drain_inbox(w->out->loop); /* the completion, if it is not in yet */
  if (status == UV_ECANCELED) er_future_set_error(w->out, ER_ECANCELED, NULL);
  er_future_unref(w->out);
  er_free(w);
}

er_future_t *er_loop_queue_work(er_loop_t *loop, er_work_fn fn, void *arg) {
  if (!loop || !fn) return NULL;
  work_t *w = er_calloc(1, sizeof *w);
  er_future_t *f = er_future_new(loop);
  if (!w || !f) {
    er_free(w);
    er_future_unref(f);
    return NULL;
  }
  w->fn = fn;
  w->arg = arg;
  w->out = er_future_ref(f);
  w->req.data = w;
  if (uv_queue_work(loop->uv, &w->req, run_work, after_work) != 0) {
    er_future_unref(w->out);
    er_future_unref(f);
    er_free(w);
    return NULL;
  }
  return f;
}
