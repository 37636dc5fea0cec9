/* The queue layer's private pieces: the running task's context, how an
 * attempt's outcome becomes a store completion, and the pools' interface. */
#ifndef ER_QUEUE_INTERNAL_H
#define ER_QUEUE_INTERNAL_H

#include <signal.h>
#include <uv.h>

#include "errand/client.h"
#include "errand/store.h"
#include "errand/task.h"
#include "errand/worker.h"

/* Why the worker killed an attempt (prefork), a value rather than words. */
typedef enum er__kill {
  ER__KILL_NONE = 0,
  ER__KILL_HARD_LIMIT, /* past its hard time limit: ETIMEDOUT */
  ER__KILL_REVOKE,     /* revoked, or its lease lost, and the grace period over */
  ER__KILL_SHUTDOWN    /* the worker stopped at once */
} er__kill_t;
const char *er__kill_text(er__kill_t k); /* "hard time limit exceeded", ...; NULL for none */

/* What one attempt came to, before the retry policy is applied. */
typedef struct er__outcome {
  int rc;            /* 0, or the task's (negative) code */
  json_t *result;    /* rc == 0 */
  char *message;     /* rc < 0 */
  bool retry;        /* er_task_retry was called */
  int64_t countdown_ms; /* its countdown, < 0 for the backoff */
  int signal;        /* the child died by this signal (prefork) */
  er__kill_t killed; /* the worker killed it, and why */
} er__outcome_t;
void er__outcome_clear(er__outcome_t *o);

typedef void (*er__progress_fn)(void *ud, const char *id, int attempt, double p, const char *msg);

struct er_task {
  const er_task_rec_t *rec;
  const er_task_def_t *def;
  uint64_t soft_deadline_ms; /* monotonic; 0 none */
  volatile sig_atomic_t *revoked;
  er__outcome_t out;
  er__progress_fn progress;
  void *progress_ud;
  uint64_t last_progress_ms;
  er_loop_t *loop;
  er_client_t *client;
  size_t max_result; /* bytes of the result as compact JSON; 0: the default */
  const char *store_url; /* the worker's store (for the pipelines' tasks) */
  const char *base_url;  /* the worker's --base-url (pipelines' callback URLs) */
  const uint8_t *secret; /* the worker's own key for their tokens, or NULL */
};

/* The store the running task's worker uses: t->store_url, else its client's
 * URL (tasklet tasks). */
const char *er__task_store_url(const er_task_t *t);
/* The worker's base URL for callback URLs, or NULL. */
const char *er__task_base_url(const er_task_t *t);
/* The worker's own key for callback tokens (32 bytes), or NULL: the
 * store's secret. */
const uint8_t *er__task_secret(const er_task_t *t);

/* Runs rec's task (def may be NULL: unknown task) on the calling thread and
 * fills out. */
void er__task_run(const er_task_rec_t *rec, const er_task_def_t *def, er_task_t *t);
/* Sets up t for rec (used by er__task_run and by tasklet tasks). */
void er__task_init(er_task_t *t, const er_task_rec_t *rec, const er_task_def_t *def);
/* Finishes t after its function returned rc with result. */
void er__task_finish(er_task_t *t, int rc, json_t *result);

/* The task's effective settings: what the sender set, else the task's
 * defaults, else errand's. */
int er__eff_max_retries(const er_task_rec_t *r, const er_task_def_t *d);
int64_t er__eff_soft_ms(const er_task_rec_t *r, const er_task_def_t *d);
int64_t er__eff_hard_ms(const er_task_rec_t *r, const er_task_def_t *d);

/* Turns an outcome into the completion the store records (retry policy,
 * backoff with jitter, error object). c->error is a new reference the caller
 * releases (json_decref); c->result is borrowed from o. */
void er__decide(const er_task_rec_t *r, const er_task_def_t *d, const er__outcome_t *o,
                bool revoked, int64_t now_ms, er_completion_t *c);
/* {"code","name","message"[,"signal"]} */
json_t *er__error_json(int code, const char *message, int signal);
/* A random number in [0, 1), for back-offs: different in every process. */
double er__jitter(void);

/* The prefork child's job line: the job as JSON texts (a header, args,
 * kwargs, context) and a newline, in len bytes from er_malloc; NULL when
 * out of memory. The child's decode of one line: 0 with *out, ER_EPARSE
 * with the reason in e, ER_ENOMEM. */
char *er__job_encode(const er_task_rec_t *rec, size_t *len);
int er__job_decode(const char *line, size_t len, er_task_rec_t **out, json_error_t *e);

#endif
