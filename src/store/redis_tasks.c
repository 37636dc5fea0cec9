/* Tasks in and out: enqueue (with the name and key rules), get, revoke,
 * purge. Each is one script. */
#include <stdio.h>
#include <string.h>

#include "store/redis_internal.h"

/* ---- enqueue ------------------------------------------------------------------
 * ARGV: flags, tombstone_ms, n, then 17 fields per record (see add_record).
 * All or none: every rule is checked for the whole batch before anything is
 * written (a script's writes are not undone by a later error). Returns, per
 * record, the id of the live task the key rule found, or "". */
#define REC_FIELDS 17
const char er__rd_lua_enqueue[] =
    "local flags, tomb, n = N(1), N(2), N(3)\n"
    "local F = " "17" "\n"
    "local ids, names, keys, found = {}, {}, {}, {}\n"
    "local function live(id, at)\n"
    "  local f = redis.call('HMGET', TK(id), 'state', 'ignore_result', 'result_expires_ms')\n"
    "  local st = f[1]\n"
    "  if st == '0' or st == '1' or st == '2' then return true end\n"
    "  return st == '3' and f[2] ~= '1' and (not f[3] or tonumber(f[3]) > at)\n"
    "end\n"
    "for i = 0, n - 1 do\n"
    "  local o = 3 + i * F\n"
    "  local id, name, key, created = A(o + 1), opt(A(o + 8)), opt(A(o + 9)), N(o + 10)\n"
    "  local hit = nil\n"
    "  if flags % 2 == 1 and key then\n"
    "    hit = keys[key]\n"
    "    if not hit then\n"
    "      for _, k in ipairs(redis.call('ZREVRANGE', KK(key), 0, -1)) do\n"
    "        if live(k, created) then hit = k break end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  found[i + 1] = hit or false\n"
    "  if not hit then\n"
    "    if name then\n"
    "      local f = redis.call('HMGET', NK(name), 'id', 'finished_ms')\n"
    "      if names[name] or (f[1] and not f[2]) then\n"
    "        return redis.error_reply('EEXIST task name \\'' .. name ..\n"
    "          '\\' is taken by a task that has not finished')\n"
    "      end\n"
    "      if f[2] and created < tonumber(f[2]) + tomb then\n"
    "        return redis.error_reply('ETOMBSTONED task name \\'' .. name ..\n"
    "          '\\' is tombstoned: its task finished ' .. I(created - tonumber(f[2])) ..\n"
    "          ' ms ago and names stay taken for ' .. I(tomb) .. ' ms')\n"
    "      end\n"
    "      names[name] = id\n"
    "    end\n"
    "    if ids[id] or redis.call('EXISTS', TK(id)) == 1 then\n"
    "      return redis.error_reply('EEXIST task id ' .. id .. ' already exists')\n"
    "    end\n"
    "    ids[id] = true\n"
    "    if key then keys[key] = id end\n"
    "  end\n"
    "end\n"
    "local inserts = 0\n"
    "for i = 1, n do if not found[i] then inserts = inserts + 1 end end\n"
    "local seq = 0\n"
    "if inserts > 0 then seq = redis.call('INCRBY', SEQ, inserts) - inserts end\n"
    "local out, added = {}, 0\n"
    "for i = 0, n - 1 do\n"
    "  local o = 3 + i * F\n"
    "  if found[i + 1] then\n"
    "    out[i + 1] = found[i + 1]\n"
    "  else\n"
    "    out[i + 1] = ''\n"
    "    seq = seq + 1\n"
    "    local id, q = A(o + 1), A(o + 3)\n"
    "    local ctx, name, key = opt(A(o + 7)), opt(A(o + 8)), opt(A(o + 9))\n"
    "    local f = {'id', id, 'task', A(o + 2), 'queue', q, 'priority', A(o + 4),\n"
    "      'state', '0', 'args', A(o + 5), 'kwargs', A(o + 6), 'created_ms', A(o + 10),\n"
    "      'eta_ms', A(o + 11), 'expires_ms', A(o + 12), 'attempt', '0', 'retries', '0',\n"
    "      'max_retries', A(o + 13), 'soft_limit_ms', A(o + 14), 'hard_limit_ms', A(o + 15),\n"
    "      'result_ttl_ms', A(o + 16), 'ignore_result', A(o + 17), 'revoke_requested', '0',\n"
    "      'progress', '-1', 'seq', I(seq)}\n"
    "    local m = place_f(id, q, N(o + 4), N(o + 11), seq, N(o + 10))\n"
    "    if m then f[#f + 1] = 'qm' f[#f + 1] = m end\n"
    "    if ctx then f[#f + 1] = 'context' f[#f + 1] = ctx end\n"
    "    if name then\n"
    "      f[#f + 1] = 'name'\n"
    "      f[#f + 1] = name\n"
    "      redis.call('DEL', NK(name))\n"
    "      redis.call('HSET', NK(name), 'id', id)\n"
    "      redis.call('ZREM', TOMBS, name)\n"
    "    end\n"
    "    if key then\n"
    "      f[#f + 1] = 'key'\n"
    "      f[#f + 1] = key\n"
    "      redis.call('ZADD', KK(key), seq, id)\n"
    "    end\n"
    "    redis.call('HSET', TK(id), unpack(f))\n"
    "    count(q, '0', 1)\n"
    "    added = added + 1\n"
    "  end\n"
    "end\n"
    "if added > 0 then wake() end\n"
    "return out\n";

static void add_record(er_rd_args_t *a, const er_task_rec_t *r) {
  er__rd_args_str(a, r->id);
  er__rd_args_str(a, r->task);
  er__rd_args_str(a, r->queue);
  er__rd_args_i64(a, r->priority);
  er__rd_args_json(a, r->args, false);
  er__rd_args_json(a, r->kwargs, false);
  er__rd_args_json(a, r->context, true);
  er__rd_args_opt(a, r->name);
  er__rd_args_opt(a, r->key);
  er__rd_args_i64(a, r->created_ms);
  er__rd_args_i64(a, r->eta_ms);
  er__rd_args_i64(a, r->expires_ms);
  er__rd_args_i64(a, r->max_retries);
  er__rd_args_i64(a, r->soft_limit_ms);
  er__rd_args_i64(a, r->hard_limit_ms);
  er__rd_args_i64(a, r->result_ttl_ms);
  er__rd_args_i64(a, r->ignore_result ? 1 : 0);
}

int er__rd_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                   bool *existing) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_i64(&a, flags);
  er__rd_args_i64(&a, s->tombstone_ms);
  er__rd_args_i64(&a, (int64_t)n);
  for (size_t i = 0; i < n; i++) add_record(&a, recs[i]);
  _Static_assert(REC_FIELDS == 17, "the script's F");
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_ENQUEUE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
    freeReplyObject(r);
    er__store_set_error(s, "redis enqueue: an unexpected reply");
    return ER_EIO;
  }
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = r->element[i];
    bool found = e->type == REDIS_REPLY_STRING && e->len > 0;
    if (found) snprintf(recs[i]->id, sizeof recs[i]->id, "%s", e->str);
    else recs[i]->state = ER_STATE_PENDING;
    if (existing) existing[i] = found;
  }
  freeReplyObject(r);
  return 0;
}

/* ---- get ------------------------------------------------------------------------
 * ARGV: 'i' or 'k', the id or key, now. A finished task whose result expired
 * reads as gone even before maintain deletes it. */
const char er__rd_lua_get[] =
    "local now = N(3)\n"
    "local function visible(id)\n"
    "  local h = TK(id)\n"
    "  local e = redis.call('HGET', h, 'result_expires_ms')\n"
    "  if e and tonumber(e) <= now then return nil end\n"
    "  local r = redis.call('HGETALL', h)\n"
    "  if #r == 0 then return nil end\n"
    "  return r\n"
    "end\n"
    "if A(1) == 'i' then return visible(A(2)) or false end\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KK(A(2)), 0, -1)) do\n"
    "  local r = visible(id)\n"
    "  if r then return r end\n"
    "end\n"
    "return false\n";

int er__rd_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_str(&a, id ? "i" : "k");
  er__rd_args_str(&a, id ? id : key);
  er__rd_args_i64(&a, er_now_wall_ms());
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_GET, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type == REDIS_REPLY_ARRAY) {
    rc = er__rd_read_rec(rd, r, out);
  } else {
    er__store_set_error(s, "no task with %s '%s'", id ? "id" : "key", id ? id : key);
    rc = ER_ENOENT;
  }
  freeReplyObject(r);
  return rc;
}

/* ---- revoke ------------------------------------------------------------------------
 * ARGV: id, now, error JSON. Returns the state it had, or -1 when unknown. */
const char er__rd_lua_revoke[] =
    "local id, now = A(1), N(2)\n"
    "local h = TK(id)\n"
    "local f = redis.call('HMGET', h, 'state', 'queue', 'name', 'result_ttl_ms')\n"
    "if not f[1] then return -1 end\n"
    "if f[1] == '0' or f[1] == '2' then\n"
    "  unplace(id, h, f[2])\n"
    "  finish(id, h, f[2], f[1], '5', now, f[4], f[3], {'error', A(3)}, {})\n"
    "  wake()\n"
    "elseif f[1] == '1' then\n"
    "  redis.call('HSET', h, 'revoke_requested', '1')\n"
    "end\n"
    "return tonumber(f[1])\n";

int er__rd_revoke(er_store_t *s, const char *id, er_task_state_t *state) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  json_t *err = er__store_error_json(ER_EREVOKED, "revoked");
  er__rd_args_str(&a, id);
  er__rd_args_i64(&a, er_now_wall_ms());
  er__rd_args_json(&a, err, false);
  json_decref(err);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_REVOKE, false, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  long long was = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  freeReplyObject(r);
  if (was < 0) {
    er__store_set_error(s, "no task with id '%s'", id);
    return ER_ENOENT;
  }
  if (state) *state = (er_task_state_t)was;
  return 0;
}

/* ---- purge ----------------------------------------------------------------------------
 * ARGV: '1' for every queue or '0', the queue, now, limit. Deletes up to
 * limit queued tasks (their names stay tombstoned) and returns how many; the
 * caller repeats while a whole limit went, so that no one script runs long.
 * The queues with queued tasks are those with a PENDING or RETRY count. */
#define PURGE_CHUNK 5000
const char er__rd_lua_purge[] =
    "local now, limit = N(3), N(4)\n"
    "local qs = {}\n"
    "if A(1) == '1' then\n"
    "  for _, f in ipairs(redis.call('HKEYS', COUNTS)) do\n"
    "    local st = string.sub(f, 1, 2)\n"
    "    if st == '0:' or st == '2:' then qs[string.sub(f, 3)] = true end\n"
    "  end\n"
    "else\n"
    "  qs[A(2)] = true\n"
    "end\n"
    "local removed = 0\n"
    "for q, _ in pairs(qs) do\n"
    "  for _, z in ipairs({RK(q), DK(q)}) do\n"
    "    while removed < limit do\n"
    "      local ms = redis.call('ZRANGE', z, 0, limit - removed - 1)\n"
    "      if #ms == 0 then break end\n"
    "      for _, m in ipairs(ms) do\n"
    "        redis.call('ZREM', z, m)\n"
    "        local id = m\n"
    "        if z == RK(q) then id = string.sub(m, 33) end\n"
    "        local h = TK(id)\n"
    "        local f = redis.call('HMGET', h, 'state', 'name')\n"
    "        if f[1] == '0' or f[1] == '2' then\n"
    "          tombstone(f[2], id, now)\n"
    "          forget(id, h)\n"
    "          removed = removed + 1\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if removed > 0 then wake() end\n"
    "return removed\n";

int er__rd_purge(er_store_t *s, const char *queue, size_t *count) {
  er_rd_t *rd = er__rd(s);
  size_t total = 0;
  for (;;) {
    er_rd_args_t a = {0};
    er__rd_args_str(&a, queue ? "0" : "1");
    er__rd_args_str(&a, queue ? queue : "");
    er__rd_args_i64(&a, er_now_wall_ms());
    er__rd_args_i64(&a, PURGE_CHUNK);
    redisReply *r;
    int rc = er__rd_run(rd, ER_RD_PURGE, false, &a, &r);
    er__rd_args_free(&a);
    if (rc) return rc;
    long long got = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    total += (size_t)got;
    if (got < PURGE_CHUNK) break;
  }
  if (count) *count = total;
  return 0;
}
