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
    /* counts: field '<state>:<queue>' of the hash counts */
    "local function count(q, st, d)\n"
    "  local f = st .. ':' .. q\n"
    "  if redis.call('HINCRBY', COUNTS, f, d) <= 0 then redis.call('HDEL', COUNTS, f) end\n"
    "end\n"
    "local function move(q, from, to)\n"
    "  if from ~= to then count(q, from, -1) count(q, to, 1) end\n"
    "end\n"
    "local function member(eta, seq, id)\n"
    "  if eta < 0 then eta = 0 elseif eta > 9999999999999999 then eta = 9999999999999999 end\n"
    "  return string.format('%016.0f%016.0f', eta, seq) .. id\n"
    "end\n"
    /* a queued task into the ready set when due at now, else the delayed set */
    "local function place(id, now)\n"
    "  local h = TK(id)\n"
    "  local f = redis.call('HMGET', h, 'queue', 'priority', 'eta_ms', 'seq')\n"
    "  local eta = tonumber(f[3])\n"
    "  if eta <= now then\n"
    "    local m = member(eta, tonumber(f[4]), id)\n"
    "    redis.call('ZADD', RK(f[1]), 0 - tonumber(f[2]), m)\n"
    "    redis.call('HSET', h, 'qm', m)\n"
    "  else\n"
    "    redis.call('ZADD', DK(f[1]), eta, id)\n"
    "    redis.call('HDEL', h, 'qm')\n"
    "  end\n"
    "end\n"
    /* a queued task out of both sets */
    "local function unplace(id, h, q)\n"
    "  local m = redis.call('HGET', h, 'qm')\n"
    "  if m then redis.call('ZREM', RK(q), m) end\n"
    "  redis.call('ZREM', DK(q), id)\n"
    "  redis.call('HDEL', h, 'qm')\n"
    "end\n"
    /* a finished task keeps its result until now + result_ttl_ms */
    "local function result_expiry(id, h, now)\n"
    "  local ttl = tonumber(redis.call('HGET', h, 'result_ttl_ms') or '0')\n"
    "  if ttl < 0 then\n"
    "    redis.call('HDEL', h, 'result_expires_ms')\n"
    "    redis.call('ZREM', RESULTS, id)\n"
    "  else\n"
    "    if ttl == 0 then ttl = 86400000 end\n"
    "    redis.call('HSET', h, 'result_expires_ms', I(now + ttl))\n"
    "    redis.call('ZADD', RESULTS, now + ttl, id)\n"
    "  end\n"
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

static char *g_texts[ER_RD_NSCRIPTS];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Built with the C library's malloc: they live as long as the process. */
static void build(void) {
  for (int i = 0; i < ER_RD_NSCRIPTS; i++) {
    size_t a = strlen(g_prelude), b = strlen(g_bodies[i]);
    char *t = malloc(a + b + 1);
    if (!t) continue;
    memcpy(t, g_prelude, a);
    memcpy(t + a, g_bodies[i], b + 1);
    g_texts[i] = t;
  }
}

const char *er__rd_script_text(er_rd_script_t n) {
  pthread_once(&g_once, build);
  return g_texts[n] ? g_texts[n] : "return redis.error_reply('ENOMEM script text')";
}
