/* Housekeeping: tasks whose lease ended go back to the queue (or end REVOKED
 * when a revoke was asked for), expired results and their tasks are deleted,
 * expired tombstones and workers are dropped. One script, each part bounded
 * by the leases, results, tombstones and workers:expiry sorted sets, so a
 * call touches only what is due. */
#include <string.h>

#include "store/redis_internal.h"

/* ARGV: now, tombstone_ms, limit, the "revoked" error JSON.
 * Returns {requeued, expired results}. */
const char er__rd_lua_maintain[] =
    "local now, tomb, limit, rerr = N(1), N(2), N(3), A(4)\n"
    "local requeued, expired, changed = 0, 0, false\n"
    "local lost = redis.call('ZRANGEBYSCORE', LEASES, '-inf', '(' .. I(now), 'LIMIT', 0, limit)\n"
    "local gone = {}\n"
    "for _, id in ipairs(lost) do\n"
    "  local h = TK(id)\n"
    "  local f = redis.call('HMGET', h, 'state', 'revoke_requested', 'queue', 'name',\n"
    "    'lease_until_ms', 'result_ttl_ms', 'priority', 'eta_ms', 'seq')\n"
    "  if f[1] ~= '1' then\n"
    "    gone[#gone + 1] = id\n"
    "  elseif tonumber(f[5] or '0') >= now then\n"
    "    redis.call('ZADD', LEASES, tonumber(f[5]), id)\n"
    "  else\n"
    "    gone[#gone + 1] = id\n"
    "    if f[2] == '1' then\n"
    "      finish(id, h, f[3], '1', '5', now, f[6], f[4], {'error', rerr}, {})\n"
    "    else\n"
    "      local m = place_f(id, f[3], tonumber(f[7]), tonumber(f[8]), tonumber(f[9]), now)\n"
    "      if m then redis.call('HSET', h, 'state', '0', 'qm', m)\n"
    "      else redis.call('HSET', h, 'state', '0') end\n"
    "      redis.call('HDEL', h, 'worker', 'lease_until_ms')\n"
    "      move(f[3], '1', '0')\n"
    "      requeued = requeued + 1\n"
    "    end\n"
    "    changed = true\n"
    "  end\n"
    "end\n"
    "bulk('ZREM', LEASES, gone)\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', RESULTS, '-inf', now, 'LIMIT', 0, limit)) do\n"
    "  redis.call('ZREM', RESULTS, id)\n"
    "  local h = TK(id)\n"
    "  local e = redis.call('HGET', h, 'result_expires_ms')\n"
    "  if e and tonumber(e) <= now then\n"
    "    forget(id, h)\n"
    "    expired = expired + 1\n"
    "  end\n"
    "end\n"
    "local cut = now - tomb\n"
    "for _, name in ipairs(redis.call('ZRANGEBYSCORE', TOMBS, '-inf', cut, 'LIMIT', 0, limit)) do\n"
    "  redis.call('ZREM', TOMBS, name)\n"
    "  local fin = redis.call('HGET', NK(name), 'finished_ms')\n"
    "  if fin and tonumber(fin) <= cut then redis.call('DEL', NK(name)) end\n"
    "end\n"
    "for _, w in ipairs(redis.call('ZRANGEBYSCORE', WEXP, '-inf', now, 'LIMIT', 0, limit)) do\n"
    "  redis.call('ZREM', WEXP, w)\n"
    "  redis.call('HDEL', WORKERS, w)\n"
    "end\n"
    "if changed then wake() end\n"
    "return {requeued, expired}\n";

#define MAINT_LIMIT 10000

int er__rd_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  json_t *rerr = er__store_error_json(ER_EREVOKED, "revoked");
  er__rd_args_i64(&a, now_ms);
  er__rd_args_i64(&a, s->tombstone_ms);
  er__rd_args_i64(&a, MAINT_LIMIT);
  er__rd_args_json(&a, rerr, false);
  json_decref(rerr);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_MAINTAIN, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
    freeReplyObject(r);
    er__store_set_error(s, "redis maintain: an unexpected reply");
    return ER_EIO;
  }
  if (counts) {
    counts->requeued = (size_t)r->element[0]->integer;
    counts->expired_results = (size_t)r->element[1]->integer;
  }
  freeReplyObject(r);
  return 0;
}
