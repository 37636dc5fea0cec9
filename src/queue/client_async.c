/* The client's sends as futures: each runs on libuv's thread pool. Result
 * futures are in client_watch.c. */
#include <string.h>

#include "queue/client_internal.h"
#include "queue/send_check.h"

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

void er__future_set_id(er_future_t *out, int rc, const er_id_t *id, er_client_t *c) {
  if (rc < 0) {
    er_future_set_error(out, rc, "%s", er_client_last_error(c));
  } else {
    json_t *s = json_string(id->text);
    er_future_set_json(out, s);
    json_decref(s);
  }
}

static int run_send(void *arg, er_future_t *out) {
  send_job_t *j = arg;
  er_id_t id;
  int rc = er_send(j->c, j->task, j->args, j->kwargs, &j->opts, &id);
  er__future_set_id(out, rc, &id, j->c);
  send_job_free(j);
  return 0;
}

er_future_t *er_send_async(er_client_t *c, er_loop_t *loop, const char *task, json_t *args,
                           json_t *kwargs, const er_send_opts_t *opts) {
  /* Checked here first: json_deep_copy recurses, so a value nested too deep
   * must be refused before it is copied. */
  char why[384];
  int rc = er__send_check(task, args, kwargs, opts, er_now_wall_ms(),
                          er_store_max_payload(c->store), why, sizeof why);
  if (rc == ER_ENOMEM) return NULL;
  if (rc < 0) return er_future_new_error(loop, rc, "send: %s", why);
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
