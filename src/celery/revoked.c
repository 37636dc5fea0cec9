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

/* ARGV: now, the oldest score kept, how many kept, ids... */
static const char add_lua[] =
    "for i = 4, #ARGV do redis.call('ZADD', '" KEY "', ARGV[1], ARGV[i]) end\n"
    "redis.call('ZREMRANGEBYSCORE', '" KEY "', '-inf', '(' .. ARGV[2])\n"
    "redis.call('ZREMRANGEBYRANK', '" KEY "', 0, -tonumber(ARGV[3]) - 1)\n"
    "return 0\n";

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

void er__cel_revoked_add(er__cel_t *cs, redisContext **c, json_t *ids) {
  double now = now_s(), oldest = now - ER__CEL_REVOKE_EXPIRES_S;
  json_t *list = json_is_array(ids) ? json_incref(ids) : json_pack("[O]", ids);
  er_rd_args_t a = {0};
  er__rd_args_fmt(&a, "%.6f", now);
  er__rd_args_fmt(&a, "%.6f", oldest);
  er__rd_args_i64(&a, ER__CEL_REVOKES_MAX);
  size_t i, n = 0;
  json_t *v;
  pthread_mutex_lock(&cs->mu);
  json_array_foreach(list, i, v) {
    if (!json_is_string(v)) continue;
    json_object_set_new(cs->revoked, json_string_value(v), json_real(now));
    er__rd_args_str(&a, json_string_value(v));
    n++;
  }
  trim(cs, oldest);
  bool over = json_object_size(cs->revoked) > ER__CEL_REVOKES_MAX;
  cs->revoke_news = true;
  pthread_mutex_unlock(&cs->mu);
  json_decref(list);
  er__cel_ring(cs); /* a running task revoked hears of it now, not at its next renewal */
  if (n && !a.oom && !connect(cs, c)) {
    const char *argv[] = {"EVAL", add_lua, "0"};
    const char **av = er_calloc(a.n + 3, sizeof *av);
    size_t *lens = er_calloc(a.n + 3, sizeof *lens);
    if (av && lens) {
      for (size_t k = 0; k < 3; k++) av[k] = argv[k], lens[k] = strlen(argv[k]);
      for (size_t k = 0; k < a.n; k++) av[k + 3] = a.v[k], lens[k + 3] = a.len[k];
      er_rd_sigpipe_t g;
      er__rd_sigpipe_block(&g);
      redisReply *r = redisCommandArgv(*c, (int)(a.n + 3), av, lens);
      er__rd_sigpipe_unblock(&g);
      if (!r || r->type == REDIS_REPLY_ERROR)
        failed(c, r, "revoked in memory only: cannot write");
      else
        freeReplyObject(r);
    }
    er_free(av);
    er_free(lens);
  }
  er__rd_args_free(&a);
  /* memory as bounded as the set: the newest ER__CEL_REVOKES_MAX again */
  if (over && *c) load(cs, c, true);
}
