/* What the worker says about itself: its start-up banner, one log line per
 * task event (at info level), and the heartbeat `errand inspect` shows. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/json_walk.h"
#include "errand/pipeline.h"
#include "pipeline/pipe_internal.h"
#include "queue/worker_internal.h"

#define RESULT_SHOWN 80 /* characters of a result in the log */

void er__human_ms(int64_t ms, char *buf, size_t size) {
  if (ms < 0) ms = 0;
  if (ms < 1000)
    snprintf(buf, size, "%lld ms", (long long)ms);
  else if (ms < 60000)
    snprintf(buf, size, "%.3g s", (double)ms / 1000.0);
  else if (ms < 3600000)
    snprintf(buf, size, "%.3g min", (double)ms / 60000.0);
  else
    snprintf(buf, size, "%.3g h", (double)ms / 3600000.0);
}

static void add_name(const er_task_def_t *d, void *ud) {
  json_array_append_new(ud, json_string(d->name));
}

/* The banner's names: what the libraries brought, not the library's own
 * (the pipelines' internal errand.* tasks, the built-in pipelines). */
static void add_own_task(const er_task_def_t *d, void *ud) {
  if (strncmp(d->name, "errand.", 7) != 0) add_name(d, ud);
}

static void add_own_pipeline(const er_pipeline_def_t *d, void *ud) {
  if (!er__pipe_builtin(d)) json_array_append_new(ud, json_string(d->name));
}

static void print_names(const char *what, json_t *names) {
  size_t i;
  json_t *v;
  fprintf(stderr, "%s (%zu):", what, json_array_size(names));
  json_array_foreach(names, i, v) fprintf(stderr, "%s%s", i ? ", " : " ", json_string_value(v));
  fprintf(stderr, "%s\n", json_array_size(names) ? "" : " none");
}

static json_t *registered(void) {
  json_t *a = json_array();
  if (a) er_task_foreach(add_name, a);
  return a;
}

static void add_pipeline(const er_pipeline_def_t *d, void *ud) {
  json_array_append_new(ud, json_string(d->name));
}

/* The pipelines this worker can run: a client that starts one by name
 * without the library (errand pipeline start) checks it against these. */
static json_t *pipelines(void) {
  json_t *a = json_array();
  if (a) er_pipeline_foreach(add_pipeline, a);
  return a;
}

void er__worker_banner(er_worker_t *w) {
  fprintf(stderr, "errand worker %s: %s pool, concurrency %d, queues", w->id,
          er_pool_name(w->opts.pool), w->opts.concurrency);
  for (size_t i = 0; i < w->nqueues; i++) fprintf(stderr, "%s%s", i ? "," : " ", w->queues[i]);
  char shown[512];
  er_url_redact(er_client_url(w->client), shown, sizeof shown);
  fprintf(stderr, ", store %s\n", shown);
  json_t *tasks = json_array(), *pipes = json_array();
  er_task_foreach(add_own_task, tasks);
  er_pipeline_foreach(add_own_pipeline, pipes);
  print_names("tasks", tasks);
  /* A worker of tasks alone says nothing of pipelines. */
  if (json_array_size(pipes)) print_names("pipelines", pipes);
  json_decref(tasks);
  json_decref(pipes);
}

void er__log_received(const er__job_t *j) {
  er_log(ER_LOG_INFO, "task %s[%s] received", j->rec->task, j->rec->id);
}

void er__log_outcome(const er__job_t *j, const er_completion_t *c) {
  if (er_log_get_level() < ER_LOG_INFO) return;
  char took[32];
  er__human_ms((int64_t)(er_now_mono_ms() - j->started_ms), took, sizeof took);
  const char *name = j->rec->task, *id = j->rec->id;
  const char *msg = j->out.message ? j->out.message : er_strerror(j->out.rc);
  switch (c->state) {
    case ER_STATE_SUCCESS: {
      /* Only the start of the result is encoded, by a walk on the heap:
       * this runs on a tasklet task's 64 KiB stack, where json_dumps
       * recursing through a result 2,000 deep overflowed it, and it need
       * not encode 16 MiB to show 80 bytes. */
      char text[RESULT_SHOWN + 1] = "null";
      int more = c->result ? er__json_preview(c->result, text, sizeof text) : 0;
      if (more < 0)
        snprintf(text, sizeof text, "(not shown: %s)",
                 more == ER_EINVAL ? "invalid UTF-8" : er_strerror(more));
      er_log(ER_LOG_INFO, "task %s[%s] succeeded in %s: %s%s", name, id, took, text,
             more > 0 ? "..." : "");
      break;
    }
    case ER_STATE_RETRY: {
      char in[32];
      er__human_ms(c->retry_eta_ms - c->now_ms, in, sizeof in);
      er_log(ER_LOG_INFO, "task %s[%s] retry in %s: %s", name, id, in, msg);
      break;
    }
    case ER_STATE_REVOKED:
      er_log(ER_LOG_INFO, "task %s[%s] revoked after %s", name, id, took);
      break;
    default:
      er_log(ER_LOG_INFO, "task %s[%s] failed in %s: %s", name, id, took, msg);
  }
}

static json_t *job_list(er_worker_t *w, bool active) {
  json_t *a = json_array();
  for (er__job_t *j = w->running; a && j; j = j->next) {
    /* Handed to the pool and started there (a prefork child's next jobs
     * wait in its socket), or a tasklet. */
    bool running = j->started_wall_ms != 0;
    if (running != active) continue;
    json_t *o = active ? json_pack("{s:s, s:s, s:I}", "id", j->rec->id, "task", j->rec->task,
                                   "started_ms", (json_int_t)j->started_wall_ms)
                       : json_pack("{s:s, s:s}", "id", j->rec->id, "task", j->rec->task);
    json_array_append_new(a, o);
  }
  return a;
}

json_t *er__worker_info(er_worker_t *w) {
  json_t *qs = json_array();
  for (size_t i = 0; qs && i < w->nqueues; i++) json_array_append_new(qs, json_string(w->queues[i]));
  /* The counts are the lists' lengths: one test decides what runs and what
   * waits (a prefork child's next jobs count as reserved, not active). */
  json_t *active = job_list(w, true), *reserved = job_list(w, false);
  return json_pack("{s:s, s:s, s:i, s:o, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
                   "id",
                   w->id, "hostname", w->hostname, "pid", (int)getpid(), "queues", qs,
                   "concurrency", w->opts.concurrency, "pool", er_pool_name(w->opts.pool),
                   "active", (json_int_t)json_array_size(active), "reserved",
                   (json_int_t)json_array_size(reserved), "processed", (json_int_t)w->processed, "failed",
                   (json_int_t)w->failed, "started_ms", (json_int_t)w->started_ms, "registered",
                   registered(), "pipelines", pipelines(), "active_tasks", active,
                   "reserved_tasks", reserved, "histograms",
                   json_pack("{s:o, s:o}", "runtime", er__hist_json(&w->runtime), "roundtrip",
                             er__hist_json(&w->roundtrip)));
}
