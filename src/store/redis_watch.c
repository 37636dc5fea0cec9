/* Precise wake-ups and the next due time.
 *
 * er_store_watch names what a handle waits for; its subscription connection
 * (redis_wake.c) then listens to exactly those channels: <channel>:q:<queue>
 * per watched queue (work enqueued, given back, requeued or retried there),
 * <channel>:fin (finished tasks' ids, each after a newline, after the
 * publisher's origin) and <channel>:ctl (revokes of running tasks, likewise). Messages
 * are noted here and handed out by er_store_read_wakeups: the finished ids
 * exactly, without reading any task. Changing the watch set subscribes
 * again, and waits for Redis to confirm, so nothing published after
 * er_store_watch returns is missed.
 *
 * A delayed task publishes nothing when its eta passes (Redis has no timer
 * to run a script then): er_store_next_due says when to look. */
#include <string.h>

#include "store/redis_internal.h"

/* Finished ids kept between two reads; past it, "too many to list". */
#define FIN_MAX 4096

static void clear_fin(er_rd_t *rd) {
  for (size_t i = 0; i < rd->got_nfin; i++) er_free(rd->got_fin[i]);
  rd->got_nfin = 0;
}

void er__rd_watch_free(er_rd_t *rd) {
  clear_fin(rd);
  er_free(rd->got_fin);
  for (size_t i = 0; i < rd->w_nqueues; i++) er_free(rd->w_queues[i]);
  er_free(rd->w_queues);
  rd->got_fin = NULL;
  rd->got_cap = 0;
  rd->w_queues = NULL;
  rd->w_nqueues = 0;
}

void er__rd_watch_missed(er_rd_t *rd) {
  if (!rd->watching) return;
  rd->got_work = rd->w_nqueues > 0;
  rd->got_control = rd->w_control;
  rd->got_overflow = rd->w_finished;
}

static char *chan(const er_rd_t *rd, const char *suffix, const char *name) {
  size_t a = strlen(rd->channel), b = strlen(suffix), c = name ? strlen(name) : 0;
  char *p = er_malloc(a + b + c + 1);
  if (!p) return NULL;
  memcpy(p, rd->channel, a);
  memcpy(p + a, suffix, b);
  if (name) memcpy(p + a + b, name, c);
  p[a + b + c] = 0;
  return p;
}

int er__rd_watch_channels(er_rd_t *rd, char ***out, size_t *n) {
  size_t max = rd->w_nqueues + 2, k = 0;
  char **v = er_calloc(max, sizeof *v);
  bool oom = !v;
  for (size_t i = 0; !oom && i < rd->w_nqueues; i++)
    oom = !(v[k++] = chan(rd, ":q:", rd->w_queues[i]));
  if (!oom && rd->w_finished) oom = !(v[k++] = chan(rd, ":fin", NULL));
  if (!oom && rd->w_control) oom = !(v[k++] = chan(rd, ":ctl", NULL));
  if (oom) {
    for (size_t i = 0; v && i < k; i++) er_free(v[i]);
    er_free(v);
    return ER_ENOMEM;
  }
  *out = v;
  *n = k;
  return 0;
}

static void add_fin(er_rd_t *rd, const char *id) {
  if (rd->got_overflow) return;
  if (rd->got_nfin == FIN_MAX) {
    clear_fin(rd);
    rd->got_overflow = true;
    return;
  }
  if (rd->got_nfin == rd->got_cap) {
    size_t cap = rd->got_cap ? rd->got_cap * 2 : 16;
    char **v = er_realloc(rd->got_fin, cap * sizeof *v);
    if (!v) {
      rd->got_overflow = true; /* cannot list: re-check everyone */
      return;
    }
    rd->got_fin = v;
    rd->got_cap = cap;
  }
  char *d = er_strdup(id);
  if (d) rd->got_fin[rd->got_nfin++] = d;
  else rd->got_overflow = true;
}

/* The origin, then ids, each after a newline; "*" for the ids when there
 * were too many to list (lua/prelude.lua's publish_ids). */
static void note_ids(er_rd_t *rd, const char *p, size_t n, bool finished) {
  if (!finished) { /* control: which ids does not matter to a worker's renew */
    rd->got_control = true;
    return;
  }
  const char *end = p + n, *nl = memchr(p, '\n', n);
  while (nl) {
    const char *id = nl + 1;
    nl = memchr(id, '\n', (size_t)(end - id));
    size_t len = (size_t)((nl ? nl : end) - id);
    char buf[ER_ID_LEN + 1];
    if (len == 1 && id[0] == '*') {
      rd->got_overflow = true;
    } else if (len && len < sizeof buf) {
      memcpy(buf, id, len);
      buf[len] = 0;
      add_fin(rd, buf);
    } else if (len) {
      rd->got_overflow = true; /* not an id of ours: look at everything */
    }
  }
}

void er__rd_watch_note(er_rd_t *rd, const char *ch, size_t chlen, const char *p, size_t plen) {
  size_t base = strlen(rd->channel);
  if (!rd->watching || chlen < base + 4 || memcmp(ch, rd->channel, base) != 0) return;
  const char *tail = ch + base;
  if (strncmp(tail, ":q:", 3) == 0) rd->got_work = true;
  else if (chlen == base + 4 && memcmp(tail, ":fin", 4) == 0) note_ids(rd, p, plen, true);
  else if (chlen == base + 4 && memcmp(tail, ":ctl", 4) == 0) note_ids(rd, p, plen, false);
}

int er__rd_watch(er_store_t *s, const er_watch_t *w) {
  er_rd_t *rd = er__rd(s);
  char **qs = w->nqueues ? er_calloc(w->nqueues, sizeof *qs) : NULL;
  if (w->nqueues && !qs) return ER_ENOMEM;
  for (size_t i = 0; i < w->nqueues; i++) {
    if (!(qs[i] = er_strdup(w->queues[i]))) {
      for (size_t k = 0; k < i; k++) er_free(qs[k]);
      er_free(qs);
      return ER_ENOMEM;
    }
  }
  /* A watch that already followed finished tasks may have ids not yet read,
   * and the new subscription is made on a new connection: what was published
   * in between is unknown, so the next read says "re-check everything". */
  bool kept_finished = rd->watching && rd->w_finished && w->finished;
  er__rd_watch_free(rd);
  rd->w_queues = qs;
  rd->w_nqueues = w->nqueues;
  rd->w_finished = w->finished;
  rd->w_control = w->control;
  rd->watching = true;
  rd->wake_used = true;
  int rc = er__rd_resubscribe(rd, rd->timeout_ms);
  /* The record of finished ids starts now (the subscription is confirmed);
   * the first read reports work and control once, as a first look. */
  rd->got_overflow = kept_finished;
  if (rc == ER_EUNAVAILABLE)
    er__store_set_error(s, "redis %s:%d: cannot subscribe for wake-ups (retried later)",
                        rd->host, rd->port);
  return rc;
}

int er__rd_read_wakeups(er_store_t *s, er_wakeups_t *out) {
  er_rd_t *rd = er__rd(s);
  er__rd_wake_retry(rd);
  er__rd_drain_wakeups(s);
  if (!rd->watching) {
    /* woken by every change, as before: everything may have happened */
    out->work = out->control = out->finished_overflow = rd->changed;
    rd->changed = false;
    return 0;
  }
  out->work = rd->got_work;
  out->control = rd->got_control;
  out->finished_overflow = rd->got_overflow;
  if (rd->got_nfin) {
    out->finished = er_calloc(rd->got_nfin, sizeof *out->finished);
    if (!out->finished) return ER_ENOMEM;
    memcpy(out->finished, rd->got_fin, rd->got_nfin * sizeof *out->finished);
    out->nfinished = rd->got_nfin;
    rd->got_nfin = 0;
  }
  rd->got_work = rd->got_control = rd->got_overflow = false;
  return 0;
}

/* lua/next_due.lua: one read-only script. */
int er__rd_next_due(er_store_t *s, const char *const *queues, size_t nqueues,
                    int64_t *due_ms) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  for (size_t i = 0; i < nqueues; i++) er__rd_args_str(&a, queues[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_NEXT_DUE, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type == REDIS_REPLY_STRING) *due_ms = strtoll(r->str, NULL, 10);
  else rc = ER_EIO;
  freeReplyObject(r);
  if (rc) er__store_set_error(s, "redis next_due: an unexpected reply");
  return rc;
}
