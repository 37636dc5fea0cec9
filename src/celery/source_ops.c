/* The Celery source's store handle: its wake-ups (the inner store's fd and
 * the Celery threads' behind one epoll fd), the calls it forwards to the
 * Redis store unchanged, its vtable, and its making (er__celery_wrap). */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "celery/celery_internal.h"

static er__cel_t *cel(er_store_t *s) { return (er__cel_t *)s; }

static int fwd(er__cel_t *cs, int rc) {
  if (rc) memcpy(cs->base.last_error, cs->inner->last_error, sizeof cs->base.last_error);
  return rc;
}

/* ---- wake-ups: the inner store's, and the Celery threads' ---- */

static int cel_wakeup_fd(er_store_t *s) { return cel(s)->epfd; }

static void cel_drain(er_store_t *s) {
  er__cel_t *cs = cel(s);
  er__cel_rang(cs);
  er_store_drain_wakeups(cs->inner);
}

static int cel_wait_change(er_store_t *s, int timeout_ms) {
  er__cel_t *cs = cel(s);
  struct epoll_event ev;
  int n = epoll_wait(cs->epfd, &ev, 1, timeout_ms);
  return n > 0 ? 0 : ER_ETIMEDOUT;
}

static int cel_read_wakeups(er_store_t *s, er_wakeups_t *out) {
  er__cel_t *cs = cel(s);
  int rc = fwd(cs, er_store_read_wakeups(cs->inner, out));
  if (rc == ER_ENOTSUP) {
    memset(out, 0, sizeof *out);
    er_store_drain_wakeups(cs->inner);
    out->work = out->control = out->finished_overflow = true;
    rc = 0;
  }
  if (er__cel_rang(cs)) {
    out->work = true;
    pthread_mutex_lock(&cs->mu);
    out->control |= cs->revoke_news;
    cs->revoke_news = false;
    pthread_mutex_unlock(&cs->mu);
  }
  return rc;
}

static int cel_next_due(er_store_t *s, const char *const *queues, size_t nq, int64_t *due) {
  er__cel_t *cs = cel(s);
  /* a delayed Celery message falling due rings the watcher */
  return fwd(cs, er_store_next_due(cs->inner, queues, nq, due));
}

/* ---- everything else goes to the inner store ---- */

#define IN (cel(s)->inner)
static int cel_enqueue(er_store_t *s, er_task_rec_t *const *r, size_t n, int f, bool *e) {
  return fwd(cel(s), er_store_enqueue(IN, r, n, f, e));
}
static int cel_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  return fwd(cel(s), er_store_get(IN, id, key, out));
}
static int cel_revoke(er_store_t *s, const char *id, er_task_state_t *st) {
  return fwd(cel(s), er_store_revoke(IN, id, st));
}
static int cel_purge(er_store_t *s, const char *q, size_t *n) {
  return fwd(cel(s), er_store_purge(IN, q, n));
}
static int cel_heartbeat(er_store_t *s, json_t *info, int64_t now, int64_t ttl) {
  er__cel_control_view(cel(s), info);
  return fwd(cel(s), er_store_heartbeat(IN, info, now, ttl));
}
static int cel_worker_gone(er_store_t *s, const char *id) {
  return fwd(cel(s), er_store_worker_gone(IN, id));
}
static int cel_workers(er_store_t *s, int64_t now, json_t **out) {
  return fwd(cel(s), er_store_workers(IN, now, out));
}
static int cel_stats(er_store_t *s, json_t **out) { return fwd(cel(s), er_store_stats(IN, out)); }
static int cel_apply(er_store_t *s, const er_mut_t *m, size_t n, er_mut_result_t *r,
                     size_t *failed) {
  return fwd(cel(s), er_store_apply(IN, m, n, r, failed));
}
static int cel_doc_get(er_store_t *s, const char *c, const char *k, json_t **v, int64_t *ver) {
  return fwd(cel(s), er_store_doc_get(IN, c, k, v, ver));
}
static int cel_doc_list(er_store_t *s, const char *c, const char *after, size_t lim,
                        json_t **out) {
  return fwd(cel(s), er_store_doc_list(IN, c, after, lim, out));
}
static int cel_counter_get(er_store_t *s, const char *c, const char *k, int64_t *v) {
  return fwd(cel(s), er_store_counter_get(IN, c, k, v));
}
static int cel_watch(er_store_t *s, const er_watch_t *w) {
  return fwd(cel(s), er_store_watch(IN, w));
}
#undef IN

static void cel_close(er_store_t *s) {
  er__cel_t *cs = cel(s);
  er__cel_wake_stop(cs);
  if (cs->c) redisFree(cs->c);
  er_store_close(cs->inner);
  for (size_t i = 0; i < cs->nlists; i++) er_free(cs->lists[i]);
  er_free(cs->lists);
  json_decref(cs->flight);
  json_decref(cs->revoked);
  json_decref(cs->ctl);
  json_decref(cs->totals);
  pthread_mutex_destroy(&cs->mu);
  pthread_cond_destroy(&cs->cv);
  er_free(cs);
}

static const er_store_ops_t cel_ops = {
    .version = ER_STORE_OPS_VERSION, .scheme = "redis+celery", .close = cel_close,
    .enqueue = cel_enqueue, .reserve = er__cel_reserve, .renew = er__cel_renew,
    .complete = er__cel_complete, .progress = er__cel_progress, .get = cel_get,
    .revoke = cel_revoke, .purge = cel_purge, .maintain = er__cel_maintain,
    .heartbeat = cel_heartbeat, .worker_gone = cel_worker_gone, .workers = cel_workers,
    .stats = cel_stats, .wakeup_fd = cel_wakeup_fd, .drain_wakeups = cel_drain,
    .wait_change = cel_wait_change, .apply = cel_apply, .doc_get = cel_doc_get,
    .doc_list = cel_doc_list, .counter_get = cel_counter_get, .watch = cel_watch,
    .read_wakeups = cel_read_wakeups, .next_due = cel_next_due};

int er__celery_wrap(er_store_t *inner, const char *const *queues, size_t nqueues,
                    int64_t visibility_ms, er_store_t **out, char *errmsg, size_t size) {
  *out = NULL;
  if (strcmp(inner->ops->scheme, "redis") != 0) {
    snprintf(errmsg, size, "--celery needs a redis:// store (Celery's Redis transport), not %s",
             inner->ops->scheme);
    return ER_EINVAL;
  }
  er__cel_t *cs = er_calloc(1, sizeof *cs);
  if (!cs) return ER_ENOMEM;
  cs->evfd = cs->epfd = -1;
  pthread_mutex_init(&cs->mu, NULL);
  pthread_cond_init(&cs->cv, NULL);
  cs->base = *inner;
  cs->base.ops = &cel_ops;
  cs->base.url = er_strdup(inner->url);
  cs->inner = inner;
  cs->visibility_ms = visibility_ms;
  cs->flight = json_object();
  cs->revoked = json_object();
  cs->totals = json_object();
  cs->lists = er_calloc(nqueues * 4 + 1, sizeof *cs->lists);
  int rc = cs->base.url && cs->flight && cs->revoked && cs->totals && cs->lists ? 0 : ER_ENOMEM;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  snprintf(cs->node, sizeof cs->node, "errand.%d@%s", (int)getpid(), host);
  /* each queue's priority sub-lists in kombu's order: 0 first, 9 last */
  for (size_t i = 0; !rc && i < nqueues; i++)
    for (int pri = 0; !rc && pri <= 9; pri += 3) {
      char name[600];
      er__cel_list_name(queues[i], pri, name, sizeof name);
      if (!(cs->lists[cs->nlists++] = er_strdup(name))) rc = ER_ENOMEM;
    }
  /* revokes heard before this worker started hold (the listener reads them
   * again once subscribed, for those sent in between) */
  if (!rc && er__cel_revoked_load(cs, &cs->c) == ER_ENOMEM) rc = ER_ENOMEM;
  if (!rc) rc = er__cel_wake_start(cs, errmsg, size);
  if (!rc) er_log(ER_LOG_INFO, "celery: remote control answered as %s", cs->node);
  if (rc) {
    char *url = cs->base.url;
    cs->inner = NULL; /* the caller's still */
    cel_close(&cs->base);
    er_free(url);
    return rc;
  }
  *out = &cs->base;
  return 0;
}
