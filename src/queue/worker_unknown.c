/* Tasks this worker has not registered. Reservations pick by queue, not by
 * name, so a worker deployed without some task of its queues takes such
 * tasks too. Failing them at once would let one mis-deployed worker burn a
 * whole queue in seconds while the workers that have the task stand by; so
 * the worker asks the live workers' heartbeats (which list the task names
 * each has registered) and gives the task back when another live worker
 * serving the task's queue has it. Only when none has it does the task fail
 * "unknown task".
 *
 * A worker counts as live here while its last heartbeat is at most two
 * heartbeat expiries old (2 x 3 x this worker's heartbeat interval): one that
 * restarts, or whose heartbeat is late for a moment, is not taken for gone.
 *
 * The tasks one reservation brought that are unknown here are decided
 * together on the store thread, which keeps what the heartbeats said (read
 * again at most once per heartbeat interval) and writes the outcome in the
 * same request: given back with their eta moved 250 ms ahead (no retry
 * counted; the worker does not take them again at once), or failed. The
 * worker reserves nothing while a decision is in flight, nor while its
 * give-backs are over their budget: 128 a second on average, 128 at once
 * (a token bucket). A worker that lacks what its queue holds thus gives back
 * a bounded stream, not one task per store round trip, while one that
 * gives back a few now and then (two workers with different task sets on a
 * queue) is never held back from the tasks it has. */
#include <stdio.h>
#include <string.h>

#include "queue/worker_internal.h"

#define GIVE_BACK_DELAY_MS 250
#define GIVE_BACK_RATE 128 /* a second, on average */
#define GIVE_BACK_BURST 128
#define REPORT_EVERY_MS 30000 /* the count of tasks given back, in the log */

struct er__unknown {
  /* loop thread */
  er_task_rec_t **recs; /* taken by the current reservation */
  size_t n, cap;
  bool deciding;      /* a decision in flight */
  double budget;      /* give-backs allowed now; reserving waits while <= 0 */
  uint64_t budget_ms; /* when it was last topped up (monotonic) */
  json_t *warned;        /* name -> tasks given back since the last report */
  json_t *warned_failed; /* names failed as unknown everywhere */
  uint64_t report_ms;    /* when the last count was logged */
  /* store thread */
  json_t *seen;         /* {queue: {name: until_ms}}: live workers' names */
  int64_t read_ms;      /* when the heartbeats were last read (wall) */
  char read_error[160]; /* why they could not be: give back, fail nothing */
};

typedef struct {
  er__sreq_t r;
  er_worker_t *w;
  er_task_rec_t **recs;
  size_t n;
  er_completion_t *cs;
  size_t given_back;
  char why[200]; /* a failed write, or heartbeats that could not be read */
} decide_t;

void er__unknown_free(er__unknown_t *u) {
  if (!u) return;
  er_task_rec_free_array(u->recs, u->n);
  json_decref(u->warned);
  json_decref(u->warned_failed);
  json_decref(u->seen);
  er_free(u);
}

/* The budget now: it grows by GIVE_BACK_RATE a second up to the burst. */
static double budget(const er__unknown_t *u, uint64_t now) {
  double b = u->budget + (double)(now - u->budget_ms) * GIVE_BACK_RATE / 1000.0;
  return b > GIVE_BACK_BURST ? GIVE_BACK_BURST : b;
}

bool er__unknown_holding(const er_worker_t *w) {
  const er__unknown_t *u = w->unknown;
  return u && (u->deciding || budget(u, er_now_mono_ms()) <= 0);
}

void er__unknown_add(er_worker_t *w, er_task_rec_t *rec) {
  er__unknown_t *u = w->unknown;
  if (!u && (u = w->unknown = er_calloc(1, sizeof *u))) {
    u->warned = json_object();
    u->warned_failed = json_object();
    u->seen = json_object();
    u->budget = GIVE_BACK_BURST;
    u->budget_ms = er_now_mono_ms();
    if (!u->warned || !u->warned_failed || !u->seen) {
      er__unknown_free(u);
      u = w->unknown = NULL;
    }
  }
  if (u && u->n == u->cap) {
    size_t cap = u->cap ? u->cap * 2 : 64;
    er_task_rec_t **v = er_realloc(u->recs, cap * sizeof *v);
    if (v) {
      u->recs = v;
      u->cap = cap;
    }
  }
  if (!u || u->n == u->cap) {
    er_task_rec_free(rec); /* out of memory: the lease ends and the task comes back */
    return;
  }
  u->recs[u->n++] = rec;
}

/* ---- on the store thread ---- */

/* Remembers, per queue, the names the live workers other than self have
 * registered, each until two expiries after the latest heartbeat that
 * listed it; forgets what is older. */
static void remember(er__unknown_t *u, json_t *workers, const char *self, int64_t keep_ms,
                     int64_t now) {
  size_t i, k, m;
  json_t *info, *q, *name;
  json_array_foreach(workers, i, info) {
    const char *id = json_string_value(json_object_get(info, "id"));
    if (!id || !strcmp(id, self)) continue;
    int64_t until = json_integer_value(json_object_get(info, "heartbeat_ms")) + keep_ms;
    json_array_foreach(json_object_get(info, "queues"), k, q) {
      const char *qn = json_string_value(q);
      if (!qn) continue;
      json_t *names = json_object_get(u->seen, qn);
      if (!names && json_object_set_new(u->seen, qn, names = json_object()) < 0) continue;
      json_array_foreach(json_object_get(info, "registered"), m, name) {
        const char *n = json_string_value(name);
        if (n && json_integer_value(json_object_get(names, n)) < until)
          json_object_set_new(names, n, json_integer(until));
      }
    }
  }
  const char *qn, *n;
  json_t *names, *until;
  void *tmp, *tmp2;
  json_object_foreach_safe(u->seen, tmp, qn, names) {
    json_object_foreach_safe(names, tmp2, n, until) {
      if (json_integer_value(until) < now) json_object_del(names, n);
    }
    if (!json_object_size(names)) json_object_del(u->seen, qn);
  }
}

/* Whether another live worker serving queue has registered name. When the
 * heartbeats cannot be read it may: the task is given back, not failed. */
static bool served_elsewhere(er__unknown_t *u, const char *queue, const char *name,
                             int64_t now) {
  if (u->read_error[0]) return true;
  json_t *until = json_object_get(json_object_get(u->seen, queue ? queue : ""), name);
  return until && json_integer_value(until) >= now;
}

static void decide_run(er__sreq_t *r, er_store_t *s) {
  decide_t *q = (decide_t *)r;
  er_worker_t *w = q->w;
  er__unknown_t *u = w->unknown;
  int64_t now = er_now_wall_ms(), every = w->opts.heartbeat_ms;
  if (!u->read_ms || now - u->read_ms >= every) {
    json_t *ws = NULL;
    int rc = er_store_workers(s, now, &ws);
    u->read_ms = now;
    if (rc == 0) {
      u->read_error[0] = 0;
      remember(u, ws, w->id, 2 * 3 * every, now);
    } else {
      snprintf(u->read_error, sizeof u->read_error, "%s", er_store_last_error(s));
      /* said once per look, not once per decision */
      snprintf(q->why, sizeof q->why, "; the heartbeats cannot be read: %s", u->read_error);
    }
    json_decref(ws);
  }
  for (size_t i = 0; i < q->n; i++) {
    const er_task_rec_t *rec = q->recs[i];
    er_completion_t *c = &q->cs[i];
    *c = (er_completion_t){.id = rec->id, .attempt = rec->attempt, .now_ms = now};
    if (served_elsewhere(u, rec->queue, rec->task, now)) {
      c->state = ER_STATE_PENDING;
      c->retry_eta_ms = now + GIVE_BACK_DELAY_MS;
      q->given_back++;
    } else {
      char msg[512];
      snprintf(msg, sizeof msg,
               "unknown task '%s': no live worker serving queue '%s' has registered it",
               rec->task ? rec->task : "", rec->queue ? rec->queue : "");
      c->state = ER_STATE_FAILURE;
      c->error = er__error_json(ER_EUNKNOWN_TASK, msg, 0);
    }
  }
  r->rc = er_store_complete(s, q->cs, q->n, NULL);
  if (r->rc < 0) snprintf(q->why, sizeof q->why, ": %s", er_store_last_error(s));
}

/* ---- back on the loop ---- */

static void resume(void *arg) { er__io_fill(arg); }

/* One warning per name, then a count now and then, not a line per task. */
static void log_given_back(er_worker_t *w, const decide_t *q) {
  er__unknown_t *u = w->unknown;
  for (size_t i = 0; i < q->n; i++) {
    if (q->cs[i].state != ER_STATE_PENDING) continue;
    const char *name = q->recs[i]->task ? q->recs[i]->task : "";
    json_t *count = json_object_get(u->warned, name);
    if (!count) {
      er_log(ER_LOG_WARN,
             "worker %s: task '%s' is not registered here; giving it back to workers that have it",
             w->id, name);
      if (!u->report_ms) u->report_ms = er_now_mono_ms();
      json_object_set_new(u->warned, name, json_integer(0));
    } else {
      json_integer_set(count, json_integer_value(count) + 1);
    }
  }
  uint64_t now = er_now_mono_ms();
  if (now - u->report_ms < REPORT_EVERY_MS) return;
  char names[400] = "", took[32];
  size_t len = 0;
  json_int_t total = 0;
  const char *name;
  json_t *count;
  json_object_foreach(u->warned, name, count) {
    json_int_t c = json_integer_value(count);
    if (!c) continue;
    total += c;
    if (len < sizeof names)
      len += (size_t)snprintf(names + len, sizeof names - len, "%s%s: %lld", len ? ", " : "",
                              name, (long long)c);
    json_integer_set(count, 0);
  }
  er__human_ms((int64_t)(now - u->report_ms), took, sizeof took);
  if (total)
    er_log(ER_LOG_WARN, "worker %s: gave back %lld more tasks not registered here in %s (%s)",
           w->id, (long long)total, took, names);
  u->report_ms = now;
}

static void log_failed(er_worker_t *w, const decide_t *q) {
  er__unknown_t *u = w->unknown;
  for (size_t i = 0; i < q->n; i++) {
    const er_completion_t *c = &q->cs[i];
    if (c->state != ER_STATE_FAILURE) continue;
    er__job_t j = {.rec = q->recs[i], .started_ms = er_now_mono_ms()};
    j.out.rc = ER_EUNKNOWN_TASK;
    j.out.message = (char *)json_string_value(json_object_get(c->error, "message"));
    if (!json_object_get(u->warned_failed, j.rec->task ? j.rec->task : "")) {
      er_log(ER_LOG_WARN, "worker %s: %s: failing it", w->id, j.out.message);
      json_object_set_new(u->warned_failed, j.rec->task ? j.rec->task : "", json_true());
    }
    w->processed++;
    w->failed++;
    er__log_outcome(&j, c);
  }
}

static void decide_done(er__sreq_t *r) {
  decide_t *q = (decide_t *)r;
  er_worker_t *w = q->w;
  er__unknown_t *u = w->unknown;
  u->deciding = false;
  if (r->rc < 0) {
    er_log(ER_LOG_ERROR,
           "worker %s: cannot give back or fail %zu tasks not registered here (their leases will "
           "end)%s",
           w->id, q->n, q->why);
  } else {
    if (q->given_back && q->why[0])
      er_log(ER_LOG_WARN, "worker %s: gave back %zu tasks not registered here%s", w->id,
             q->given_back, q->why);
    log_given_back(w, q);
    log_failed(w, q);
  }
  uint64_t now = er_now_mono_ms();
  u->budget = budget(u, now) - (double)q->given_back;
  u->budget_ms = now;
  for (size_t i = 0; i < q->n; i++) json_decref(q->cs[i].error);
  er_task_rec_free_array(q->recs, q->n);
  er_free(q->cs);
  er_free(q);
  /* Over budget: reserve again once it is back above 0. */
  uint64_t wait_ms = u->budget > 0 ? 0 : (uint64_t)(-u->budget * 1000.0 / GIVE_BACK_RATE) + 1;
  if (!wait_ms || !er_loop_call_later(w->loop, wait_ms, resume, w)) er__io_fill(w);
  er__io_next_due(w); /* the tasks given back are due later */
  er__worker_maybe_finish(w); /* it may wait for the last request to stop */
}

void er__unknown_flush(er_worker_t *w) {
  er__unknown_t *u = w->unknown;
  if (!u || !u->n) return;
  decide_t *q = er__io_req_new(sizeof *q, decide_run, decide_done);
  er_completion_t *cs = er_calloc(u->n, sizeof *cs);
  if (!q || !cs) {
    er_free(q);
    er_free(cs);
    er_task_rec_free_array(u->recs, u->n); /* their leases end and they come back */
    u->recs = NULL;
    u->n = u->cap = 0;
    return;
  }
  q->w = w;
  q->recs = u->recs;
  q->n = u->n;
  q->cs = cs;
  u->recs = NULL;
  u->n = u->cap = 0;
  u->deciding = true;
  er__sthread_post(w->io, &q->r);
}
