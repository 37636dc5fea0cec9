/* Stored task records that cannot be decoded: an older writer, a corrupted
 * row, a foreign script. Both backends read records through these helpers,
 * which never give up on the whole record: they note the first reason
 * ("args: ...") and carry on, so that the caller can fail that one task (a
 * reserve) or still show what is readable of it (a get), instead of failing
 * a whole call over and over. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define POISON_PREFIX "task record cannot be decoded: "

void er__rec_bad(er_rec_why_t *w, const char *field, const char *fmt, ...) {
  if (w->why[0]) return; /* the first reason is the one to tell */
  int n = snprintf(w->why, sizeof w->why, "%s: ", field);
  if (n < 0 || (size_t)n >= sizeof w->why) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->why + n, sizeof w->why - (size_t)n, fmt, ap);
  va_end(ap);
  /* A parser's message may quote the bad bytes: keep it printable ASCII, so
   * that it is valid UTF-8 in the error object and cannot drive a terminal. */
  for (char *p = w->why; *p; p++)
    if (*p < 0x20 || *p > 0x7e) *p = '?';
}

json_t *er__rec_json(const char *s, size_t n, const char *field, er_rec_why_t *w) {
  json_error_t e;
  /* ALLOW_NUL: "\u0000" inside a string is valid JSON a sender may store. */
  json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!v) er__rec_bad(w, field, "%s", e.text);
  return v;
}

bool er__rec_int(const char *s, size_t n, const char *field, int64_t *out, er_rec_why_t *w) {
  char buf[32];
  if (n == 0 || n >= sizeof buf) goto bad;
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  long long v = strtoll(buf, &end, 10);
  if (*end) goto bad;
  *out = v;
  return true;
bad:
  er__rec_bad(w, field, "not a number");
  return false;
}

/* What the record's readers rely on: a name to run, a queue, and arguments
 * of the shapes the sender guarantees. */
void er__rec_check(er_task_rec_t *r, er_rec_why_t *w) {
  if (!r->task || !*r->task) er__rec_bad(w, "task", "missing");
  if (!r->queue || !*r->queue) er__rec_bad(w, "queue", "missing");
  if (r->state < ER_STATE_PENDING || r->state > ER_STATE_REVOKED)
    er__rec_bad(w, "state", "unknown value %d", (int)r->state);
  if (!w->why[0] && !json_is_array(r->args)) er__rec_bad(w, "args", "not an array");
  if (!w->why[0] && !json_is_object(r->kwargs)) er__rec_bad(w, "kwargs", "not an object");
  if (!w->why[0] && r->context && !json_is_object(r->context))
    er__rec_bad(w, "context", "not an object");
}

json_t *er__rec_poison_error(const er_rec_why_t *w) {
  char msg[sizeof POISON_PREFIX + sizeof w->why];
  if (w) snprintf(msg, sizeof msg, POISON_PREFIX "%s", w->why);
  else snprintf(msg, sizeof msg, "%.*s", (int)strlen(POISON_PREFIX) - 2, POISON_PREFIX);
  return er__store_error_json(ER_ECORRUPT, msg);
}

void er__rec_lenient(er_task_rec_t *r, const er_rec_why_t *w) {
  if (!w->why[0]) return;
  /* A task that finished keeps its own error when that decodes (a reserve
   * that failed it wrote one); any other gets the reason it cannot run. */
  if (er_state_finished(r->state) && r->error) return;
  json_decref(r->error);
  r->error = er__rec_poison_error(w);
}
