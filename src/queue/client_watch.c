/* The client's result futures, served by one watcher thread per client
 * with a store handle of its own: the loop that asked only gets completions,
 * and a slow store never stalls it. The thread blocks in poll(2) on the
 * store's wake-up fd; with a store that lists finished tasks
 * (er_store_read_wakeups) it re-reads only the waiters whose ids are listed,
 * else every waiter on every change. A slow safety sweep re-reads everything
 * now and then in case a wake-up was lost (and is the only clock for a store
 * without a wake-up fd). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "queue/client_internal.h"

#define SAFETY_MS 250     /* between sweeps when every change wakes us */
#define PRECISE_SAFETY_MS 2000 /* between sweeps when wake-ups name the tasks */
#define FALLBACK_MS 20    /* a store without a wake-up fd: look this often */

typedef struct pending {
  char id[ER_ID_LEN + 1];
  er_future_t *f;       /* the watcher's reference */
  uint64_t deadline_ms; /* monotonic; 0 none */
  bool fresh;           /* not read yet */
} pending_t;

/* One store read: the outcome for every waiter on id. */
typedef struct check {
  char id[ER_ID_LEN + 1];
  int rc;
  er_task_rec_t *rec;
} check_t;

struct er__watch {
  er_loop_t *loop;
  char *url;
  int safety_ms; /* between sweeps; 0: by the kind of store */
  pthread_t thread;
  int ctl[2]; /* a pipe: the loop (a new waiter) or close (stop) wakes the thread */
  /* Owned by the thread. */
  er_store_t *store;
  bool precise;
  uint64_t next_sweep_ms;
  /* Shared, under mu. The loop thread only appends to items; the watcher
   * thread alone removes, so indices below a length it saw stay put. */
  pthread_mutex_t mu;
  pending_t *items;
  size_t len, cap;
  bool stop;
  er__watch_stats_t stats;
};

static void poke(er__watch_t *w) {
  ssize_t n;
  do n = write(w->ctl[1], "", 1);
  while (n < 0 && errno == EINTR);
  /* A full pipe (EAGAIN) already holds a wake-up for the thread. */
}

static void settle(pending_t *p, const check_t *k) {
  json_t *result = NULL, *error = NULL;
  char msg[256];
  int rc = er__rec_outcome(k->rec, &result, &error, msg, sizeof msg);
  if (rc == 0) {
    er_future_set_json(p->f, result);
  } else {
    const char *m = json_string_value(json_object_get(error, "message"));
    er_future_set_error(p->f, rc, "%s", m ? m : msg);
  }
  json_decref(result);
  json_decref(error);
}

/* Completes p if its check (may be NULL) or its deadline says so. */
static bool decide(pending_t *p, const check_t *k, uint64_t now) {
  if (k && k->rc == ER_ENOENT) {
    er_future_set_error(p->f, ER_ENOENT, "no task %s", p->id);
  } else if (k && k->rc == 0 && er_state_finished(k->rec->state)) {
    settle(p, k);
  } else if (p->deadline_ms && now >= p->deadline_ms) {
    er_future_set_error(p->f, ER_ETIMEDOUT, "task %s not finished in time", p->id);
  } else {
    return false;
  }
  er_future_unref(p->f);
  return true;
}

static const check_t *find_check(const check_t *ks, size_t nk, const char *id) {
  for (size_t j = 0; j < nk; j++)
    if (strcmp(ks[j].id, id) == 0) return &ks[j];
  return NULL;
}

/* Reads each check's task (without the lock), then completes the waiters
 * among the first `seen` items the checks or the clock decide. */
static void run_checks(er__watch_t *w, check_t *ks, size_t nk, size_t seen, bool sweep) {
  for (size_t j = 0; j < nk; j++) ks[j].rc = er_store_get(w->store, ks[j].id, NULL, &ks[j].rec);
  uint64_t now = er_now_mono_ms();
  pthread_mutex_lock(&w->mu);
  w->stats.gets += nk;
  w->stats.sweeps += sweep;
  size_t keep = 0;
  for (size_t i = 0; i < w->len; i++) {
    pending_t *p = &w->items[i];
    if (i >= seen || !decide(p, find_check(ks, nk, p->id), now)) w->items[keep++] = *p;
  }
  w->len = keep;
  w->stats.waiting = keep;
  pthread_mutex_unlock(&w->mu);
  for (size_t j = 0; j < nk; j++) er_task_rec_free(ks[j].rec);
}

/* The checks to make: every waiter's task (sweep), the fresh waiters', or
 * those named in ids. *seen gets the waiters they cover. */
static size_t plan(er__watch_t *w, bool sweep, char *const *ids, size_t nids, check_t **out,
                   size_t *seen) {
  pthread_mutex_lock(&w->mu);
  *seen = w->len;
  size_t cap = sweep || !ids ? w->len : nids, nk = 0;
  check_t *ks = cap ? er_calloc(cap, sizeof *ks) : NULL;
  for (size_t i = 0; ks && i < w->len; i++) {
    pending_t *p = &w->items[i];
    bool want = sweep || (!ids && p->fresh);
    for (size_t j = 0; !want && ids && j < nids; j++) want = strcmp(ids[j], p->id) == 0;
    if (want) p->fresh = false;
    if (want && !find_check(ks, nk, p->id) && nk < cap) memcpy(ks[nk++].id, p->id, sizeof p->id);
  }
  pthread_mutex_unlock(&w->mu);
  *out = ks;
  return nk;
}

static void check_some(er__watch_t *w, bool sweep, char *const *ids, size_t nids) {
  check_t *ks;
  size_t seen;
  size_t nk = plan(w, sweep, ids, nids, &ks, &seen);
  run_checks(w, ks, nk, seen, sweep);
  er_free(ks);
}

/* Fails every waiter: the watcher has no store to read. */
static void fail_all(er__watch_t *w, int rc, const char *msg) {
  pthread_mutex_lock(&w->mu);
  for (size_t i = 0; i < w->len; i++) {
    er_future_set_error(w->items[i].f, rc, "result: %s", msg);
    er_future_unref(w->items[i].f);
  }
  w->len = w->stats.waiting = 0;
  pthread_mutex_unlock(&w->mu);
}

/* Opens the thread's handle and asks for finished ids; a store that cannot
 * list them wakes us at every change instead. When it cannot be opened, the
 * waiters fail with the reason and the next waiter tries again. */
static int open_store(er__watch_t *w) {
  char msg[256] = "";
  int rc = er_store_open(w->url, &w->store, msg, sizeof msg);
  if (rc < 0) {
    w->store = NULL;
    fail_all(w, rc, msg);
    return rc;
  }
  er_wakeups_t wk;
  w->precise = er_store_watch(w->store, &(er_watch_t){.finished = true}) == 0 &&
               er_store_read_wakeups(w->store, &wk) == 0; /* starts the record */
  if (w->precise) er_wakeups_clear(&wk);
  pthread_mutex_lock(&w->mu);
  w->stats.precise = w->precise;
  pthread_mutex_unlock(&w->mu);
  return 0;
}

/* After the store's fd fired: the listed waiters, or all of them. */
static void on_change(er__watch_t *w) {
  er_wakeups_t wk;
  if (w->precise && er_store_read_wakeups(w->store, &wk) == 0) {
    if (wk.finished_overflow) check_some(w, true, NULL, 0);
    else if (wk.nfinished) check_some(w, false, wk.finished, wk.nfinished);
    er_wakeups_clear(&wk);
    return;
  }
  er_store_drain_wakeups(w->store);
  check_some(w, true, NULL, 0);
}

/* How long poll may sleep: until the next sweep or the nearest deadline. */
static int poll_timeout(er__watch_t *w, uint64_t now, bool *idle) {
  uint64_t until = w->next_sweep_ms;
  pthread_mutex_lock(&w->mu);
  *idle = w->len == 0;
  for (size_t i = 0; i < w->len; i++)
    if (w->items[i].deadline_ms && w->items[i].deadline_ms < until) until = w->items[i].deadline_ms;
  pthread_mutex_unlock(&w->mu);
  if (*idle) return -1;
  return until > now ? (int)(until - now) : 0;
}

static void *watch_main(void *arg) {
  er__watch_t *w = arg;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    bool stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    if (stop) break;
    if (!w->store) open_store(w);
    int fd = w->store ? er_store_wakeup_fd(w->store) : -1;
    int every = w->safety_ms ? w->safety_ms : w->precise ? PRECISE_SAFETY_MS : SAFETY_MS;
    if (fd < 0) every = FALLBACK_MS;
    uint64_t now = er_now_mono_ms();
    if (!w->next_sweep_ms) w->next_sweep_ms = now + (uint64_t)every;
    bool idle;
    int timeout = poll_timeout(w, now, &idle);
    struct pollfd pf[2] = {{.fd = w->ctl[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int r = poll(pf, fd >= 0 ? 2 : 1, timeout);
    if (r < 0 && errno != EINTR) poll(NULL, 0, FALLBACK_MS); /* never spin, never quit */
    if (pf[0].revents) {
      char buf[64];
      while (read(w->ctl[0], buf, sizeof buf) > 0) {}
    }
    if (!w->store) continue;
    if (fd >= 0 && pf[1].revents) {
      on_change(w);
      /* An fd in error stays readable: look again a little later. */
      if (!(pf[1].revents & POLLIN)) poll(NULL, 0, FALLBACK_MS);
    }
    now = er_now_mono_ms();
    if (now >= w->next_sweep_ms || fd < 0) {
      check_some(w, true, NULL, 0);
      w->next_sweep_ms = now + (uint64_t)every;
    } else {
      check_some(w, false, NULL, 0); /* new waiters, and deadlines */
    }
    if (idle) w->next_sweep_ms = 0; /* nothing waited: start the clock afresh */
  }
  er_store_close(w->store);
  w->store = NULL;
  return NULL;
}

/* The client's watcher, started on the first result future. */
static er__watch_t *watch_for(er_client_t *c, er_loop_t *loop) {
  if (c->watch) return c->watch->loop == loop ? c->watch : NULL;
  er__watch_t *w = er_calloc(1, sizeof *w);
  if (!w) return NULL;
  w->loop = loop;
  w->safety_ms = c->watch_safety_ms > 0 ? c->watch_safety_ms : 0;
  w->url = er_strdup(er_store_url(c->store));
  pthread_mutex_init(&w->mu, NULL);
  if (!w->url || pipe2(w->ctl, O_CLOEXEC | O_NONBLOCK) < 0) goto fail;
  w->stats.running = true;
  if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
    close(w->ctl[0]);
    close(w->ctl[1]);
    goto fail;
  }
  c->watch = w;
  return w;
fail:
  pthread_mutex_destroy(&w->mu);
  er_free(w->url);
  er_free(w);
  return NULL;
}

void er__client_watch_free(er_client_t *c) {
  er__watch_t *w = c->watch;
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_mutex_unlock(&w->mu);
  poke(w);
  pthread_join(w->thread, NULL);
  /* On the closing thread, which usually is the loop's: the futures then
   * complete at once rather than through the loop's queue. */
  for (size_t i = 0; i < w->len; i++) {
    er_future_set_error(w->items[i].f, ER_ECANCELED, "the client was closed");
    er_future_unref(w->items[i].f);
  }
  close(w->ctl[0]);
  close(w->ctl[1]);
  pthread_mutex_destroy(&w->mu);
  er_free(w->items);
  er_free(w->url);
  er_free(w);
  c->watch = NULL;
}

void er__client_watch_stats(er_client_t *c, er__watch_stats_t *out) {
  memset(out, 0, sizeof *out);
  er__watch_t *w = c->watch;
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  *out = w->stats;
  pthread_mutex_unlock(&w->mu);
}

static int add_waiter(er__watch_t *w, er_future_t *f, const char *id, int64_t timeout_ms) {
  pending_t p = {.f = f, .fresh = true,
                 .deadline_ms = timeout_ms >= 0 ? er_now_mono_ms() + (uint64_t)timeout_ms : 0};
  memcpy(p.id, id, sizeof p.id);
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  if (w->len == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    pending_t *v = er_realloc(w->items, cap * sizeof *v);
    if (v) {
      w->items = v;
      w->cap = cap;
    } else {
      rc = ER_ENOMEM;
    }
  }
  if (rc == 0) {
    p.f = er_future_ref(f);
    w->items[w->len++] = p;
    w->stats.waiting = w->len;
  }
  pthread_mutex_unlock(&w->mu);
  if (rc == 0) poke(w);
  return rc;
}

er_future_t *er_result_future(er_client_t *c, er_loop_t *loop, const char *id,
                              int64_t timeout_ms) {
  /* External: the loop stays referenced until the watcher thread completes
   * it, so waiting on it blocks rather than reporting a deadlock. */
  er_future_t *f = er_future_new_external(loop);
  if (!f) return NULL;
  if (!id || !er_id_valid(id)) {
    er_future_set_error(f, ER_EINVAL, "not a task id: '%s'", id ? id : "");
    return f;
  }
  er__watch_t *w = watch_for(c, loop);
  if (!w) {
    er_future_set_error(f, ER_EINVAL,
                        c->watch ? "a client's result futures must all be on one loop"
                                 : "result futures: cannot start the watcher thread");
    return f;
  }
  if (add_waiter(w, f, id, timeout_ms) < 0) er_future_set_error(f, ER_ENOMEM, NULL);
  return f;
}
