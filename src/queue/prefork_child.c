/* A prefork child: reads one job per line from the worker, runs it, answers
 * with one line. It ignores SIGINT and SIGTERM (the worker decides when
 * children stop) and takes REVOKE_SIGNAL, carrying a job's number, as
 * "that job was revoked". */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celery/celery_internal.h"
#include "queue/prefork.h"
#include "queue/queue_internal.h"

/* Jobs are numbered in the order the worker writes them (from 1, both sides
 * count every line), and a revoke names its job's number: a revoke that comes
 * late, after the job it was meant for has answered, or early, before its
 * job is read, cannot land on another job. g_cur is the running job's
 * number; g_revoked_seq the number of the last job revoked; g_revoked what
 * the running task sees. The worker only revokes the job it sees at the head
 * of this child's queue, newest last, and a real-time signal queues in
 * order, so one remembered number is enough. */
static volatile sig_atomic_t g_revoked, g_cur, g_revoked_seq;

/* A real-time signal: those queue, where a second SIGUSR1 sent while the
 * first is pending would be lost, and with it the newer job's number. */
#define REVOKE_SIGNAL SIGRTMIN

int er__child_next_seq(int seq) { return seq == INT_MAX ? 1 : seq + 1; }

void er__child_revoke_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, REVOKE_SIGNAL);
}

int er__child_revoke(pid_t pid, int seq) {
  union sigval v = {.sival_int = seq};
  return sigqueue(pid, REVOKE_SIGNAL, v);
}

static void on_revoke(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  if (si->si_code != SI_QUEUE) return;
  g_revoked_seq = si->si_value.sival_int;
  if (g_revoked_seq == g_cur) g_revoked = 1;
}

/* ud is {er_store_t *store, const char *url}: the store is opened on the
 * first progress report, since most tasks never make one. */
static void progress(void *ud, const char *id, int attempt, double p, const char *msg) {
  void **state = ud;
  er_store_t **store = (er_store_t **)&state[0];
  if (!*store && er_store_open(state[1], store, NULL, 0) < 0) return;
  er_store_progress(*store, id, attempt, p, msg);
}

/* Writes a one-line answer. Encoded whole before any of it is written: a
 * result jansson cannot encode (a string made without checking its UTF-8)
 * must not leave half a line on the socket. The task's own output is
 * flushed first, so the worker, reading the answer, finds it all there. */
static void write_answer(FILE *out, json_t *a) {
  char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
  if (!text) {
    json_t *id = a ? json_object_get(a, "id") : NULL;
    json_t *e = json_pack("{s:O?, s:i, s:s}", "id", id, "rc", ER_EPARSE, "message",
                          "the task's result cannot be encoded as JSON");
    text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
  }
  fflush(stdout);
  fflush(stderr);
  if (text) fprintf(out, "%s\n", text);
  fflush(out);
  free(text);
}

static void answer(FILE *out, const er_task_rec_t *rec, const er__outcome_t *o) {
  json_t *a = json_pack("{s:s, s:i}", "id", rec->id, "rc", o->rc);
  if (a && o->rc == 0) json_object_set(a, "result", o->result ? o->result : json_null());
  if (a && o->message) json_object_set_new(a, "message", json_string(o->message));
  if (a && o->retry) {
    json_object_set_new(a, "retry", json_true());
    json_object_set_new(a, "countdown", json_integer(o->countdown_ms));
  }
  write_answer(out, a);
  json_decref(a);
}

int er__child_main(int fd, const char *store_url) {
  return er__child_run(fd, store_url, NULL, NULL, 0);
}

int er__child_run(int fd, const char *store_url, const char *base_url, const uint8_t *secret,
                  size_t max_result) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  /* SA_RESTART: a revoke that comes while the child waits for its next job
   * (it can come that early: the worker learns of revokes at once) must not
   * end the read as if the worker had gone. */
  struct sigaction sa = {0};
  sa.sa_sigaction = on_revoke;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigaction(REVOKE_SIGNAL, &sa, NULL);
  /* The worker forks with the signal blocked, so that a revoke sent before
   * the handler was in place waits for it instead of killing the child. */
  sigset_t set;
  er__child_revoke_set(&set);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  FILE *in = fdopen(fd, "r");
  FILE *out = fdopen(dup(fd), "w");
  if (!in || !out) return 1;
  void *pstate[2] = {NULL, (void *)store_url};
  char *line = NULL;
  size_t cap = 0;
  int seq = 0;
  for (;;) {
    errno = 0;
    ssize_t got = getline(&line, &cap, in);
    if (got <= 0) {
      if (errno == EINTR) {
        clearerr(in);
        continue;
      }
      break;
    }
    /* The handler sets g_revoked only for g_cur: move g_cur on first (a late
     * revoke for the last job then leaves g_revoked alone), clear the flag,
     * then take a revoke for this job that came before it was read. */
    seq = er__child_next_seq(seq);
    g_cur = seq;
    g_revoked = 0;
    if (g_revoked_seq == seq) g_revoked = 1;
    json_error_t jerr;
    er_task_rec_t *rec = NULL;
    int bad = er__job_decode(line, (size_t)got, &rec, &jerr);
    if (bad) {
      /* Answered all the same (without an id: it could not be read), or
       * the worker would wait for this job forever. */
      char msg[300];
      snprintf(msg, sizeof msg, "worker child cannot read its job: %s",
               bad == ER_ENOMEM ? "out of memory" : jerr.text);
      json_t *a = json_pack("{s:i, s:s}", "rc", bad, "message", msg);
      write_answer(out, a);
      json_decref(a);
      continue;
    }
    const er_task_def_t *def = er_task_lookup(rec->task);
    er_task_t t;
    er__task_init(&t, rec, def);
    t.revoked = &g_revoked;
    t.progress = progress;
    t.progress_ud = pstate;
#ifdef ER_HAVE_REDIS
    if (er__celery_borne(rec)) { /* --celery: the PROGRESS state of its result key */
      t.progress = er__celery_progress;
      t.progress_ud = (void *)store_url;
    }
#endif
    t.max_result = max_result;
    t.store_url = store_url;
    t.base_url = base_url;
    t.secret = secret;
    er__task_run(rec, def, &t);
    answer(out, rec, &t.out);
    er__outcome_clear(&t.out);
    er_task_rec_free(rec);
  }
  free(line);
  er_store_close(pstate[0]);
  return 0;
}
