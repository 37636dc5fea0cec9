/* The internal tasks a worker runs for pipelines, and the one entry point
 * (er__pipe_exec) that the worker's tasks and the tests share. A task needs
 * the worker's store: each thread that runs them keeps one handle open for
 * the worker's URL, closed when the thread ends. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"
#include "queue/queue_internal.h"

int er__pipe_exec(er_store_t *s, const er_task_rec_t *rec, er__pipe_result_t *res, char *err,
                  size_t err_size) {
  return er__pipe_exec_at(s, rec, NULL, NULL, res, err, err_size);
}

int er__pipe_exec_at(er_store_t *s, const er_task_rec_t *rec, const char *base_url,
                     const uint8_t *secret, er__pipe_result_t *res, char *err, size_t err_size) {
  res->applied = false;
  res->answer = NULL;
  const char *task = rec->task ? rec->task : "";
  const char *id = json_string_value(json_array_get(rec->args, 0));
  json_t *att = json_array_get(rec->args, 1);
  bool run = strcmp(task, ER__PIPE_TASK_RUN) == 0;
  bool fin = strcmp(task, ER__PIPE_TASK_FIN) == 0;
  bool abort = strcmp(task, ER__PIPE_TASK_ABORT) == 0;
  bool cb = strcmp(task, ER__PIPE_TASK_CALLBACK) == 0;
  if (!id || !er_id_valid(id) || (!run && !fin && !abort && !cb) ||
      (run && !json_is_integer(att)) || (cb && !json_is_object(att))) {
    snprintf(err, err_size, "%s: arguments must be [pipeline id%s]", task,
             run ? ", attempt" : cb ? ", params" : "");
    return ER_EINVAL;
  }
  int rc = run  ? er__pipe_exec_run(s, rec, id, (int)json_integer_value(att), base_url, secret,
                                    res)
           : cb ? er__pipe_exec_callback(s, rec, id, att, base_url, secret, res)
                : er__pipe_exec_fin(s, rec, id, abort, res);
  if (rc < 0)
    snprintf(err, err_size, "%s %s: %s", task, id,
             er_store_last_error(s)[0] ? er_store_last_error(s) : er_strerror(rc));
  return rc;
}

/* ---- one store handle per thread ---- */

typedef struct tl_store {
  er_store_t *s;
  char *url;
} tl_store_t;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void tl_free(void *p) {
  tl_store_t *t = p;
  er_store_close(t->s);
  er_free(t->url);
  er_free(t);
}

static void make_key(void) { pthread_key_create(&g_key, tl_free); }

static int thread_store(const char *url, er_store_t **out, char *err, size_t err_size) {
  pthread_once(&g_key_once, make_key);
  tl_store_t *t = pthread_getspecific(g_key);
  if (t && t->url && url && strcmp(t->url, url) == 0) {
    *out = t->s;
    return 0;
  }
  if (t) {
    pthread_setspecific(g_key, NULL);
    tl_free(t);
  }
  if (!(t = er_calloc(1, sizeof *t))) return ER_ENOMEM;
  int rc = er_store_open(url, &t->s, err, err_size);
  if (rc < 0 || !(t->url = er_strdup(er_store_url(t->s)))) {
    tl_free(t);
    return rc < 0 ? rc : ER_ENOMEM;
  }
  pthread_setspecific(g_key, t);
  *out = t->s;
  return 0;
}

/* What the worker runs for each internal task. A store that fails (down,
 * busy) asks for a retry: the transition was not written, and running the
 * stage again is what at-least-once delivery promises anyway. */
static int pipe_task(er_task_t *t, json_t **result) {
  char err[512] = "";
  er_store_t *s = NULL;
  int rc = thread_store(er__task_store_url(t), &s, err, sizeof err);
  if (rc < 0) return er_task_retry(t, -1, rc, "pipeline: cannot open the store: %s", err);
  er__pipe_result_t res;
  rc = er__pipe_exec_at(s, t->rec, er__task_base_url(t), er__task_secret(t), &res, err,
                        sizeof err);
  if (rc == ER_EINVAL) return er_task_fail(t, rc, "%s", err);
  if (rc < 0) return er_task_retry(t, -1, rc, "%s", err);
  /* A callback's answer is what its caller waits for (er_result). */
  *result = res.answer ? res.answer : json_boolean(res.applied);
  return 0;
}

static const er_task_def_t g_run = {.name = ER__PIPE_TASK_RUN, .fn = pipe_task, .max_retries = 20};
static const er_task_def_t g_fin = {.name = ER__PIPE_TASK_FIN, .fn = pipe_task, .max_retries = 20};
static const er_task_def_t g_abort = {.name = ER__PIPE_TASK_ABORT, .fn = pipe_task,
                                      .max_retries = 20};
static const er_task_def_t g_callback = {.name = ER__PIPE_TASK_CALLBACK, .fn = pipe_task,
                                         .max_retries = 20};

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

static void init_once(void) {
  er_task_register(&g_run);
  er_task_register(&g_fin);
  er_task_register(&g_abort);
  er_task_register(&g_callback);
  er__pipe_builtins_register();
}

void er__pipe_init(void) { pthread_once(&g_init_once, init_once); }

/* A program or library linked with liberrand gets the internal tasks and the
 * built-ins as it loads, so any worker can run any tree's internal tasks. */
__attribute__((constructor)) static void pipe_init_at_load(void) { er__pipe_init(); }
