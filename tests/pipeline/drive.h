/* The pipeline tests' fixture and driver. Each test gets a store (the URL in
 * $ERRAND_TEST_STORE, else a fresh SQLite file), a client on it, a queue of
 * its own, and a clock it moves by hand. The driver plays the workers: it
 * reserves the internal tasks from the store, runs them through the same
 * entry point a worker uses (er__pipe_exec) in a random order, with
 * duplicated, lost and late deliveries mixed in, until none is left. */
#ifndef ER_TEST_PIPELINE_DRIVE_H
#define ER_TEST_PIPELINE_DRIVE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errand.h"
#include "pipeline/pipe_internal.h"

typedef struct fx {
  char dir[128];   /* temporary directory (SQLite) */
  char url[512];
  char queue[64];
  er_store_t *s;
  er_client_t *c;
  /* the driver */
  unsigned seed;
  double p_dup, p_lost, p_late; /* chances per delivery */
  json_t *applied; /* "task id" -> transitions written */
  json_t *answers; /* callback task id -> its last answer */
  size_t execs;
  char base_url[128]; /* of callback URLs ("": none) */
} fx_t;

extern int64_t g_now; /* the pipelines' clock during the tests */
#define LEASE_MS 10000

int setup(void **state);
int teardown(void **state);
/* Sets the driver's chaos: no chaos when all are 0. */
void chaos(fx_t *f, unsigned seed, double dup, double lost, double late);
/* Starts name with args given as JSON text on f's queue; returns the root id. */
er_id_t start(fx_t *f, const char *name, const char *args_json, const er_pipeline_opts_t *o);
/* Runs every internal task due, moving the clock to the next due time when
 * none is, until nothing is left (at most max_steps deliveries). */
void drive(fx_t *f, size_t max_steps);
/* Runs up to n tasks due now (no chaos, no clock change); returns how many. */
size_t step(fx_t *f, size_t n);
/* Reserves up to max internal tasks due now on f's queue (*out a new
 * array); returns how many. */
size_t reserve_due(fx_t *f, size_t max, er_task_rec_t ***out);
/* Runs a reserved task through the workers' entry point and acknowledges
 * it, as a worker does. */
void run_task(fx_t *f, er_task_rec_t *r);
/* The tree of root (new). */
json_t *tree(fx_t *f, const char *root);
/* The record of pipeline id (new). */
json_t *pipe_doc(fx_t *f, const char *id);
/* The root's default output (new); fails the test when not filled. */
json_t *output(fx_t *f, const char *root);
/* Checks the whole tree finished cleanly: every pipeline in `status`, every
 * slot of a done tree filled by its owner, every barrier at 0, each
 * pipeline's run committed once, and each parent's finalize once. */
void check_tree(fx_t *f, const char *root, const char *status);
/* When the next task of f's queue falls due (0: none). */
int64_t next_due(fx_t *f);
/* The next task falls due at t, not a millisecond sooner: moves the clock
 * to t - 1 (nothing to run), then to t, and runs that one task. */
void falls_due_at(fx_t *f, int64_t t);
/* A finalize function that records each call: g_fin maps a pipeline id to
 * [was_aborted, ...], one per call. */
extern json_t *g_fin;
void record(er_pipe_ctx_t *ctx, json_t *outputs, bool was_aborted);
/* Every finalize call of id saw was_aborted == want, and there was one. */
void finalized(const char *id, bool want);
/* How many transitions of task for pipeline id were written. */
int applied(fx_t *f, const char *task, const char *id);
/* The barrier "<id>:<what>" (what: "start" or "fin"); 0 once gone. */
int64_t barrier(fx_t *f, const char *id, const char *what);
/* Runs one internal task as a worker would, counting what it wrote; a
 * callback task's answer is kept in f->answers. */
void exec1(fx_t *f, er_task_rec_t *r);
/* The test's clock catches up with the wall clock (a client's task is due
 * at the wall clock's now). */
void catch_up(void);
/* Queues a callback (params as JSON text) to pipeline id with
 * er_pipeline_callback; returns the callback task's id. */
er_id_t callback(fx_t *f, const char *id, const char *params_json);
/* The status of the answer callback task `task` gave (0: none yet). */
json_int_t answer_status(fx_t *f, const char *task);
/* root's tree as JSON text (free()): what a refused callback leaves alone. */
char *snapshot(fx_t *f, const char *root);
/* The number of documents in coll. */
size_t count_docs(fx_t *f, const char *coll);

#endif
