/* The worker's side: reserve under a lease, renew, complete and progress,
 * each fenced by the attempt number, each one script. A reserved task moves
 * from its queue's set to the leases set and becomes STARTED in the same
 * script, so there is no moment at which it has left the queue without
 * being recorded as held (the BRPOP-then-record gap of Celery's Redis
 * transport). */
#include <stdio.h>
#include <string.h>

#include "store/redis_internal.h"

/* ---- reserve --------------------------------------------------------------------
 * ARGV: now, worker, lease_until, max, the "expired" error JSON, queues...
 * For each queue in order: due delayed tasks move to the ready set (up to
 * 1000 a call), then the ready set is taken from its best end. A member whose
 * eta is still ahead of now (promoted by a caller whose clock runs ahead) is
 * stepped over. Returns the claimed tasks' hashes in order. */
const char er__rd_lua_reserve[] =
    "local now, worker, untl, max, experr = N(1), A(2), N(3), N(4), A(5)\n"
    "local out, changed, leases = {}, false, {}\n"
    "local function promote(q)\n"
    "  local due = redis.call('ZRANGEBYSCORE', DK(q), '-inf', now, 'LIMIT', 0, 1000)\n"
    "  bulk('ZREM', DK(q), due)\n"
    "  for _, id in ipairs(due) do\n"
    "    local h = TK(id)\n"
    "    local f = redis.call('HMGET', h, 'state', 'priority', 'eta_ms', 'seq')\n"
    "    if f[1] == '0' or f[1] == '2' then\n"
    "      local m = place_f(id, q, tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), now)\n"
    "      if m then redis.call('HSET', h, 'qm', m) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local qi = 6\n"
    "while A(qi) and #out < max do\n"
    "  local q = A(qi)\n"
    "  qi = qi + 1\n"
    "  promote(q)\n"
    "  local skip, looked = 0, 0\n"
    "  while #out < max and looked < 1000 do\n"
    "    local ms = redis.call('ZRANGE', RK(q), skip, skip + max - #out - 1)\n"
    "    if #ms == 0 then break end\n"
    "    local rm = {}\n"
    "    for _, m in ipairs(ms) do\n"
    "      looked = looked + 1\n"
    "      local id = string.sub(m, 33)\n"
    "      local h = TK(id)\n"
    "      local f = redis.call('HMGET', h, 'state', 'eta_ms', 'expires_ms', 'name', 'attempt',\n"
    "        'result_ttl_ms')\n"
    "      local st = f[1]\n"
    "      if st ~= '0' and st ~= '2' then\n"
    "        rm[#rm + 1] = m\n"
    "      elseif tonumber(f[2]) > now then\n"
    "        skip = skip + 1\n"
    "      else\n"
    "        rm[#rm + 1] = m\n"
    "        local exp = tonumber(f[3])\n"
    "        if exp > 0 and exp <= now then\n"
    "          finish(id, h, q, st, '5', now, f[6], f[4],\n"
    "            {'error', experr, 'revoke_requested', '0', 'progress', '-1'},\n"
    "            {'worker', 'progress_msg'})\n"
    "          changed = true\n"
    "        else\n"
    "          redis.call('HSET', h, 'state', '1', 'attempt', I(tonumber(f[5]) + 1),\n"
    "            'started_ms', I(now), 'worker', worker, 'lease_until_ms', I(untl),\n"
    "            'revoke_requested', '0', 'progress', '-1')\n"
    "          redis.call('HDEL', h, 'qm', 'finished_ms', 'progress_msg', 'result_expires_ms')\n"
    "          leases[#leases + 1] = untl\n"
    "          leases[#leases + 1] = id\n"
    "          move(q, st, '1')\n"
    "          out[#out + 1] = redis.call('HGETALL', h)\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    bulk('ZREM', RK(q), rm)\n"
    "  end\n"
    "end\n"
    "bulk('ZADD', LEASES, leases)\n"
    "if changed then wake() end\n"
    "return out\n";

int er__rd_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out,
                   size_t *n) {
  er_rd_t *rd = er__rd(s);
  size_t max = req->max < 4096 ? req->max : 4096;
  er_rd_args_t a = {0};
  json_t *experr = er__store_error_json(ER_EREVOKED, "expired");
  er__rd_args_i64(&a, req->now_ms);
  er__rd_args_str(&a, req->worker ? req->worker : "");
  er__rd_args_i64(&a, req->now_ms + req->lease_ms);
  er__rd_args_i64(&a, (int64_t)max);
  er__rd_args_json(&a, experr, false);
  json_decref(experr);
  for (size_t i = 0; i < req->nqueues; i++) er__rd_args_str(&a, req->queues[i]);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_RESERVE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY) {
    freeReplyObject(r);
    er__store_set_error(s, "redis reserve: an unexpected reply");
    return ER_EIO;
  }
  er_task_rec_t **recs = r->elements ? er_calloc(r->elements, sizeof *recs) : NULL;
  if (r->elements && !recs) rc = ER_ENOMEM;
  size_t got = 0;
  for (size_t i = 0; !rc && i < r->elements; i++) {
    rc = er__rd_read_rec(rd, r->element[i], &recs[got]);
    if (!rc) got++;
  }
  freeReplyObject(r);
  if (rc) {
    /* The tasks stay STARTED under this worker's lease and come back when it
     * ends. */
    er_task_rec_free_array(recs, got);
    return rc;
  }
  *out = recs;
  *n = got;
  return 0;
}

/* ---- renew --------------------------------------------------------------------
 * ARGV: lease_until, n, then id, attempt for each. Returns per task -1
 * (fenced) or its revoke_requested. */
const char er__rd_lua_renew[] =
    "local untl, n = N(1), N(2)\n"
    "local out = {}\n"
    "for i = 0, n - 1 do\n"
    "  local id, att = A(3 + 2 * i), N(4 + 2 * i)\n"
    "  local h = TK(id)\n"
    "  local f = redis.call('HMGET', h, 'state', 'attempt', 'revoke_requested')\n"
    "  if f[1] == '1' and tonumber(f[2]) == att then\n"
    "    redis.call('HSET', h, 'lease_until_ms', I(untl))\n"
    "    redis.call('ZADD', LEASES, untl, id)\n"
    "    out[i + 1] = tonumber(f[3]) or 0\n"
    "  else\n"
    "    out[i + 1] = -1\n"
    "  end\n"
    "end\n"
    "return out\n";

int er__rd_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                 int64_t lease_until_ms, bool *revoked, bool *fenced) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, lease_until_ms);
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) {
    er__rd_args_str(&a, ids[i]);
    er__rd_args_i64(&a, attempts[i]);
  }
  redisReply *r;
  /* Idempotent: setting the same lease twice is setting it once. */
  int rc = er__rd_run(rd, ER_RD_RENEW, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
    freeReplyObject(r);
    er__store_set_error(s, "redis renew: an unexpected reply");
    return ER_EIO;
  }
  for (size_t i = 0; i < n; i++) {
    long long v = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : -1;
    if (revoked) revoked[i] = v > 0;
    if (fenced) fenced[i] = v < 0;
  }
  freeReplyObject(r);
  return 0;
}

/* ---- complete ------------------------------------------------------------------------
 * ARGV: n, then per outcome: id, attempt, state, result (optional JSON),
 * error (optional JSON), retry_eta, now. Returns per outcome 1 when fenced. */
#define DONE_FIELDS 7
const char er__rd_lua_complete[] =
    "local n = N(1)\n"
    "local out, changed, done = {}, false, {}\n"
    "for i = 0, n - 1 do\n"
    "  local o = 1 + i * 7\n"
    "  local id, att, st = A(o + 1), N(o + 2), A(o + 3)\n"
    "  local res, err, reta, now = opt(A(o + 4)), opt(A(o + 5)), N(o + 6), N(o + 7)\n"
    "  local h = TK(id)\n"
    "  local f = redis.call('HMGET', h, 'state', 'attempt', 'queue', 'name', 'ignore_result',\n"
    "    'result_ttl_ms', 'priority', 'eta_ms', 'seq', 'retries')\n"
    "  if f[1] ~= '1' or tonumber(f[2]) ~= att then\n"
    "    out[i + 1] = 1\n"
    "  else\n"
    "    out[i + 1] = 0\n"
    "    changed = true\n"
    "    done[#done + 1] = id\n"
    "    local q = f[3]\n"
    "    local sets, dels = {}, {}\n"
    "    if st == '0' or st == '2' then\n"
    "      local eta = tonumber(f[8])\n"
    "      sets = {'state', st}\n"
    "      dels = {'worker', 'lease_until_ms'}\n"
    "      if st == '2' then\n"
    "        eta = reta\n"
    "        sets[3], sets[4], sets[5], sets[6] = 'eta_ms', I(reta), 'retries', I(tonumber(f[10]) + 1)\n"
    "        if err then sets[#sets + 1] = 'error' sets[#sets + 1] = err\n"
    "        else dels[#dels + 1] = 'error' end\n"
    "      end\n"
    "      local m = place_f(id, q, tonumber(f[7]), eta, tonumber(f[9]), now)\n"
    "      if m then sets[#sets + 1] = 'qm' sets[#sets + 1] = m end\n"
    "      redis.call('HSET', h, unpack(sets))\n"
    "      redis.call('HDEL', h, unpack(dels))\n"
    "      move(q, '1', st)\n"
    "    else\n"
    "      if res and f[5] ~= '1' then sets[#sets + 1] = 'result' sets[#sets + 1] = res\n"
    "      else dels[#dels + 1] = 'result' end\n"
    "      if err then sets[#sets + 1] = 'error' sets[#sets + 1] = err\n"
    "      else dels[#dels + 1] = 'error' end\n"
    "      finish(id, h, q, '1', st, now, f[6], f[4], sets, dels)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "bulk('ZREM', LEASES, done)\n"
    "if changed then wake() end\n"
    "return out\n";

int er__rd_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) {
    const er_completion_t *c = &cs[i];
    json_t *err = c->error ? json_incref(c->error)
                  : c->state == ER_STATE_REVOKED ? er__store_error_json(ER_EREVOKED, "revoked")
                                                 : NULL;
    er__rd_args_str(&a, c->id);
    er__rd_args_i64(&a, c->attempt);
    er__rd_args_i64(&a, c->state);
    er__rd_args_json(&a, c->state == ER_STATE_SUCCESS ? c->result : NULL, true);
    er__rd_args_json(&a, c->state == ER_STATE_PENDING ? NULL : err, true);
    er__rd_args_i64(&a, c->retry_eta_ms);
    er__rd_args_i64(&a, c->now_ms);
    json_decref(err);
  }
  _Static_assert(DONE_FIELDS == 7, "the script's stride");
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_COMPLETE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
    freeReplyObject(r);
    er__store_set_error(s, "redis complete: an unexpected reply");
    return ER_EIO;
  }
  for (size_t i = 0; i < n; i++)
    if (fenced) fenced[i] = r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer;
  freeReplyObject(r);
  return 0;
}

/* ---- progress -----------------------------------------------------------------------------
 * ARGV: id, attempt, progress, message (optional). Returns 0 when fenced. */
const char er__rd_lua_progress[] =
    "local h = TK(A(1))\n"
    "local f = redis.call('HMGET', h, 'state', 'attempt')\n"
    "if f[1] ~= '1' or tonumber(f[2]) ~= N(2) then return 0 end\n"
    "redis.call('HSET', h, 'progress', A(3))\n"
    "local m = opt(A(4))\n"
    "if m then redis.call('HSET', h, 'progress_msg', m) else redis.call('HDEL', h, 'progress_msg') end\n"
    "return 1\n";

int er__rd_progress(er_store_t *s, const char *id, int attempt, double progress,
                    const char *msg) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_str(&a, id);
  er__rd_args_i64(&a, attempt);
  er__rd_args_fmt(&a, "%.17g", progress);
  er__rd_args_opt(&a, msg);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_PROGRESS, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  bool ok = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  freeReplyObject(r);
  if (!ok) {
    er__store_set_error(s, "task %s attempt %d no longer owns its lease", id, attempt);
    return ER_EFENCED;
  }
  return 0;
}
