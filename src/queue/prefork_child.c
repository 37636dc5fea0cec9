/* A prefork child: reads one job per line from the worker, runs it, answers
 * with one line. It ignores SIGINT and SIGTERM (the worker decides when
 * children stop) and takes SIGUSR1 as "your task was revoked". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue_internal.h"

static volatile sig_atomic_t g_revoked;

static void on_usr1(int sig) { g_revoked = 1; }

/* ud is {er_store_t *store, const char *url}: the store is opened on the
 * first progress report, since most tasks never make one. */
static void progress(void *ud, const char *id, int attempt, double p, const char *msg) {
  void **state = ud;
  er_store_t **store = (er_store_t **)&state[0];
  if (!*store && er_store_open(state[1], store, NULL, 0) < 0) return;
  er_store_progress(*store, id, attempt, p, msg);
}

static void answer(FILE *out, const er_task_rec_t *rec, const er__outcome_t *o) {
  json_t *a = json_pack("{s:s, s:i}", "id", rec->id, "rc", o->rc);
  if (!a) return;
  if (o->rc == 0) json_object_set(a, "result", o->result ? o->result : json_null());
  if (o->message) json_object_set_new(a, "message", json_string(o->message));
  if (o->retry) {
    json_object_set_new(a, "retry", json_true());
    json_object_set_new(a, "countdown", json_integer(o->countdown_ms));
  }
  if (json_dumpf(a, out, JSON_COMPACT) < 0) {
    /* The result cannot be written (not JSON-encodable): fail the task. */
    json_decref(a);
    a = json_pack("{s:s, s:i, s:s}", "id", rec->id, "rc", ER_EPARSE, "message",
                  "the task's result is not valid JSON");
    json_dumpf(a, out, JSON_COMPACT);
  }
  fputc('\n', out);
  fflush(out);
  json_decref(a);
}

int er__child_main(int fd, const char *store_url) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  /* SA_RESTART: a revoke that comes while the child waits for its next job
   * (it can come that early: the worker learns of revokes at once) must not
   * end the read as if the worker had gone. */
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  FILE *in = fdopen(fd, "r");
  FILE *out = fdopen(dup(fd), "w");
  if (!in || !out) return 1;
  void *pstate[2] = {NULL, (void *)store_url};
  char *line = NULL;
  size_t cap = 0;
  for (;;) {
    errno = 0;
    if (getline(&line, &cap, in) <= 0) {
      if (errno == EINTR) {
        clearerr(in);
        continue;
      }
      break;
    }
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr);
    er_task_rec_t *rec = j ? er__job_from_json(j) : NULL;
    json_decref(j);
    if (!rec) continue;
    const er_task_def_t *def = er_task_lookup(rec->task);
    er_task_t t;
    er__task_init(&t, rec, def);
    t.revoked = &g_revoked;
    t.progress = progress;
    t.progress_ud = pstate;
    er__task_run(rec, def, &t);
    answer(out, rec, &t.out);
    /* From here a revoke is for the next job: the worker sends one only for
     * the job at the head of this child's queue. */
    g_revoked = 0;
    er__outcome_clear(&t.out);
    er_task_rec_free(rec);
  }
  free(line);
  er_store_close(pstate[0]);
  return 0;
}
