/* The Lua every script shares, and the scripts' registry.
 *
 * Each script runs with KEYS[1] = "errand:{P}:" (the start of every key of
 * the store, so a cluster routes the script to the slot of {P}) and ARGV =
 * origin, channel, then its own arguments, read with A(i) / N(i) from 1.
 *
 * A task is the hash errand:{P}:task:<id> whose fields are named as in
 * er_task_rec_t; an absent field is NULL. Numbers are written as integer
 * text (I). A queued task (PENDING or RETRY) is in exactly one of its queue's
 * two sorted sets: q:<queue> when due, scored by -priority with the member
 * "<eta:16 digits><seq:16 digits><id>" (so that ties in priority go by eta,
 * then enqueue order: exact, whatever the numbers), its member kept in the
 * task's field qm; or delayed:<queue> scored by eta, until a reserve finds
 * it due and moves it. docs/store-redis.md has the whole layout. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

static const char g_prelude[] =
    "local B = KEYS[1]\n"
    "local ORIGIN, CH = ARGV[1], ARGV[2]\n"
    "local function A(i) return ARGV[i + 2] end\n"
    "local function N(i) return tonumber(ARGV[i + 2]) end\n"
    "local function I(x) return string.format('%.0f', x) end\n"
    "local function TK(id) return B .. 'task:' .. id end\n"
    "local function RK(q) return B .. 'q:' .. q end\n"
    "local function DK(q) return B .. 'delayed:' .. q end\n"
    "local function NK(n) return B .. 'name:' .. n end\n"
    "local function KK(k) return B .. 'key:' .. k end\n"
    "local LEASES, RESULTS, TOMBS = B .. 'leases', B .. 'results', B .. 'tombstones'\n"
    "local COUNTS, SEQ = B .. 'counts', B .. 'seq'\n"
    "local WORKERS, WEXP = B .. 'workers', B .. 'workers:expiry'\n"
    "local function wake() redis.call('PUBLISH', CH, ORIGIN) end\n"
    /* optional strings: '-' for NULL, '+text' */
    "local function opt(s)\n"
    "  if s == nil or string.sub(s, 1, 1) ~= '+' then return nil end\n"
    "  return string.sub(s, 2)\n"
    "end\n"
    /* counts: field '<state>:<queue>' of the hash counts, changed once per
     * field at the end of the script (flush_counts, from the epilogue) */
    "local DELTA = {}\n"
    "local function count(q, st, d)\n"
    "  local f = st .. ':' .. q\n"
    "  DELTA[f] = (DELTA[f] or 0) + d\n"
    "end\n"
    "local function move(q, from, to)\n"
    "  if from ~= to then count(q, from, -1) count(q, to, 1) end\n"
    "end\n"
    "local function flush_counts()\n"
    "  for f, d in pairs(DELTA) do\n"
    "    if d ~= 0 and redis.call('HINCRBY', COUNTS, f, d) <= 0 then\n"
    "      redis.call('HDEL', COUNTS, f)\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* cmd key list...: in chunks, for unpack's limit; step keeps pairs whole */
    "local function bulk(cmd, key, list)\n"
    "  for i = 1, #list, 1000 do\n"
    "    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))\n"
    "  end\n"
    "end\n"
    "local function member(eta, seq, id)\n"
    "  if eta < 0 then eta = 0 elseif eta > 9999999999999999 then eta = 9999999999999999 end\n"
    "  return string.format('%016.0f%016.0f', eta, seq) .. id\n"
    "end\n"
    /* a queued task into the ready set when due at now, else the delayed set;
     * returns its ready member (for the task's field qm) or nil */
    "local function place_f(id, q, prio, eta, seq, now)\n"
    "  if eta <= now then\n"
    "    local m = member(eta, seq, id)\n"
    "    redis.call('ZADD', RK(q), 0 - prio, m)\n"
    "    return m\n"
    "  end\n"
    "  redis.call('ZADD', DK(q), eta, id)\n"
    "  return nil\n"
    "end\n"
    /* a queued task out of both sets */
    "local function unplace(id, h, q)\n"
    "  local m = redis.call('HGET', h, 'qm')\n"
    "  if m then redis.call('ZREM', RK(q), m) end\n"
    "  redis.call('ZREM', DK(q), id)\n"
    "  redis.call('HDEL', h, 'qm')\n"
    "end\n"
    /* a finished named task starts its name's tombstone */
    "local function tombstone(name, id, now)\n"
    "  if not name then return end\n"
    "  local nk = NK(name)\n"
    "  local f = redis.call('HMGET', nk, 'id', 'finished_ms')\n"
    "  if f[1] == id and not f[2] then\n"
    "    redis.call('HSET', nk, 'finished_ms', I(now))\n"
    "    redis.call('ZADD', TOMBS, now, name)\n"
    "  end\n"
    "end\n"
    /* ends a task (from state 'from') in state st at now: one HSET of sets
     * plus state, finished_ms and when its result expires (now + ttl; ttl 0:
     * a day; below 0: never), one HDEL of dels plus its lease and queue
     * member; the name's tombstone starts and the counts move */
    "local function finish(id, h, q, from, st, now, ttl, name, sets, dels)\n"
    "  sets[#sets + 1] = 'state'\n"
    "  sets[#sets + 1] = st\n"
    "  sets[#sets + 1] = 'finished_ms'\n"
    "  sets[#sets + 1] = I(now)\n"
    "  dels[#dels + 1] = 'lease_until_ms'\n"
    "  dels[#dels + 1] = 'qm'\n"
    "  ttl = tonumber(ttl or '0')\n"
    "  if ttl < 0 then\n"
    "    dels[#dels + 1] = 'result_expires_ms'\n"
    "  else\n"
    "    if ttl == 0 then ttl = 86400000 end\n"
    "    sets[#sets + 1] = 'result_expires_ms'\n"
    "    sets[#sets + 1] = I(now + ttl)\n"
    "    redis.call('ZADD', RESULTS, now + ttl, id)\n"
    "  end\n"
    "  redis.call('HSET', h, unpack(sets))\n"
    "  redis.call('HDEL', h, unpack(dels))\n"
    "  tombstone(name, id, now)\n"
    "  move(q, from, st)\n"
    "end\n"
    /* deletes a task record and its traces (not its name) */
    "local function forget(id, h)\n"
    "  local f = redis.call('HMGET', h, 'queue', 'state', 'key')\n"
    "  if not f[1] then return false end\n"
    "  if f[3] then redis.call('ZREM', KK(f[3]), id) end\n"
    "  count(f[1], f[2], -1)\n"
    "  redis.call('DEL', h)\n"
    "  redis.call('ZREM', RESULTS, id)\n"
    "  redis.call('ZREM', LEASES, id)\n"
    "  return true\n"
    "end\n";

static const char *const g_bodies[ER_RD_NSCRIPTS] = {
    [ER_RD_ENQUEUE] = er__rd_lua_enqueue,   [ER_RD_GET] = er__rd_lua_get,
    [ER_RD_REVOKE] = er__rd_lua_revoke,     [ER_RD_PURGE] = er__rd_lua_purge,
    [ER_RD_RESERVE] = er__rd_lua_reserve,   [ER_RD_RENEW] = er__rd_lua_renew,
    [ER_RD_COMPLETE] = er__rd_lua_complete, [ER_RD_PROGRESS] = er__rd_lua_progress,
    [ER_RD_MAINTAIN] = er__rd_lua_maintain, [ER_RD_HEARTBEAT] = er__rd_lua_heartbeat,
    [ER_RD_WORKER_GONE] = er__rd_lua_worker_gone, [ER_RD_WORKERS] = er__rd_lua_workers,
};

/* Each body runs as main(); the counts it changed are written once after. */
static const char g_main[] = "local function main()\n";
static const char g_epilogue[] = "\nend\nlocal r = main()\nflush_counts()\nreturn r\n";

static char *g_texts[ER_RD_NSCRIPTS];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Built with the C library's malloc: they live as long as the process. */
static void build(void) {
  for (int i = 0; i < ER_RD_NSCRIPTS; i++) {
    const char *parts[] = {g_prelude, g_main, g_bodies[i], g_epilogue};
    size_t len = 1;
    for (int k = 0; k < 4; k++) len += strlen(parts[k]);
    char *t = malloc(len);
    if (!t) continue;
    t[0] = 0;
    for (int k = 0; k < 4; k++) strcat(t, parts[k]);
    g_texts[i] = t;
  }
}

const char *er__rd_script_text(er_rd_script_t n) {
  pthread_once(&g_once, build);
  return g_texts[n] ? g_texts[n] : "return redis.error_reply('ENOMEM script text')";
}
