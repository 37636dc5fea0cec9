/* er_pipeline_start as a future: the start runs on libuv's thread pool, as
 * er_send_async's send does. */
#include "pipeline/pipe_internal.h"
#include "queue/client_internal.h"

typedef struct start_job {
  er_client_t *c;
  char *name, *key, *queue;
  json_t *args, *kwargs;
  er_pipeline_opts_t opts;
} start_job_t;

static void job_free(start_job_t *j) {
  er_free(j->name);
  er_free(j->key);
  er_free(j->queue);
  json_decref(j->args);
  json_decref(j->kwargs);
  er_free(j);
}

static int run_start(void *arg, er_future_t *out) {
  start_job_t *j = arg;
  er_id_t id;
  int rc = er_pipeline_start(j->c, j->name, j->args, j->kwargs, &j->opts, &id);
  er__future_set_id(out, rc, &id, j->c);
  job_free(j);
  return 0;
}

er_future_t *er_pipeline_start_async(er_client_t *c, er_loop_t *loop, const char *name,
                                     json_t *args, json_t *kwargs,
                                     const er_pipeline_opts_t *opts) {
  /* The job owns copies: the caller's strings and values may be gone by the
   * time a pool thread runs it. */
  start_job_t *j = er_calloc(1, sizeof *j);
  if (!j) return NULL;
  j->c = c;
  if (opts) j->opts = *opts;
  j->name = name ? er_strdup(name) : NULL;
  j->key = opts && opts->key ? er_strdup(opts->key) : NULL;
  j->queue = opts && opts->queue ? er_strdup(opts->queue) : NULL;
  j->args = args ? json_deep_copy(args) : NULL;
  j->kwargs = kwargs ? json_deep_copy(kwargs) : NULL;
  j->opts.key = j->key;
  j->opts.queue = j->queue;
  er_future_t *f = er_loop_queue_work(loop, run_start, j);
  if (!f) job_free(j);
  return f;
}
