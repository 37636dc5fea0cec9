/* The client's futures. Sends run on libuv's thread pool. Result futures are
 * served by one watcher per client: it owns a store handle on the loop's
 * thread, wakes on the store's change notifications (uv_poll on its wake-up
 * fd) and checks every pending task then, with a slow timer as a safety net
 * (and as the only clock for backends without a wake-up fd). */
#include <string.h>
#include <uv.h>

#include "queue/client_internal.h"

#define SAFETY_MS 250
#define FALLBACK_MS 20

/* ---- send ---- */

typedef struct send_job {
  er_client_t *c;
  char *task;
  json_t *args, *kwargs, *context;
  er_send_opts_t opts;
  char *queue, *name, *key;
} send_job_t;

static void send_job_free(void *p) {
  send_job_t *j = p;
  er_free(j->task);
  er_free(j->queue);
  er_free(j->name);
  er_free(j->key);
  json_decref(j->args);
  json_decref(j->kwargs);
  json_decref(j->context);
  er_free(j);
}

static int run_send(void *arg, er_future_t *out) {
  send_job_t *j = arg;
  er_id_t id;
  int rc = er_send(j->c, j->task, j->args, j->kwargs, &j->opts, &id);
  if (rc < 0) {
    er_future_set_error(out, rc, "%s", er_client_last_error(j->c));
  } else {
    json_t *s = json_string(id.text);
    er_future_set_json(out, s);
    json_decref(s);
  }
  send_job_free(j);
  return 0;
}

er_future_t *er_send_async(er_client_t *c, er_loop_t *loop, const char *task, json_t *args,
                           json_t *kwargs, const er_send_opts_t *opts) {
  /* The job owns copies: the caller's strings and values may be gone by the
   * time a pool thread runs it. */
  send_job_t *j = er_calloc(1, sizeof *j);
  if (!j) return NULL;
  j->c = c;
  if (opts) j->opts = *opts;
  j->task = er_strdup(task);
  j->args = args ? json_deep_copy(args) : NULL;
  j->kwargs = kwargs ? json_deep_copy(kwargs) : NULL;
  j->context = opts && opts->context ? json_deep_copy(opts->context) : NULL;
  j->queue = opts && opts->queue ? er_strdup(opts->queue) : NULL;
  j->name = opts && opts->name ? er_strdup(opts->name) : NULL;
  j->key = opts && opts->key ? er_strdup(opts->key) : NULL;
  j->opts.context = j->context;
  j->opts.queue = j->queue;
  j->opts.name = j->name;
  j->opts.key = j->key;
  er_future_t *f = er_loop_queue_work(loop, run_send, j);
  if (!f) send_job_free(j);
  return f;
}

/* ---- result futures ---- */

typedef struct pending {
  char id[ER_ID_LEN + 1];
  er_future_t *f;
  uint64_t deadline_ms; /* monotonic; 0 none */
} pending_t;

struct er__watch {
  er_client_t *c;
  er_loop_t *loop;
  er_store_t *store;
  uv_poll_t *poll;
  uv_timer_t *timer;
  pending_t *items;
  size_t len, cap;
};

static void on_handle_closed(uv_handle_t *h) { er_free(h); }

static void settle(er__watch_t *w, er_future_t *f, er_task_rec_t *r) {
  json_t *result = NULL, *error = NULL;
  int rc = er__client_outcome(w->c, r, &result, &error);
  if (rc == 0) {
    er_future_set_json(f, result);
  } else {
    const char *msg = json_string_value(json_object_get(error, "message"));
    er_future_set_error(f, rc, "%s", msg ? msg : er_client_last_error(w->c));
  }
  json_decref(result);
  json_decref(error);
}

/* Checks one pending task; true when its future is done. */
static bool check(er__watch_t *w, pending_t *p, uint64_t now) {
  er_task_rec_t *r = NULL;
  int rc = er_store_get(w->store, p->id, NULL, &r);
  bool done = false;
  if (rc == ER_ENOENT) {
    er_future_set_error(p->f, ER_ENOENT, "no task %s", p->id);
    done = true;
  } else if (rc == 0 && er_state_finished(r->state)) {
    settle(w, p->f, r);
    done = true;
  } else if (p->deadline_ms && now >= p->deadline_ms) {
    er_future_set_error(p->f, ER_ETIMEDOUT, "task %s not finished in time", p->id);
    done = true;
  }
  er_task_rec_free(r);
  return done;
}

static void arm(er__watch_t *w);

static void sweep(er__watch_t *w) {
  uint64_t now = er_now_mono_ms();
  size_t keep = 0;
  for (size_t i = 0; i < w->len; i++) {
    if (check(w, &w->items[i], now))
      er_future_unref(w->items[i].f);
    else
      w->items[keep++] = w->items[i];
  }
  w->len = keep;
  arm(w);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  er__watch_t *w = h->data;
  er_store_drain_wakeups(w->store);
  sweep(w);
}

static void on_timer(uv_timer_t *h) { sweep(h->data); }

/* Watches while anything is pending (which keeps the loop alive), and lets
 * the loop go idle otherwise. */
static void arm(er__watch_t *w) {
  if (w->len == 0) {
    if (w->poll) uv_poll_stop(w->poll);
    uv_timer_stop(w->timer);
    return;
  }
  if (w->poll) uv_poll_start(w->poll, UV_READABLE, on_poll);
  uint64_t every = w->poll ? SAFETY_MS : FALLBACK_MS;
  uint64_t now = er_now_mono_ms();
  for (size_t i = 0; i < w->len; i++)
    if (w->items[i].deadline_ms && w->items[i].deadline_ms - now < every)
      every = w->items[i].deadline_ms > now ? w->items[i].deadline_ms - now : 0;
  uv_timer_start(w->timer, on_timer, every, 0);
}

static er__watch_t *watch_for(er_client_t *c, er_loop_t *loop) {
  if (c->watch) return c->watch->loop == loop ? c->watch : NULL;
  er__watch_t *w = er_calloc(1, sizeof *w);
  if (!w) return NULL;
  w->c = c;
  w->loop = loop;
  if (er_store_open(er_store_url(c->store), &w->store, NULL, 0) < 0) {
    er_free(w);
    return NULL;
  }
  w->timer = er_malloc(sizeof *w->timer);
  uv_timer_init(er_loop_uv(loop), w->timer);
  w->timer->data = w;
  int fd = er_store_wakeup_fd(w->store);
  if (fd >= 0) {
    w->poll = er_malloc(sizeof *w->poll);
    uv_poll_init(er_loop_uv(loop), w->poll, fd);
    w->poll->data = w;
  }
  c->watch = w;
  return w;
}

void er__client_watch_free(er_client_t *c) {
  er__watch_t *w = c->watch;
  if (!w) return;
  for (size_t i = 0; i < w->len; i++) {
    er_future_set_error(w->items[i].f, ER_ECANCELED, "the client was closed");
    er_future_unref(w->items[i].f);
  }
  er_free(w->items);
  if (w->poll) uv_close((uv_handle_t *)w->poll, on_handle_closed);
  uv_close((uv_handle_t *)w->timer, on_handle_closed);
  er_store_close(w->store);
  er_free(w);
  c->watch = NULL;
}

er_future_t *er_result_future(er_client_t *c, er_loop_t *loop, const char *id,
                              int64_t timeout_ms) {
  er_future_t *f = er_future_new(loop);
  if (!f) return NULL;
  if (!id || !er_id_valid(id)) {
    er_future_set_error(f, ER_EINVAL, "not a task id: '%s'", id ? id : "");
    return f;
  }
  er__watch_t *w = watch_for(c, loop);
  if (!w) {
    er_future_set_error(f, ER_EINVAL, "a client's result futures must all be on one loop");
    return f;
  }
  pending_t p = {.f = f, .deadline_ms = timeout_ms >= 0 ? er_now_mono_ms() + (uint64_t)timeout_ms : 0};
  memcpy(p.id, id, sizeof p.id);
  if (timeout_ms < 0) p.deadline_ms = 0;
  if (check(w, &p, er_now_mono_ms())) return f;
  if (w->len == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    pending_t *v = er_realloc(w->items, cap * sizeof *v);
    if (!v) {
      er_future_set_error(f, ER_ENOMEM, NULL);
      return f;
    }
    w->items = v;
    w->cap = cap;
  }
  p.f = er_future_ref(f);
  w->items[w->len++] = p;
  arm(w);
  return f;
}
