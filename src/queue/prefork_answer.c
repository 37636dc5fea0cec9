/* The prefork pool's reader of a child's answers: one JSON line per job, in
 * the order the jobs were written. A NUL in a result's string comes as
 * \u0000 and is read back intact; an answer that cannot be read (not JSON,
 * or longer than the result limit allows) fails the job it was for, and
 * the child, no longer trusted to answer in step, is replaced. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "queue/prefork.h"

/* An answer is the result plus a few fields (a message is at most 1 KiB):
 * a line longer than the result limit and this is not one. */
#define ANSWER_SLACK 65536
#define BUF_KEEP 131072 /* a reader's buffer shrinks back to this after a big answer */

/* The job at the head of c's queue is over: its output so far is its own. */
static er__job_t *pop_head(child_t *c) {
  er__job_t *j = c->jobs[0];
  for (int k = 0; k < 2; k++) er__out_drain(&c->out[k]);
  er__out_note(&c->out[0]);
  uv_timer_stop(&c->timer);
  c->njobs--;
  memmove(c->jobs, c->jobs + 1, (size_t)c->njobs * sizeof *c->jobs);
  memmove(c->seqs, c->seqs + 1, (size_t)c->njobs * sizeof *c->seqs);
  er__prefork_start_head(c);
  return j;
}

/* The head job fails with rc and msg: its answer could not be read. The
 * child is no longer trusted to answer in step: it is killed, the jobs
 * behind go to other children (on_child_gone), and none is written to it. */
static void fail_head(child_t *c, int rc, const char *msg) {
  er__job_t *j = pop_head(c);
  j->out.rc = rc;
  j->out.message = er_strdup(msg);
  er_log(ER_LOG_WARN, "task %s[%s]: %s", j->rec->task, j->rec->id, msg);
  c->abandoned = true;
  uv_timer_stop(&c->timer);
  kill(c->pid, SIGKILL);
  er__worker_job_done(c->pool->base.w, j);
}

/* One line from the child (len bytes, NUL-terminated): the answer for the
 * job at the head of its queue. A line without an id comes from a child
 * that could not read its job; one with another job's id is stale (logged,
 * dropped). */
static void take_answer(child_t *c, const char *line, size_t len) {
  if (!c->njobs) {
    er_log(ER_LOG_ERROR, "prefork: unexpected line from child %d", (int)c->pid);
    return;
  }
  er__job_t *j = c->jobs[0];
  json_error_t jerr;
  /* A NUL in a result's string is carried as \u0000: read it back intact. */
  json_t *a = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
  if (!json_is_object(a)) {
    char msg[300];
    snprintf(msg, sizeof msg, "worker child sent an unreadable answer: %s",
             a ? "not an object" : jerr.text);
    json_decref(a);
    fail_head(c, ER_EPARSE, msg);
    return;
  }
  const char *id = json_string_value(json_object_get(a, "id"));
  if (id && strcmp(id, j->rec->id) != 0) {
    er_log(ER_LOG_ERROR, "prefork: child %d answered for task %s, not %s", (int)c->pid, id,
           j->rec->id);
    json_decref(a);
    return;
  }
  pop_head(c);
  j->out.rc = (int)json_integer_value(json_object_get(a, "rc"));
  if (j->out.rc > 0) j->out.rc = ER_EFAIL;
  json_t *res = json_object_get(a, "result");
  if (j->out.rc == 0) j->out.result = json_incref(res ? res : json_null());
  const char *msg = json_string_value(json_object_get(a, "message"));
  if (msg) j->out.message = er_strdup(msg);
  j->out.retry = json_is_true(json_object_get(a, "retry"));
  j->out.countdown_ms = json_integer_value(json_object_get(a, "countdown"));
  json_decref(a);
  er__worker_job_done(c->pool->base.w, j);
}

/* A line longer than any answer, n bytes, dropped as it came. */
static void answer_too_long(child_t *c, size_t n) {
  if (!c->njobs) return;
  char msg[300];
  snprintf(msg, sizeof msg,
           "worker child sent an answer of %zu bytes, more than a result of %zu bytes needs "
           "(set --max-result-size / opts.max_result_bytes)",
           n, c->pool->base.max_result);
  fail_head(c, ER_ETOOBIG, msg);
}

static size_t line_max(const child_t *c) {
  size_t m = c->pool->base.max_result;
  return m > SIZE_MAX - ANSWER_SLACK ? SIZE_MAX : m + ANSWER_SLACK;
}

void er__prefork_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  child_t *c = h->data;
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : BUF_KEEP;
    char *b = er_realloc(c->buf, cap);
    if (b) {
      c->buf = b;
      c->cap = cap;
    }
  }
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* Each byte is looked at once (a big answer comes in many reads: scanning
 * the whole buffer again on each made an 80 MiB result take seconds), and
 * what a line needs is kept only up to line_max. */
void er__prefork_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_t *c = s->data;
  if (nread < 0) {
    /* Not the end (no memory for its answer, say): it may be alive and
     * waiting to write, and on_child_gone waits for it to exit. */
    if (nread != UV_EOF) kill(c->pid, SIGKILL);
    er__prefork_child_gone(c);
    return;
  }
  c->len += (size_t)nread;
  size_t start = 0, pos = c->scanned;
  char *nl;
  while (!c->closing && (nl = memchr(c->buf + pos, '\n', c->len - pos))) {
    size_t end = (size_t)(nl - c->buf);
    *nl = '\0';
    if (c->skipped) {
      answer_too_long(c, c->skipped + (end - start));
      c->skipped = 0;
    } else {
      take_answer(c, c->buf + start, end - start);
    }
    start = pos = end + 1;
  }
  size_t rest = c->len - start;
  if (c->skipped || rest > line_max(c)) {
    c->skipped += rest;
    start = c->len;
    rest = 0;
  }
  memmove(c->buf, c->buf + start, rest);
  c->len = c->scanned = rest;
  if (c->cap > BUF_KEEP && c->len < BUF_KEEP / 2) {
    char *b = er_realloc(c->buf, BUF_KEEP);
    if (b) {
      c->buf = b;
      c->cap = BUF_KEEP;
    }
  }
}

