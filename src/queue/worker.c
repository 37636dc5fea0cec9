/* The worker: reserves tasks under leases, hands them to its pool, renews the
 * leases while they run, and records their outcomes in batches. Its loop only
 * decides: every store call runs on the worker's store thread (worker_io.c),
 * so the pool's children are served while the store is slow or away. It
 * wakes on the store's wake-ups for its queues (work to take, revokes to
 * learn), on completions, on one timer set for the next delayed task or lease
 * end, and on a slow safety tick. This file holds the jobs and the life of the
 * worker. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/token.h"
#include "celery/celery_internal.h"
#include "queue/result_check.h"
#include "queue/worker_internal.h"

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

void er__worker_unlink(er_worker_t *w, er__job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    w->running = j->next;
  if (j->next) j->next->prev = j->prev;
  j->prev = j->next = NULL;
}

/* A job a store request still refers to (a renewal in flight) is freed when
 * that request is back. */
void er__worker_job_free(er__job_t *j) {
  if (j->pins) {
    j->dead = true;
    return;
  }
  er__outcome_clear(&j->out);
  er_task_rec_free(j->rec);
  er_free(j);
}

/* Smooths the completion rate over windows of at least 100 ms. */
void er__worker_update_rate(er_worker_t *w, size_t n) {
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

/* ---- outcomes ---- */

void er__worker_job_done(er_worker_t *w, er__job_t *j) {
  j->ended = true;
  er__worker_unlink(w, j);
  if (j->def && j->def->tasklet)
    w->ntasklets--;
  else if (j->submitted)
    w->nslots_used--;
  if (w->stopping == 2) {
    er__worker_job_free(j); /* already given back */
    return;
  }
  er__worker_start_backlog(w);
  if (j->fenced) {
    /* Another attempt owns the task now: the store would refuse this one's
     * outcome, so it is not even sent. */
    er_log(ER_LOG_WARN, "task %s[%s] lease lost: this attempt's outcome is dropped", j->rec->task,
           j->rec->id);
    er__worker_job_free(j);
    er__worker_maybe_finish(w);
    return;
  }
  er_completion_t c;
  er__decide(j->rec, j->def, &j->out, j->revoked, er_now_wall_ms(), &c);
  if (c.state == ER_STATE_SUCCESS && j->rec->ignore_result) c.result = NULL;
  w->processed++;
  if (c.state == ER_STATE_FAILURE) w->failed++;
  if (c.state != ER_STATE_PENDING && j->started_wall_ms)
    er__hist_add(&w->runtime, (int64_t)(er_now_mono_ms() - j->started_ms));
  if (er_state_finished(c.state)) er__hist_add(&w->roundtrip, c.now_ms - j->rec->created_ms);
  er__log_outcome(j, &c);
  er__io_push_completion(w, j, &c);
}

void er__worker_progress(void *ud, const char *id, int attempt, double p, const char *msg) {
  er__io_progress(ud, id, attempt, p, msg);
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
  t.max_result = w->pool->max_result;
  t.base_url = w->pool->base_url;
  t.secret = w->pool->secret;
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

#define REFUSE_BACKOFF_MIN_MS 100
#define REFUSE_BACKOFF_MAX_MS 1000

bool er__worker_backing_off(const er_worker_t *w) {
  return w->refused_until_ms && er_now_mono_ms() < w->refused_until_ms;
}

static void submit_job(er_worker_t *w, er__job_t *j) {
  w->nslots_used++;
  j->submitted = true;
  j->started_wall_ms = er_now_wall_ms();
  if (w->pool->ops->submit(w->pool, j) == 0) {
    w->refuse_backoff_ms = 0;
    er__io_celery_started(w, j);
    return;
  }
  /* Not the task's fault: it goes back to the queue for this or another
   * worker, with no retry counted, instead of failing for good. */
  w->nslots_used--;
  j->submitted = false;
  er__worker_unlink(w, j);
  er__io_give_back(w, &j, 1, "the pool could not take it");
  /* The give-back wakes this worker too: without a pause it would take the
   * task again at once, be refused again, and so on as fast as the store
   * answers. The tick tries again once the back-off is over. */
  w->refuse_backoff_ms = w->refuse_backoff_ms ? w->refuse_backoff_ms * 2 : REFUSE_BACKOFF_MIN_MS;
  if (w->refuse_backoff_ms > REFUSE_BACKOFF_MAX_MS) w->refuse_backoff_ms = REFUSE_BACKOFF_MAX_MS;
  w->refused_until_ms = er_now_mono_ms() + w->refuse_backoff_ms;
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

static void backlog_remove(er_worker_t *w, er__job_t *j) {
  size_t k = 0;
  for (size_t i = 0; i < w->bl_len; i++) {
    er__job_t *x = w->backlog[(w->bl_head + i) % w->bl_cap];
    if (x != j) w->backlog[(w->bl_head + k++) % w->bl_cap] = x;
  }
  w->bl_len = k;
}

/* A backlog job whose lease was lost is dropped: it never runs here and no
 * outcome is written (the task belongs to another attempt). */
static void drop_fenced(er_worker_t *w, er__job_t *j) {
  er_log(ER_LOG_WARN, "task %s[%s] lease lost before it started: dropped without running",
         j->rec->task, j->rec->id);
  er__worker_unlink(w, j);
  er__worker_job_free(j);
}

static void end_revoked(er_worker_t *w, er__job_t *j) {
  j->out.rc = ER_EREVOKED;
  j->out.message = er_strdup("revoked before it started");
  er__worker_job_done(w, j);
}

/* Hands backlog jobs to the pool while it has free slots. */
void er__worker_start_backlog(er_worker_t *w) {
  while (!w->stopping && w->nslots_used < (size_t)w->pool->capacity &&
         !er__worker_backing_off(w)) {
    er__job_t *j = backlog_shift(w);
    if (!j) return;
    if (j->fenced)
      drop_fenced(w, j);
    else if (j->revoked)
      end_revoked(w, j);
    else {
      j->started_ms = er_now_mono_ms();
      submit_job(w, j);
    }
  }
}

void er__worker_apply_flags(er_worker_t *w, er__job_t *j, bool revoked, bool fenced) {
  if (fenced && !j->fenced) {
    j->fenced = true;
    if (er__in_backlog(j)) {
      backlog_remove(w, j);
      drop_fenced(w, j);
      return;
    }
    revoked = true; /* running: stop it as a revoke would; its outcome is dropped */
  }
  if (!revoked || j->revoked) return;
  /* a threads-pool thread reads it while the task runs (er_task_check) */
  __atomic_store_n(&j->revoked, 1, __ATOMIC_RELAXED);
  if (j->submitted)
    w->pool->ops->revoke(w->pool, j);
  else if (er__in_backlog(j)) {
    backlog_remove(w, j);
    end_revoked(w, j); /* REVOKED now, without waiting for a slot */
  }
}

void er__worker_dispatch(er_worker_t *w, er_task_rec_t *rec) {
  const er_task_def_t *def = er_task_lookup(rec->task);
  if (!def) {
    er__unknown_add(w, rec); /* given back, or failed: worker_unknown.c */
    return;
  }
  er__job_t *j = er_calloc(1, sizeof *j);
  if (!j) {
    er_task_rec_free(rec); /* the lease ends and the task comes back */
    return;
  }
  j->rec = rec;
  j->w = w;
  j->def = def;
  j->started_ms = er_now_mono_ms();
  if (!rec->context) rec->context = json_object();
  link_job(w, j);
  er__log_received(j);
  if (j->def && j->def->tasklet) {
    w->ntasklets++;
    j->started_wall_ms = er_now_wall_ms();
    er__io_celery_started(w, j);
    er_future_t *f = er_spawn(w->loop, run_tasklet_task, j);
    if (f)
      er_future_unref(f);
    else
      er__worker_job_done(w, j);
    return;
  }
  if (w->nslots_used < (size_t)w->pool->capacity && !w->bl_len && !er__worker_backing_off(w)) {
    submit_job(w, j);
  } else if (backlog_push(w, j) < 0) {
    er__worker_unlink(w, j);
    er__worker_job_free(j); /* out of memory: the lease ends and the task comes back */
  }
}

/* ---- life ---- */

er__pool_t *(*er__pool_new_hook)(er_pool_kind_t kind);

/* --celery: the worker's store serves Celery's lists too (src/celery). */
static int celery_wrap(er_worker_t *w, char *errmsg, size_t size) {
#ifdef ER_HAVE_REDIS
  er_store_t *cs;
  int64_t vis = w->opts.celery_visibility_ms ? w->opts.celery_visibility_ms : 3600000;
  int rc = er__celery_wrap(w->store, (const char *const *)w->queues, w->nqueues, vis, &cs, errmsg,
                           size);
  if (rc == 0) w->store = cs;
  /* a lease renews (touches unacked_index) every third of it: within the
   * visibility timeout, so no consumer restores a message that runs */
  if (w->opts.lease_ms > vis) w->opts.lease_ms = vis;
  return rc;
#else
  snprintf(errmsg, size, "--celery: this errand was built without the redis store");
  (void)w;
  return ER_EINVAL;
#endif
}

int er_worker_new(const er_worker_opts_t *opts, er_worker_t **out, char *errmsg,
                  size_t errmsg_size) {
  *out = NULL;
  er_worker_opts_t o;
  int rc = er__worker_opts_resolve(opts, &o, errmsg, errmsg_size);
  if (rc < 0) return rc;
  er_worker_t *w = er_calloc(1, sizeof *w);
  if (!w) return ER_ENOMEM;
  w->opts = o;
  /* Kept as the key only: the caller's string is not held. */
  w->has_secret = o.secret && *o.secret;
  if (w->has_secret && er__pipe_secret_derive(o.secret, w->secret) < 0) {
    er_free(w);
    return ER_EINTERNAL;
  }
  w->opts.secret = NULL;
  w->precise = w->has_due = -1;
  static const char *const dflt[] = {"default"}, *const cel_dflt[] = {"celery"};
  const char *const *qs = opts->queues && opts->nqueues ? opts->queues
                          : opts->celery                 ? cel_dflt
                                                         : dflt;
  w->nqueues = opts->queues && opts->nqueues ? opts->nqueues : 1;
  w->queues = er_calloc(w->nqueues, sizeof *w->queues);
  bool ok = w->queues != NULL;
  for (size_t i = 0; ok && i < w->nqueues; i++) ok = (w->queues[i] = er_strdup(qs[i])) != NULL;
  if (!ok) {
    er_worker_free(w);
    return ER_ENOMEM;
  }
  gethostname(w->hostname, sizeof w->hostname - 1);
  er_id_t rid;
  er_id_new(&rid);
  snprintf(w->id, sizeof w->id, "%s:%d:%.8s", w->hostname, (int)getpid(), rid.text + 28);
  rc = er_client_open(opts->store_url, &w->client, errmsg, errmsg_size);
  if (rc == 0) rc = er_store_open(er_client_url(w->client), &w->store, errmsg, errmsg_size);
  if (rc == 0 && opts->celery) rc = celery_wrap(w, errmsg, errmsg_size);
  if (rc < 0) {
    er_worker_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

void er__worker_tick(er_worker_t *w) {
  if (w->ndone && !w->flush_scheduled) er__io_flush(w); /* outcomes a failed write kept */
  er__worker_update_rate(w, 0); /* an idle worker's rate decays */
  uint64_t now = er_now_mono_ms();
  if (now - w->last_maintain_ms >= ER__MAINTAIN_MS) {
    w->last_maintain_ms = now;
    er__io_maintain(w);
  }
  er__worker_start_backlog(w); /* what waited out a refusal's back-off */
  er__io_fill(w);
}

static void on_tick(uv_timer_t *h) { er__worker_tick(h->data); }

void er__worker_on_renew(uv_timer_t *h) { er__io_renew(h->data); }
static void on_beat(uv_timer_t *h) { er__io_beat(h->data); }

static int start(er_worker_t *w) {
  int rc = er_loop_new(&w->loop, NULL);
  if (rc < 0) return rc;
  uv_loop_t *uv = er_loop_uv(w->loop);
  w->pool = er__pool_new_hook                 ? er__pool_new_hook(w->opts.pool)
            : w->opts.pool == ER_POOL_THREADS ? er__pool_threads_new()
            : w->opts.pool == ER_POOL_SOLO  ? er__pool_solo_new()
                                            : er__pool_prefork_new();
  if (!w->pool) return ER_ENOMEM;
  w->pool->w = w;
  w->pool->loop = w->loop;
  w->pool->concurrency = w->opts.concurrency;
  w->pool->prefetch = w->opts.prefetch;
  w->pool->store_url = er_client_url(w->client);
  w->pool->base_url = w->opts.base_url;
  w->pool->secret = w->has_secret ? w->secret : NULL;
  w->pool->revoke_grace_ms = w->opts.revoke_grace_ms;
  w->pool->max_result = er__result_limit(w->opts.max_result_bytes, er_store_max_payload(w->store));
  w->pool->task_output = w->opts.task_output;
  /* The first children are forked before the store thread exists: a fork
   * while another thread is inside the allocator can leave a child with a
   * lock held forever. Later forks hold the thread still (pool->io). */
  if ((rc = w->pool->ops->start(w->pool)) < 0) return rc;
  /* The fd belongs to the store thread's handle: the loop only polls it, and
   * stops polling until the thread has read what it says. */
  int fd = er_store_wakeup_fd(w->store);
  if (fd >= 0 && uv_poll_init(uv, &w->wake, fd) == 0) {
    w->has_wake = true;
    w->wake.data = w;
  }
  if ((rc = er__sthread_start(w->loop, w->store, &w->io)) < 0) return rc;
  w->pool->io = w->io;
  uv_timer_t *timers[] = {&w->tick, &w->beat, &w->renew, &w->grace, &w->flush_timer, &w->due_timer};
  for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
    uv_timer_init(uv, timers[i]);
    timers[i]->data = w;
  }
  /* Until the store says it has due times, look as often as before. */
  uv_timer_start(&w->tick, on_tick, ER__POLL_TICK_MS, ER__POLL_TICK_MS);
  uv_timer_start(&w->beat, on_beat, (uint64_t)w->opts.heartbeat_ms, (uint64_t)w->opts.heartbeat_ms);
  uint64_t every = (uint64_t)w->opts.lease_ms / 3;
  uv_timer_start(&w->renew, er__worker_on_renew, every ? every : 1, every ? every : 1);
  /* An embedded worker's host owns SIGTERM and SIGINT (libuv would install
   * process-wide handlers for them): it stops the worker with er_worker_stop. */
  if (!w->embed) {
    uv_signal_init(uv, &w->sigterm);
    uv_signal_init(uv, &w->sigint);
    w->sigterm.data = w->sigint.data = w;
    uv_signal_start(&w->sigterm, er__worker_on_signal, SIGTERM);
    uv_signal_start(&w->sigint, er__worker_on_signal, SIGINT);
  }
  uv_async_init(uv, &w->stop_async, er__worker_on_stop_async);
  w->stop_async.data = w;
  return 0;
}

/* The process-wide signal settings a worker that owns its process makes. An
 * embedded worker makes none: its threads block SIGPIPE and SIGXFSZ instead
 * (worker_embed.c), which has the same effect on its own writes. */
static void own_process_signals(er_worker_t *w) {
  /* A child that dies while a job is being written to it must not take the
   * worker with it: the write fails with EPIPE and the death is handled. */
  signal(SIGPIPE, SIG_IGN);
  /* Under a file size limit (ulimit -f) a store write past it fails, as on a
   * full disk, and the worker backs off, instead of dying of SIGXFSZ. */
  signal(SIGXFSZ, SIG_IGN);
  /* A tasklet task that overflows its stack is named on stderr before the
   * process dies; other faults still reach whatever handled them before. */
  if (er_stack_overflow_handler_install() < 0)
    er_log(ER_LOG_WARN, "worker %s: no stack overflow reports: sigaction failed", w->id);
}

int er_worker_run(er_worker_t *w) { return er__worker_run(w, NULL); }

int er__worker_run(er_worker_t *w, void (*started)(er_worker_t *w, int rc)) {
  w->started_ms = er_now_wall_ms();
  if (!w->embed) own_process_signals(w);
  int rc = start(w);
  if (started) started(w, rc);
  if (rc < 0) return rc;
  if (!w->opts.quiet) er__worker_banner(w);
  er__io_watch(w); /* then reads the wake-ups, fills, and asks what is due */
  er__io_beat(w);
  if (atomic_load(&w->stop_req)) er__worker_on_stop_async(&w->stop_async);
  er_loop_run(w->loop);
  er__sthread_free(w->io); /* nothing is left in it: the loop ended when it was idle */
  w->io = NULL;
  er_store_worker_gone(w->store, w->id);
  return w->exit_rc;
}

static void on_closed(uv_handle_t *h) {}

void er_worker_free(er_worker_t *w) {
  if (!w) return;
  if (w->loop) {
    if (w->pool) w->pool->ops->destroy(w->pool, true);
    er__sthread_free(w->io); /* an early return from er_worker_run left it */
    while (w->running) {
      er__job_t *j = w->running;
      er__worker_unlink(w, j);
      j->pins = 0;
      er__worker_job_free(j);
    }
    uv_handle_t *hs[] = {(uv_handle_t *)&w->tick,        (uv_handle_t *)&w->beat,
                         (uv_handle_t *)&w->renew,       (uv_handle_t *)&w->grace,
                         (uv_handle_t *)&w->flush_timer, (uv_handle_t *)&w->due_timer,
                         (uv_handle_t *)&w->sigterm,     (uv_handle_t *)&w->sigint,
                         (uv_handle_t *)&w->stop_async};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
      if (hs[i]->loop && !uv_is_closing(hs[i])) uv_close(hs[i], on_closed);
    if (w->has_wake) uv_close((uv_handle_t *)&w->wake, on_closed);
    er__store_backoff_close(w, on_closed);
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
  er__unknown_free(w->unknown);
  er_free(w);
}
