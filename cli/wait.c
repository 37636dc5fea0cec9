/* Waiting for a task's outcome: `send --wait` and `result --wait`. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* How long to wait before looking for a worker: long enough for a worker
 * that is starting to send its first heartbeat. */
#define NO_WORKER_CHECK_MS 3000
/* Progress bar redraws on a terminal. */
#define DRAW_EVERY_MS 200

/* Shows "[#####.....]  50% message" on stderr. */
static void draw(double progress, const char *msg) {
  /* The record's progress is whatever was stored: past 1 it would overrun
   * the bar, and a huge double does not convert to int. */
  if (!(progress <= 1.0)) progress = 1.0;
  int filled = (int)(progress * 30 + 0.5);
  char bar[31];
  for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
  bar[30] = 0;
  char m[CLI_ESC_SIZE];
  fprintf(stderr, "\r[%s] %3d%% %-40.40s", bar, (int)(progress * 100 + 0.5),
          cli_esc(msg, m, sizeof m));
  fflush(stderr);
}

static void clear_bar(bool *drawn) {
  if (*drawn) fprintf(stderr, "\r%78s\r", "");
  *drawn = false;
}

int cli_workers_listing(er_client_t *c, const char *field, const char *value, int *live) {
  er_store_t *s;
  json_t *workers = NULL;
  if (live) *live = 0;
  if (er_store_open(er_client_url(c), &s, NULL, 0) < 0) return -1;
  int n = er_store_workers(s, er_now_wall_ms(), &workers) < 0 ? -1 : 0;
  bool unsaid = false;
  size_t i, k;
  json_t *w, *v;
  json_array_foreach(workers, i, w) {
    json_t *list = json_object_get(w, field);
    unsaid |= !list; /* a worker from before its heartbeat said this */
    bool has = false;
    json_array_foreach(list, k, v) has |= json_is_string(v) && !strcmp(json_string_value(v), value);
    n += has;
  }
  if (live) *live = (int)json_array_size(workers);
  json_decref(workers);
  er_store_close(s);
  return n == 0 && unsaid ? -1 : n;
}

bool cli_queue_served(er_client_t *c, const char *queue) {
  return cli_workers_listing(c, "queues", queue, NULL) != 0;
}

/* A task nobody will take waits silently forever: say so, once. */
static void warn_if_unserved(er_client_t *c, const char *id, bool *drawn) {
  er_task_rec_t *r = NULL;
  if (er_status(c, id, NULL, &r) == 0 &&
      (r->state == ER_STATE_PENDING || r->state == ER_STATE_RETRY) && r->queue &&
      !cli_queue_served(c, r->queue)) {
    clear_bar(drawn);
    cli_error("no live worker serves queue '%s'; the task waits in the queue", r->queue);
  }
  er_task_rec_free(r);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int cli_wait_result(er_client_t *c, const char *id, int64_t timeout_ms) {
  json_t *result = NULL, *error = NULL;
  bool tty = isatty(2), drawn = false, checked = false;
  uint64_t t0 = er_now_mono_ms();
  int rc;
  for (;;) {
    uint64_t now = er_now_mono_ms();
    if (tty) {
      er_task_rec_t *r = NULL;
      if (er_status(c, id, NULL, &r) == 0 && r->progress >= 0 && !er_state_finished(r->state)) {
        draw(r->progress, r->progress_msg ? r->progress_msg : er_state_name(r->state));
        drawn = true;
      }
      er_task_rec_free(r);
    }
    if (!checked && now - t0 >= NO_WORKER_CHECK_MS) {
      checked = true;
      warn_if_unserved(c, id, &drawn);
    }
    /* Wait until the next thing to do: the deadline, a redraw, the check. */
    int64_t elapsed = (int64_t)(now - t0);
    int64_t step = timeout_ms < 0 ? -1 : timeout_ms > elapsed ? timeout_ms - elapsed : 0;
    if (tty) step = step < 0 ? DRAW_EVERY_MS : min64(step, DRAW_EVERY_MS);
    if (!checked) {
      int64_t until_check = NO_WORKER_CHECK_MS - elapsed;
      step = step < 0 ? until_check : min64(step, until_check);
    }
    rc = er_result(c, id, NULL, step, &result, &error);
    if (rc != ER_ETIMEDOUT && rc != ER_ESTATE) break;
    if (timeout_ms >= 0 && er_now_mono_ms() - t0 >= (uint64_t)timeout_ms) {
      rc = ER_ETIMEDOUT;
      break;
    }
  }
  if (drawn && rc == 0) {
    /* The last progress seen may be short of 100% (the task reports less
     * often than it ends, or finished between two polls). */
    draw(1.0, er_state_name(ER_STATE_SUCCESS));
    fputc('\n', stderr);
    drawn = false;
  }
  clear_bar(&drawn);
  int code;
  if (rc == ER_ETIMEDOUT) {
    char d[32];
    cli_error("task %s is not finished after %s", id, cli_duration(timeout_ms, d));
    code = EXIT_NOT_READY;
  } else {
    code = cli_print_outcome(c, id, rc, result, error);
  }
  json_decref(result);
  json_decref(error);
  return code;
}
