/* Revoked Celery ids that outlive the worker. A Python worker keeps its
 * revokes in memory (or in --statedb), so one started after a `celery
 * control revoke` runs the task; the C worker writes each revoke it hears
 * to the sorted set errand.celery.revoked (score: when, in seconds) and
 * reads it at start. The set is trimmed as Celery trims its own: a revoke
 * holds ER__CEL_REVOKE_EXPIRES_S, and at most ER__CEL_REVOKES_MAX are kept. */
#include <stdio.h>
#include <string.h>

#include "celery/celery_internal.h"

#define KEY "errand.celery.revoked"
#define CONNECT_MS 2000

static double now_s(void) { return (double)er_now_wall_ms() / 1000.0; }

/* Drops the expired ones from memory (mu held). */
static void trim(er__cel_t *cs, double oldest) {
  const char *id;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(cs->revoked, tmp, id, v) {
    if (json_real_value(v) < oldest) json_object_del(cs->revoked, id);
  }
}

static int connect(er__cel_t *cs, redisContext **c) {
  char err[200];
  if (*c) return 0;
  if (er__rd_connect(er__rd(cs->inner), CONNECT_MS, true, c, err, sizeof err)) {
    er_log(ER_LOG_WARN, "celery: revoked ids: %s", err);
    return ER_EUNAVAILABLE;
  }
  return 0;
}

static int failed(redisContext **c, redisReply *r, const char *what) {
  er_log(ER_LOG_WARN, "celery: %s " KEY ": %s", what,
         !r ? (*c)->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  if (!r) {
    redisFree(*c);
    *c = NULL;
  } else {
    freeReplyObject(r);
  }
  return ER_EIO;
}

static redisReply *command(redisContext *c, const char *fmt, double arg) {
  er_rd_sigpipe_t g;
  er__rd_sigpipe_block(&g);
  redisReply *r = redisCommand(c, fmt, arg);
  er__rd_sigpipe_unblock(&g);
  return r;
}

/* replace: the set read becomes the whole of what is in memory */
static int load(er__cel_t *cs, redisContext **c, bool replace) {
  int rc = connect(cs, c);
  if (rc) return rc;
  double oldest = now_s() - ER__CEL_REVOKE_EXPIRES_S;
  redisReply *r = command(*c, "ZRANGEBYSCORE " KEY " %f +inf WITHSCORES", oldest);
  if (!r || r->type != REDIS_REPLY_ARRAY) return failed(c, r, "cannot read");
  json_t *read = json_object();
  for (size_t i = 0; read && i + 1 < r->elements; i += 2) {
    double when = 0;
    if (sscanf(r->element[i + 1]->str, "%lf", &when) != 1) continue;
    if (json_object_set_new(read, r->element[i]->str, json_real(when))) rc = ER_ENOMEM;
  }
  if (!read) rc = ER_ENOMEM;
  pthread_mutex_lock(&cs->mu);
  if (read && replace) {
    json_t *old = cs->revoked;
    cs->revoked = read;
    read = old;
  } else if (read) {
    json_object_update(cs->revoked, read);
  }
  trim(cs, oldest);
  cs->revoke_news |= r->elements > 0;
  pthread_mutex_unlock(&cs->mu);
  json_decref(read);
  freeReplyObject(r);
  return rc;
}

int er__cel_revoked_load(er__cel_t *cs, redisContext **c) { return load(cs, c, false); }

/* A Python worker times its revokes by its monotonic clock (time.monotonic,
 * CLOCK_MONOTONIC on Linux) and sends them so in a mingle: they are read
 * and written here as on this host's, the wall time being kept inside. */
static double wall_minus_mono(void) {
  return (double)er_now_wall_ms() / 1000.0 - (double)er_now_mono_ms() / 1000.0;
}

/* When a revoke was made, as a mingle carries it: seconds, or [seconds,
 * ...] (LimitedSet's entries), as wall time; 0 when it is neither. */
static double when_of(json_t *v, double shift) {
  if (json_is_array(v)) v = json_array_get(v, 0);
  return json_is_number(v) ? json_number_value(v) + shift : 0;
}

json_t *er__cel_revoked_mingle(er__cel_t *cs) {
  double shift = wall_minus_mono();
  json_t *out = json_object();
  const char *id;
  json_t *v;
  pthread_mutex_lock(&cs->mu);
  json_object_foreach(cs->revoked, id, v) json_object_set_new(out, id,
                                                              json_real(json_real_value(v) - shift));
  pthread_mutex_unlock(&cs->mu);
  return out;
}

void er__cel_revoked_add(er__cel_t *cs, redisContext **c, json_t *ids) {
  double now = now_s(), oldest = now - ER__CEL_REVOKE_EXPIRES_S;
  /* id -> when */
  json_t *add = json_object();
  if (json_is_string(ids)) json_object_set_new(add, json_string_value(ids), json_real(now));
  size_t i, n = 0;
  json_t *v;
  json_array_foreach(ids, i, v) if (json_is_string(v))
      json_object_set_new(add, json_string_value(v), json_real(now));
  const char *id;
  double shift = wall_minus_mono();
  json_object_foreach(json_is_object(ids) ? ids : NULL, id, v) if (when_of(v, shift) >= oldest)
      json_object_set_new(add, id, json_real(when_of(v, shift) < now ? when_of(v, shift) : now));
  er_rd_args_t a = {0};
  er__rd_args_str(&a, KEY);
  er__rd_args_fmt(&a, "%.6f", oldest);
  er__rd_args_i64(&a, ER__CEL_REVOKES_MAX);
  pthread_mutex_lock(&cs->mu);
  json_object_foreach(add, id, v) {
    if (json_real_value(v) < json_real_value(json_object_get(cs->revoked, id))) continue;
    json_object_set(cs->revoked, id, v);
    er__rd_args_fmt(&a, "%.6f", json_real_value(v));
    er__rd_args_str(&a, id);
    n++;
  }
  trim(cs, oldest);
  bool over = json_object_size(cs->revoked) > ER__CEL_REVOKES_MAX;
  cs->revoke_news |= n > 0;
  pthread_mutex_unlock(&cs->mu);
  json_decref(add);
  if (n) er__cel_ring(cs); /* a running task revoked hears of it now, not at its renewal */
  if (n) {
    redisReply *r;
    char err[300];
    if (er__cel_eval_on(cs, c, er__rd_lua_celery_revoke, &a, &r, err, sizeof err))
      er_log(ER_LOG_WARN, "celery: revoked in memory only: cannot write " KEY ": %s", err);
    else
      freeReplyObject(r);
  }
  er__rd_args_free(&a);
  /* memory as bounded as the set: the newest ER__CEL_REVOKES_MAX again */
  if (over && *c) load(cs, c, true);
}
