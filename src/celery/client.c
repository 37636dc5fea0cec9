/* A store URL with ?protocol=celery: er_send, er_status and er_result (and
 * `errand send|status|result`) speak Celery. Sending writes the message a
 * Python Celery client's send_task writes (LPUSH on the queue's list, "default"
 * meaning Celery's "celery"); reading reads celery-task-meta-<id>, a Python
 * exception becoming ER_EFAIL with "Type: message". Celery keeps no record
 * of a task before its result, so an id without one reads PENDING. Waiting
 * for a result looks every 20 ms (results are not watched by pub/sub). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "celery/celery_internal.h"
#include "core/url_query.h"
#include "store/store_internal.h"

typedef struct {
  er_store_t base;
  er_store_t *inner;
} cli_t;

static cli_t *cli(er_store_t *s) { return (cli_t *)s; }

static int fwd(cli_t *c, int rc) {
  if (rc) memcpy(c->base.last_error, c->inner->last_error, sizeof c->base.last_error);
  return rc;
}

static int run(cli_t *c, const char **argv, size_t argc, redisReply **out) {
  er_rd_t *rd = er__rd(c->inner);
  size_t lens[8];
  for (size_t i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  char err[200];
  if (!rd->c && er__rd_connect(rd, rd->timeout_ms, true, &rd->c, err, sizeof err)) {
    er__store_set_error(&c->base, "celery: %s", err);
    return ER_EUNAVAILABLE;
  }
  er_rd_sigpipe_t g;
  er__rd_sigpipe_block(&g);
  redisReply *r = redisCommandArgv(rd->c, (int)argc, argv, lens);
  er__rd_sigpipe_unblock(&g);
  if (!r) {
    er__store_set_error(&c->base, "celery: redis: %s", rd->c->errstr);
    er__rd_disconnect(rd);
    return ER_EUNAVAILABLE;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    er__store_set_error(&c->base, "celery: redis: %s", r->str);
    freeReplyObject(r);
    return ER_EIO;
  }
  *out = r;
  return 0;
}

static int cli_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                       bool *existing) {
  cli_t *c = cli(s);
  (void)flags;
  for (size_t i = 0; i < n; i++) {
    const er_task_rec_t *r = recs[i];
    if (existing) existing[i] = false;
    if (r->name || r->key) {
      er__store_set_error(s, "?protocol=celery: task names and keys are errand's, not Celery's");
      return ER_ENOTSUP;
    }
    const char *q = !r->queue || !strcmp(r->queue, "default") ? "celery" : r->queue;
    int pri = r->priority < 0 ? 0 : r->priority > 9 ? 9 : r->priority;
    er__cel_send_t m = {.id = r->id, .task = r->task, .queue = q, .args = r->args,
                        .kwargs = r->kwargs, .eta_ms = r->eta_ms > r->created_ms ? r->eta_ms : 0,
                        .expires_ms = r->expires_ms, .priority = pri,
                        .ignore_result = r->ignore_result};
    char *msg = er__cel_encode(&m);
    if (!msg) return ER_ENOMEM;
    char list[600];
    er__cel_list_name(q, pri, list, sizeof list);
    const char *argv[] = {"LPUSH", list, msg};
    redisReply *rep;
    int rc = run(c, argv, 3, &rep);
    er_free(msg);
    if (rc) return rc;
    freeReplyObject(rep);
  }
  return 0;
}

static er_task_state_t state_of(const char *st) {
  if (!strcmp(st, "STARTED") || !strcmp(st, "PROGRESS")) return ER_STATE_STARTED;
  if (!strcmp(st, "SUCCESS") || !strcmp(st, "FAILURE") || !strcmp(st, "REVOKED") ||
      !strcmp(st, "RETRY"))
    return er_state_from_name(st);
  return ER_STATE_PENDING; /* PENDING, RECEIVED, a custom state */
}

static int cli_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  cli_t *c = cli(s);
  *out = NULL;
  if (!id) {
    er__store_set_error(s, "?protocol=celery: Celery tasks have no keys (%s)", key);
    return ER_ENOTSUP;
  }
  char k[128];
  snprintf(k, sizeof k, "celery-task-meta-%s", id);
  const char *argv[] = {"GET", k};
  redisReply *rep;
  int rc = run(c, argv, 2, &rep);
  if (rc) return rc;
  er_task_rec_t *r = er_task_rec_new();
  if (!r) {
    freeReplyObject(rep);
    return ER_ENOMEM;
  }
  snprintf(r->id, sizeof r->id, "%s", id);
  r->progress = -1;
  r->state = ER_STATE_PENDING;
  json_t *meta = rep->type == REDIS_REPLY_STRING ? json_loadb(rep->str, rep->len, 0, NULL) : NULL;
  freeReplyObject(rep);
  const char *st = json_string_value(json_object_get(meta, "status"));
  if (st) r->state = state_of(st);
  json_t *res = json_object_get(meta, "result");
  if (r->state == ER_STATE_SUCCESS) {
    r->result = json_incref(res);
  } else if (r->state == ER_STATE_FAILURE || r->state == ER_STATE_REVOKED ||
             r->state == ER_STATE_RETRY) {
    char msg[512];
    int code = er__cel_meta_error(meta, msg, sizeof msg);
    if (r->state == ER_STATE_REVOKED) code = ER_EREVOKED;
    r->error = er__store_error_json(code, msg);
    json_t *t = json_object_get(res, "exc_type"), *m = json_object_get(res, "exc_module");
    if (r->error && t) json_object_set(r->error, "exc_type", t);
    if (r->error && m) json_object_set(r->error, "exc_module", m);
  } else if (st && !strcmp(st, "PROGRESS") && json_is_object(res)) {
    json_t *p = json_object_get(res, "progress");
    if (json_is_number(p)) r->progress = json_number_value(p);
    const char *pm = json_string_value(json_object_get(res, "message"));
    if (pm) r->progress_msg = er_strdup(pm);
  }
  json_decref(meta);
  *out = r;
  return 0;
}

static int cli_wait_change(er_store_t *s, int timeout_ms) {
  (void)s;
  usleep((useconds_t)(timeout_ms < 20 ? timeout_ms : 20) * 1000);
  return 0;
}

static int cli_wakeup_fd(er_store_t *s) {
  (void)s;
  return -1;
}

/* The rest is the Redis store's. */
#define IN (cli(s)->inner)
static int cli_reserve(er_store_t *s, const er_reserve_req_t *q, er_task_rec_t ***o, size_t *n) {
  return fwd(cli(s), er_store_reserve(IN, q, o, n));
}
static int cli_renew(er_store_t *s, const char *const *ids, const int *at, size_t n, int64_t u,
                     bool *rv, bool *fe) {
  return fwd(cli(s), er_store_renew(IN, ids, at, n, u, rv, fe));
}
static int cli_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fe) {
  return fwd(cli(s), er_store_complete(IN, cs, n, fe));
}
static int cli_progress(er_store_t *s, const char *id, int a, double p, const char *m) {
  return fwd(cli(s), er_store_progress(IN, id, a, p, m));
}
static int cli_revoke(er_store_t *s, const char *id, er_task_state_t *st) {
  return fwd(cli(s), er_store_revoke(IN, id, st));
}
static int cli_purge(er_store_t *s, const char *q, size_t *n) {
  return fwd(cli(s), er_store_purge(IN, q, n));
}
static int cli_maintain(er_store_t *s, int64_t now, er_maint_counts_t *c) {
  return fwd(cli(s), er_store_maintain(IN, now, c));
}
static int cli_heartbeat(er_store_t *s, json_t *i, int64_t now, int64_t ttl) {
  return fwd(cli(s), er_store_heartbeat(IN, i, now, ttl));
}
static int cli_worker_gone(er_store_t *s, const char *id) {
  return fwd(cli(s), er_store_worker_gone(IN, id));
}
static int cli_workers(er_store_t *s, int64_t now, json_t **o) {
  return fwd(cli(s), er_store_workers(IN, now, o));
}
static int cli_stats(er_store_t *s, json_t **o) { return fwd(cli(s), er_store_stats(IN, o)); }
static void cli_drain(er_store_t *s) { (void)s; }
#undef IN

static void cli_close(er_store_t *s) {
  er_store_close(cli(s)->inner);
  er_free(s);
}

static const er_store_ops_t cli_ops = {.version = ER_STORE_OPS_VERSION,
                                       .scheme = "redis+celery-client",
                                       .close = cli_close,
                                       .enqueue = cli_enqueue,
                                       .get = cli_get,
                                       .reserve = cli_reserve,
                                       .renew = cli_renew,
                                       .complete = cli_complete,
                                       .progress = cli_progress,
                                       .revoke = cli_revoke,
                                       .purge = cli_purge,
                                       .maintain = cli_maintain,
                                       .heartbeat = cli_heartbeat,
                                       .worker_gone = cli_worker_gone,
                                       .workers = cli_workers,
                                       .stats = cli_stats,
                                       .drain_wakeups = cli_drain,
                                       .wakeup_fd = cli_wakeup_fd,
                                       .wait_change = cli_wait_change};

int er__celery_client_wrap(const char *url, er_store_t *s, er_store_t **out, char *errmsg,
                           size_t size) {
  *out = s;
  const char *q = strchr(url, '?');
  if (!q) return 0;
  json_t *opts = NULL;
  char why[200] = "";
  int rc = er__url_query_parse(q + 1, strcspn(q + 1, "#"), &opts, why, sizeof why);
  const char *proto = json_string_value(json_object_get(opts, "protocol"));
  if (!rc && proto && strcmp(proto, "celery")) {
    snprintf(why, sizeof why, "protocol=%s: the only protocol is celery", proto);
    rc = ER_EINVAL;
  } else if (!rc && proto && strcmp(s->ops->scheme, "redis")) {
    snprintf(why, sizeof why, "protocol=celery needs a redis:// store (Celery's Redis "
             "transport), not %s", s->ops->scheme);
    rc = ER_EINVAL;
  }
  json_decref(opts);
  if (rc || !proto) {
    if (rc) {
      if (errmsg && size) snprintf(errmsg, size, "store URL: %s", why);
      er_store_close(s);
      *out = NULL;
    }
    return rc;
  }
  cli_t *c = er_calloc(1, sizeof *c);
  if (!c) {
    er_store_close(s);
    *out = NULL;
    return ER_ENOMEM;
  }
  c->base = *s;
  c->base.ops = &cli_ops;
  c->base.url = er_strdup(s->url);
  c->inner = s;
  if (!c->base.url) {
    er_store_close(s);
    er_free(c);
    *out = NULL;
    return ER_ENOMEM;
  }
  *out = &c->base;
  return 0;
}
