/* The worker: reserves tasks under leases, hands them to its pool, renews the
 * leases while they run, and records their outcomes in batches. It wakes on
 * the store's change notifications (another process sent a task), on
 * completions, and on a slow tick for delayed tasks and housekeeping. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/client_internal.h"
#include "queue/pool.h"

#define TICK_MS 100
#define MAINTAIN_MS 1000
#define MAX_TASKLETS 10000
#define RESERVE_BATCH 64
#define MAX_RESERVED 4096

struct er_worker {
  er_worker_opts_t opts;
  char **queues;
  size_t nqueues;
  char id[160];
  char hostname[128];
  er_store_t *store;
  er_client_t *client; /* for tasklet tasks */
  er_loop_t *loop;
  er__pool_t *pool;
  uv_poll_t wake;
  bool has_wake;
  uv_timer_t tick, beat, renew, grace, flush_timer;
  uv_signal_t sigterm, sigint;
  uv_async_t stop_async;
  atomic_int stop_req; /* 1 warm, 2 now: from er_worker_stop on any thread */

  er__job_t *running; /* every reserved job: in the pool, a tasklet, or backlog */
  size_t nslots_used, ntasklets;
  /* Reserved ahead (prefetch) and waiting for a free slot, oldest first: the
   * pool goes from one task to the next without a store round trip. */
  er__job_t **backlog;
  size_t bl_head, bl_len, bl_cap;
  /* Outcomes waiting to be written in one transaction. */
  er_completion_t *done;
  er__job_t **done_jobs;
  size_t ndone, capdone;
  bool flush_scheduled, fill_scheduled;
  int stopping; /* 0 running, 1 warm shutdown, 2 at once */
  uint64_t last_maintain_ms;
  int64_t started_ms;
  uint64_t processed, failed;
  double rate;              /* tasks finished per second, smoothed */
  uint64_t rate_ms, rate_count; /* the current measuring window */
};

const char *er_pool_name(er_pool_kind_t k) {
  return k == ER_POOL_THREADS ? "threads" : k == ER_POOL_SOLO ? "solo" : "prefork";
}

int er_pool_from_name(const char *s) {
  if (!s) return -1;
  if (!strcmp(s, "prefork")) return ER_POOL_PREFORK;
  if (!strcmp(s, "threads")) return ER_POOL_THREADS;
  if (!strcmp(s, "solo")) return ER_POOL_SOLO;
  return -1;
}

const char *er_worker_id(const er_worker_t *w) { return w->id; }

/* ---- running list ---- */

static void link_job(er_worker_t *w, er__job_t *j) {
  j->next = w->running;
  if (j->next) j->next->prev = j;
  w->running = j;
}

static void unlink_job(er_worker_t *w, er__job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    w->running = j->next;
  if (j->next) j->next->prev = j->prev;
  j->prev = j->next = NULL;
}

static void job_free(er__job_t *j) {
  er__outcome_clear(&j->out);
  er_task_rec_free(j->rec);
  er_free(j);
}

/* ---- outcomes ---- */

static void fill(er_worker_t *w);
static void maybe_finish(er_worker_t *w);

/* Smooths the completion rate over windows of at least 100 ms. */
static void update_rate(er_worker_t *w, size_t n) {
  uint64_t now = er_now_mono_ms();
  w->rate_count += n;
  if (!w->rate_ms) w->rate_ms = now;
  uint64_t dt = now - w->rate_ms;
  if (dt < 100) return;
  double r = (double)w->rate_count * 1000.0 / (double)dt;
  w->rate = w->rate ? 0.7 * w->rate + 0.3 * r : r;
  w->rate_ms = now;
  w->rate_count = 0;
}

static void flush(void *arg) {
  er_worker_t *w = arg;
  w->flush_scheduled = false;
  uv_timer_stop(&w->flush_timer);
  if (!w->ndone) return;
  bool *fenced = er_calloc(w->ndone, sizeof *fenced);
  int rc = er_store_complete(w->store, w->done, w->ndone, fenced);
  bool transient = rc == ER_EUNAVAILABLE || rc == ER_EBUSY || rc == ER_EIO || rc == ER_ENOMEM;
  if (transient && w->stopping != 2) {
    /* The store is away: keep the outcomes and write them on a later tick.
     * Each is fenced by its attempt, so one that did get written before the
     * connection broke is refused the second time, never stored twice. */
    er_log(ER_LOG_WARN, "worker %s: cannot record %zu outcomes yet (will retry): %s", w->id,
           w->ndone, er_store_last_error(w->store));
    er_free(fenced);
    return;
  }
  if (rc < 0) {
    /* Refused, or stopping now: nothing was written; the leases will end
     * and the tasks run again. */
    er_log(ER_LOG_ERROR, "worker %s: cannot record %zu outcomes: %s", w->id, w->ndone,
           er_store_last_error(w->store));
  }
  for (size_t i = 0; i < w->ndone; i++) {
    if (fenced && fenced[i])
      er_log(ER_LOG_WARN, "task %s: lease lost; this attempt's outcome was refused",
             w->done[i].id);
    json_decref(w->done[i].error);
    job_free(w->done_jobs[i]);
  }
  er_free(fenced);
  update_rate(w, w->ndone);
  w->ndone = 0;
  fill(w);
  maybe_finish(w);
}

static void on_flush_timer(uv_timer_t *h) { flush(h->data); }

static void push_completion(er_worker_t *w, er__job_t *j, const er_completion_t *c) {
  if (w->ndone == w->capdone) {
    size_t cap = w->capdone ? w->capdone * 2 : 64;
    er_completion_t *d = er_realloc(w->done, cap * sizeof *d);
    if (d) w->done = d;
    er__job_t **dj = er_realloc(w->done_jobs, cap * sizeof *dj);
    if (dj) w->done_jobs = dj;
    if (!d || !dj) {
      /* Out of memory: drop the outcome; the lease ends and the task reruns. */
      json_decref(c->error);
      job_free(j);
      return;
    }
    w->capdone = cap;
  }
  w->done[w->ndone] = *c;
  w->done_jobs[w->ndone++] = j;
  /* Outcomes are written in batches: at once when nothing else is waiting to
   * run (a poller wants its result now), else after 5 ms or 128 of
   * them, so a busy worker pays one transaction for many tasks. */
  bool busy = w->bl_len > 0 && w->ndone < 128;
  if (w->flush_scheduled) {
    if (!busy && uv_is_active((uv_handle_t *)&w->flush_timer)) {
      uv_timer_stop(&w->flush_timer);
      w->flush_scheduled = false;
    } else {
      return;
    }
  }
  w->flush_scheduled = true;
  if (busy)
    uv_timer_start(&w->flush_timer, on_flush_timer, 5, 0);
  else
    er_loop_call_soon(w->loop, flush, w);
}

static void start_backlog(er_worker_t *w);

void er__worker_job_done(er_worker_t *w, er__job_t *j) {
  unlink_job(w, j);
  if (j->def && j->def->tasklet)
    w->ntasklets--;
  else if (j->submitted)
    w->nslots_used--;
  if (w->stopping == 2) {
    job_free(j); /* already given back */
    return;
  }
  start_backlog(w);
  er_completion_t c;
  er__decide(j->rec, j->def, &j->out, j->revoked, er_now_wall_ms(), &c);
  if (c.state == ER_STATE_SUCCESS && j->rec->ignore_result) c.result = NULL;
  w->processed++;
  if (c.state == ER_STATE_FAILURE) {
    w->failed++;
    er_log(ER_LOG_INFO, "task %s %s failed: %s", j->rec->task, j->rec->id,
           j->out.message ? j->out.message : "");
  }
  push_completion(w, j, &c);
}

void er__worker_progress(void *ud, const char *id, int attempt, double p, const char *msg) {
  er_worker_t *w = ud;
  er_store_progress(w->store, id, attempt, p, msg);
}

/* ---- tasklet tasks ---- */

static int run_tasklet_task(void *arg) {
  er__job_t *j = arg;
  er_worker_t *w = j->w;
  er_task_t t;
  er__task_init(&t, j->rec, j->def);
  t.revoked = &j->revoked;
  t.loop = w->loop;
  t.client = w->client;
  t.progress = er__worker_progress;
  t.progress_ud = w;
  json_t *result = NULL;
  int rc = j->def->fn(&t, &result);
  er__task_finish(&t, rc, result);
  j->out = t.out;
  er__worker_job_done(w, j);
  return 0;
}

/* ---- taking work ---- */

static void submit_job(er_worker_t *w, er__job_t *j) {
  w->nslots_used++;
  j->submitted = true;
  if (w->pool->ops->submit(w->pool, j) < 0) {
    j->out.rc = ER_EINTERNAL;
    j->out.message = er_strdup("the pool could not take the task");
    er__worker_job_done(w, j);
  }
}

static int backlog_push(er_worker_t *w, er__job_t *j) {
  if (w->bl_len == w->bl_cap) {
    size_t cap = w->bl_cap ? w->bl_cap * 2 : 64;
    er__job_t **v = er_malloc(cap * sizeof *v);
    if (!v) return ER_ENOMEM;
    for (size_t i = 0; i < w->bl_len; i++) v[i] = w->backlog[(w->bl_head + i) % w->bl_cap];
    er_free(w->backlog);
    w->backlog = v;
    w->bl_cap = cap;
    w->bl_head = 0;
  }
  w->backlog[(w->bl_head + w->bl_len++) % w->bl_cap] = j;
  return 0;
}

static er__job_t *backlog_shift(er_worker_t *w) {
  if (!w->bl_len) return NULL;
  er__job_t *j = w->backlog[w->bl_head];
  w->bl_head = (w->bl_head + 1) % w->bl_cap;
  w->bl_len--;
  return j;
}

/* Hands backlog jobs to the pool while it has free slots. A job revoked while
 * it waited ends REVOKED without running. */
static void start_backlog(er_worker_t *w) {
  while (!w->stopping && w->nslots_used < (size_t)w->pool->capacity) {
    er__job_t *j = backlog_shift(w);
    if (!j) return;
    if (j->revoked) {
      j->out.rc = ER_EREVOKED;
      j->out.message = er_strdup("revoked before it started");
      er__worker_job_done(w, j);
    } else {
      j->started_ms = er_now_mono_ms();
      submit_job(w, j);
    }
  }
}

static void dispatch(er_worker_t *w, er_task_rec_t *rec) {
  er__job_t *j = er_calloc(1, sizeof *j);
  if (!j) {
    er_task_rec_free(rec); /* the lease ends and the task comes back */
    return;
  }
  j->rec = rec;
  j->w = w;
  j->def = er_task_lookup(rec->task);
  j->started_ms = er_now_mono_ms();
  if (!rec->context) rec->context = json_object();
  link_job(w, j);
  if (j->def && j->def->tasklet) {
    w->ntasklets++;
    er_future_t *f = er_spawn(w->loop, run_tasklet_task, j);
    if (f)
      er_future_unref(f);
    else
      er__worker_job_done(w, j);
    return;
  }
  if (w->nslots_used < (size_t)w->pool->capacity && !w->bl_len) {
    submit_job(w, j);
  } else if (backlog_push(w, j) < 0) {
    unlink_job(w, j);
    job_free(j); /* out of memory: the lease ends and the task comes back */
  }
}

/* Reserves more when what is reserved falls to half the prefetch target, so
 * that a store round trip serves many tasks. */
static void fill(er_worker_t *w) {
  /* Beyond the prefetch, hold about 50 ms of work at the rate tasks have been
   * finishing: short tasks then cost one store round trip per batch, while a
   * worker of long tasks holds nothing back from the others. */
  size_t target = (size_t)w->opts.concurrency * (size_t)w->opts.prefetch +
                  (size_t)(w->rate * 0.05);
  if (target > MAX_RESERVED) target = MAX_RESERVED;
  while (!w->stopping) {
    size_t have = w->nslots_used + w->bl_len;
    if (have > target / 2 || w->ntasklets >= MAX_TASKLETS) return;
    size_t want = target - have;
    if (want > RESERVE_BATCH) want = RESERVE_BATCH;
    er_reserve_req_t req = {(const char *const *)w->queues, w->nqueues, w->id,
                            er_now_wall_ms(), w->opts.lease_ms, want};
    er_task_rec_t **recs = NULL;
    size_t n = 0;
    int rc = er_store_reserve(w->store, &req, &recs, &n);
    if (rc < 0) {
      er_log(ER_LOG_WARN, "worker %s: reserve failed: %s", w->id, er_store_last_error(w->store));
      return;
    }
    for (size_t i = 0; i < n; i++) dispatch(w, recs[i]);
    er_free(recs);
    if (n < want) return;
  }
}

static void on_wake(uv_poll_t *h, int status, int events) {
  er_worker_t *w = h->data;
  er_store_drain_wakeups(w->store);
  fill(w);
}

static void on_tick(uv_timer_t *h) {
  er_worker_t *w = h->data;
  if (w->ndone && !w->flush_scheduled) flush(w); /* outcomes a failed write kept */
  update_rate(w, 0); /* an idle worker's rate decays */
  uint64_t now = er_now_mono_ms();
  if (now - w->last_maintain_ms >= MAINTAIN_MS) {
    w->last_maintain_ms = now;
    er_maint_counts_t mc = {0};
    if (er_store_maintain(w->store, er_now_wall_ms(), &mc) == 0 && mc.requeued)
      er_log(ER_LOG_INFO, "worker %s: %zu tasks whose lease ended went back to the queue", w->id,
             mc.requeued);
  }
  fill(w);
}

/* ---- leases and heartbeats ---- */

static void on_renew(uv_timer_t *h) {
  er_worker_t *w = h->data;
  size_t n = 0;
  for (er__job_t *j = w->running; j; j = j->next) n++;
  if (!n) return;
  const char **ids = er_calloc(n, sizeof *ids);
  int *attempts = er_calloc(n, sizeof *attempts);
  bool *revoked = er_calloc(n, sizeof *revoked);
  bool *fenced = er_calloc(n, sizeof *fenced);
  er__job_t **jobs = er_calloc(n, sizeof *jobs);
  if (ids && attempts && revoked && fenced && jobs) {
    size_t i = 0;
    for (er__job_t *j = w->running; j; j = j->next, i++) {
      ids[i] = j->rec->id;
      attempts[i] = j->rec->attempt;
      jobs[i] = j;
    }
    int64_t until = er_now_wall_ms() + w->opts.lease_ms;
    if (er_store_renew(w->store, ids, attempts, n, until, revoked, fenced) == 0) {
      for (i = 0; i < n; i++) {
        jobs[i]->fenced = fenced[i];
        if (revoked[i] && !jobs[i]->revoked) {
          jobs[i]->revoked = 1;
          if (jobs[i]->submitted) w->pool->ops->revoke(w->pool, jobs[i]);
        }
      }
    } else {
      er_log(ER_LOG_WARN, "worker %s: cannot renew leases: %s", w->id,
             er_store_last_error(w->store));
    }
  }
  er_free(ids);
  er_free(attempts);
  er_free(revoked);
  er_free(fenced);
  er_free(jobs);
}

static void beat(er_worker_t *w) {
  json_t *qs = json_array();
  for (size_t i = 0; i < w->nqueues; i++) json_array_append_new(qs, json_string(w->queues[i]));
  json_t *info = json_pack("{s:s, s:s, s:i, s:o, s:i, s:s, s:I, s:I, s:I, s:I, s:I}", "id",
                           w->id, "hostname", w->hostname, "pid", (int)getpid(), "queues", qs,
                           "concurrency", w->opts.concurrency, "pool",
                           er_pool_name(w->opts.pool), "active",
                           (json_int_t)(w->nslots_used + w->ntasklets), "reserved",
                           (json_int_t)w->bl_len, "processed",
                           (json_int_t)w->processed, "failed", (json_int_t)w->failed,
                           "started_ms", (json_int_t)w->started_ms);
  if (info) er_store_heartbeat(w->store, info, er_now_wall_ms(), 3 * w->opts.heartbeat_ms);
  json_decref(info);
}

static void on_beat(uv_timer_t *h) { beat(h->data); }

/* ---- stopping ---- */

static void close_all(er_worker_t *w) {
  uv_timer_stop(&w->tick);
  uv_timer_stop(&w->beat);
  uv_timer_stop(&w->renew);
  uv_timer_stop(&w->grace);
  uv_timer_stop(&w->flush_timer);
  if (w->has_wake) uv_poll_stop(&w->wake);
  uv_signal_stop(&w->sigterm);
  uv_signal_stop(&w->sigint);
  uv_unref((uv_handle_t *)&w->stop_async);
}

static void maybe_finish(er_worker_t *w) {
  if (!w->stopping || w->running || w->ndone) return;
  close_all(w);
  er_loop_stop(w->loop);
}

/* Gives every running task back to the queue, fenced by its attempt, after
 * the pool has stopped running them. */
static void give_back(er_worker_t *w) {
  size_t n = 0;
  for (er__job_t *j = w->running; j; j = j->next) n++;
  er_completion_t *cs = er_calloc(n ? n : 1, sizeof *cs);
  size_t i = 0;
  for (er__job_t *j = w->running; j && cs; j = j->next, i++)
    cs[i] = (er_completion_t){.id = j->rec->id, .attempt = j->rec->attempt,
                              .state = ER_STATE_PENDING, .now_ms = er_now_wall_ms()};
  if (cs && n && er_store_complete(w->store, cs, n, NULL) < 0)
    er_log(ER_LOG_ERROR, "worker %s: cannot give tasks back (their leases will end): %s", w->id,
           er_store_last_error(w->store));
  if (n) er_log(ER_LOG_WARN, "worker %s: gave %zu running tasks back to the queue", w->id, n);
  er_free(cs);
  while (w->running) {
    er__job_t *j = w->running;
    unlink_job(w, j);
    job_free(j);
  }
  w->nslots_used = w->ntasklets = 0;
  w->bl_len = 0;
}

/* At a warm stop: the tasks reserved ahead go back to the queue at once, for
 * other workers; only those already running are waited for. */
static void give_back_backlog(er_worker_t *w) {
  size_t n = w->bl_len;
  if (!n) return;
  er_completion_t *cs = er_calloc(n, sizeof *cs);
  er__job_t **given = er_calloc(n, sizeof *given);
  if (!cs || !given) {
    er_free(cs);
    er_free(given);
    return; /* they stay reserved and run before the worker stops */
  }
  for (size_t i = 0; i < n; i++) {
    er__job_t *j = given[i] = backlog_shift(w);
    cs[i] = (er_completion_t){.id = j->rec->id, .attempt = j->rec->attempt,
                              .state = ER_STATE_PENDING, .now_ms = er_now_wall_ms()};
    unlink_job(w, j);
  }
  if (er_store_complete(w->store, cs, n, NULL) < 0)
    er_log(ER_LOG_WARN, "worker %s: cannot give reserved tasks back (their leases will end): %s",
           w->id, er_store_last_error(w->store));
  er_free(cs);
  for (size_t i = 0; i < n; i++) job_free(given[i]);
  er_free(given);
}

static void stop_now(er_worker_t *w) {
  w->stopping = 2;
  flush(w);
  if (w->pool) {
    w->pool->ops->destroy(w->pool, true);
    w->pool = NULL;
  }
  give_back(w);
  maybe_finish(w);
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
  if (w->has_wake) uv_poll_stop(&w->wake);
  give_back_backlog(w);
  uv_timer_start(&w->grace, on_grace, (uint64_t)w->opts.grace_ms, 0);
  maybe_finish(w);
}

static void on_signal(uv_signal_t *h, int signum) { request_stop(h->data, false); }

static void on_stop_async(uv_async_t *h) {
  er_worker_t *w = h->data;
  int req = atomic_exchange(&w->stop_req, 0);
  if (req) request_stop(w, req == 2);
}

void er_worker_stop(er_worker_t *w, bool now) {
  atomic_store(&w->stop_req, now ? 2 : 1);
  uv_async_send(&w->stop_async);
}

/* ---- life ---- */

int er_worker_new(const er_worker_opts_t *opts, er_worker_t **out, char *errmsg,
                  size_t errmsg_size) {
  *out = NULL;
  er_worker_t *w = er_calloc(1, sizeof *w);
  if (!w) return ER_ENOMEM;
  w->opts = *opts;
  if (w->opts.concurrency <= 0) w->opts.concurrency = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (w->opts.concurrency <= 0) w->opts.concurrency = 1;
  if (!w->opts.lease_ms) w->opts.lease_ms = 30000;
  if (!w->opts.heartbeat_ms) w->opts.heartbeat_ms = 2000;
  if (!w->opts.grace_ms) w->opts.grace_ms = 30000;
  if (!w->opts.revoke_grace_ms) w->opts.revoke_grace_ms = 2000;
  if (w->opts.prefetch <= 0) w->opts.prefetch = 4;
  static const char *const dflt[] = {"default"};
  const char *const *qs = opts->queues && opts->nqueues ? opts->queues : dflt;
  w->nqueues = opts->queues && opts->nqueues ? opts->nqueues : 1;
  w->queues = er_calloc(w->nqueues, sizeof *w->queues);
  for (size_t i = 0; w->queues && i < w->nqueues; i++) w->queues[i] = er_strdup(qs[i]);
  gethostname(w->hostname, sizeof w->hostname - 1);
  er_id_t rid;
  er_id_new(&rid);
  snprintf(w->id, sizeof w->id, "%s:%d:%.8s", w->hostname, (int)getpid(), rid.text + 28);
  int rc = er_client_open(opts->store_url, &w->client, errmsg, errmsg_size);
  if (rc == 0) rc = er_store_open(er_client_url(w->client), &w->store, errmsg, errmsg_size);
  if (rc < 0) {
    er_worker_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

static int start(er_worker_t *w) {
  int rc = er_loop_new(&w->loop, NULL);
  if (rc < 0) return rc;
  uv_loop_t *uv = er_loop_uv(w->loop);
  w->pool = w->opts.pool == ER_POOL_THREADS ? er__pool_threads_new()
            : w->opts.pool == ER_POOL_SOLO  ? er__pool_solo_new()
                                            : er__pool_prefork_new();
  if (!w->pool) return ER_ENOMEM;
  w->pool->w = w;
  w->pool->loop = w->loop;
  w->pool->concurrency = w->opts.concurrency;
  w->pool->prefetch = w->opts.prefetch;
  w->pool->store_url = er_client_url(w->client);
  w->pool->revoke_grace_ms = w->opts.revoke_grace_ms;
  if ((rc = w->pool->ops->start(w->pool)) < 0) return rc;
  int fd = er_store_wakeup_fd(w->store);
  if (fd >= 0 && uv_poll_init(uv, &w->wake, fd) == 0) {
    w->has_wake = true;
    w->wake.data = w;
    uv_poll_start(&w->wake, UV_READABLE, on_wake);
  }
  uv_timer_t *timers[] = {&w->tick, &w->beat, &w->renew, &w->grace, &w->flush_timer};
  for (int i = 0; i < 5; i++) {
    uv_timer_init(uv, timers[i]);
    timers[i]->data = w;
  }
  uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
  uv_timer_start(&w->beat, on_beat, (uint64_t)w->opts.heartbeat_ms, (uint64_t)w->opts.heartbeat_ms);
  uint64_t every = (uint64_t)w->opts.lease_ms / 3;
  uv_timer_start(&w->renew, on_renew, every ? every : 1, every ? every : 1);
  uv_signal_init(uv, &w->sigterm);
  uv_signal_init(uv, &w->sigint);
  w->sigterm.data = w->sigint.data = w;
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_async_init(uv, &w->stop_async, on_stop_async);
  w->stop_async.data = w;
  return 0;
}

int er_worker_run(er_worker_t *w) {
  w->started_ms = er_now_wall_ms();
  /* A child that dies while a job is being written to it must not take the
   * worker with it: the write fails with EPIPE and the death is handled. */
  signal(SIGPIPE, SIG_IGN);
  int rc = start(w);
  if (rc < 0) return rc;
  if (!w->opts.quiet) {
    fprintf(stderr, "errand worker %s: %s pool, concurrency %d, queues", w->id,
            er_pool_name(w->opts.pool), w->opts.concurrency);
    for (size_t i = 0; i < w->nqueues; i++) fprintf(stderr, "%s%s", i ? "," : " ", w->queues[i]);
    fprintf(stderr, ", store %s\n", er_client_url(w->client));
  }
  beat(w);
  fill(w);
  if (atomic_load(&w->stop_req)) on_stop_async(&w->stop_async);
  er_loop_run(w->loop);
  er_store_worker_gone(w->store, w->id);
  return 0;
}

static void on_closed(uv_handle_t *h) {}

void er_worker_free(er_worker_t *w) {
  if (!w) return;
  if (w->loop) {
    if (w->pool) w->pool->ops->destroy(w->pool, true);
    while (w->running) {
      er__job_t *j = w->running;
      unlink_job(w, j);
      job_free(j);
    }
    uv_handle_t *hs[] = {(uv_handle_t *)&w->tick,    (uv_handle_t *)&w->beat,
                         (uv_handle_t *)&w->renew,   (uv_handle_t *)&w->grace,
                         (uv_handle_t *)&w->flush_timer,
                         (uv_handle_t *)&w->sigterm, (uv_handle_t *)&w->sigint,
                         (uv_handle_t *)&w->stop_async};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
      if (hs[i]->loop && !uv_is_closing(hs[i])) uv_close(hs[i], on_closed);
    if (w->has_wake) uv_close((uv_handle_t *)&w->wake, on_closed);
    er_client_close(w->client);
    w->client = NULL;
    er_loop_free(w->loop);
  }
  er_client_close(w->client);
  er_store_close(w->store);
  for (size_t i = 0; w->queues && i < w->nqueues; i++) er_free(w->queues[i]);
  er_free(w->queues);
  er_free(w->done);
  er_free(w->done_jobs);
  er_free(w->backlog);
  er_free(w);
}
