-- The Lua every script shares. Before it comes the constants redis_lua.c
-- generates from the C definitions (task states PENDING .. REVOKED as their
-- stored text, RESULT_TTL_DEFAULT_MS, REC_FIELDS, DONE_FIELDS, MUT_* kinds,
-- WAKE_IDS_MAX), so no number is typed twice.
--
-- KEYS[1] is "errand:{P}:", the start of every key of the store (so a cluster
-- routes the script to the slot of {P}); ARGV[1] is the caller's origin token
-- and ARGV[2] the wake-up channel's base name; a script's own arguments are
-- read with A(i) / N(i) from 1. docs/store-redis.md has the whole layout.
local B = KEYS[1]
local ORIGIN, CH = ARGV[1], ARGV[2]
local function A(i) return ARGV[i + 2] end
local function N(i) return tonumber(ARGV[i + 2]) end
-- numbers are stored as integer text
local function I(x) return string.format('%.0f', x) end
local function TK(id) return B .. 'task:' .. id end
local function RK(q) return B .. 'q:' .. q end
local function DK(q) return B .. 'delayed:' .. q end
local function NK(n) return B .. 'name:' .. n end
local function KK(k) return B .. 'key:' .. k end
local LEASES, RESULTS, TOMBS = B .. 'leases', B .. 'results', B .. 'tombstones'
local COUNTS, SEQ = B .. 'counts', B .. 'seq'
local WORKERS, WEXP = B .. 'workers', B .. 'workers:expiry'

-- optional strings: '-' for NULL, '+text'
local function opt(s)
  if s == nil or string.sub(s, 1, 1) ~= '+' then return nil end
  return string.sub(s, 2)
end

-- counts: field '<state>:<queue>' of the hash counts, changed once per field
-- at the end of the script (flush_counts, from the epilogue)
local DELTA = {}
local function count(q, st, d)
  local f = st .. ':' .. q
  DELTA[f] = (DELTA[f] or 0) + d
end
local function move(q, from, to)
  if from ~= to then count(q, from, -1) count(q, to, 1) end
end
local function flush_counts()
  for f, d in pairs(DELTA) do
    if d ~= 0 and redis.call('HINCRBY', COUNTS, f, d) <= 0 then
      redis.call('HDEL', COUNTS, f)
    end
  end
end

-- wake-ups, published once at the end of the script (flush_wakes): work on a
-- queue on CH:q:<queue> (the origin), finished tasks on CH:fin and revokes of
-- running tasks on CH:ctl (a JSON array: the origin, then the ids; the origin
-- and "*" when there are too many to list)
local WQ, WFIN, WCTL = {}, {}, {}
local function wake_queue(q) WQ[q] = true end
local function wake_finished(id) WFIN[#WFIN + 1] = id end
local function wake_control(id) WCTL[#WCTL + 1] = id end
local function publish_ids(ch, ids)
  if #ids == 0 then return end
  if #ids > WAKE_IDS_MAX then ids = {'*'} end
  table.insert(ids, 1, ORIGIN)
  redis.call('PUBLISH', ch, cjson.encode(ids))
end
local function flush_wakes()
  for q, _ in pairs(WQ) do redis.call('PUBLISH', CH .. ':q:' .. q, ORIGIN) end
  publish_ids(CH .. ':fin', WFIN)
  publish_ids(CH .. ':ctl', WCTL)
end

-- cmd key list...: in chunks, for unpack's limit; step keeps pairs whole
local function bulk(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

-- a queued task's member in its queue's ready set: eta and enqueue sequence
-- as fixed-width digits, then the id, so ties in priority go by eta, then
-- enqueue order, exactly
local function member(eta, seq, id)
  if eta < 0 then eta = 0 elseif eta > 9999999999999999 then eta = 9999999999999999 end
  return string.format('%016.0f%016.0f', eta, seq) .. id
end
-- a queued task into the ready set when due at now, else the delayed set;
-- returns its ready member (for the task's field qm) or nil. The caller wakes
-- the queue's watchers when that is news to them (wake_queue).
local function place_f(id, q, prio, eta, seq, now)
  if eta <= now then
    local m = member(eta, seq, id)
    redis.call('ZADD', RK(q), 0 - prio, m)
    return m
  end
  redis.call('ZADD', DK(q), eta, id)
  return nil
end
-- a queued task out of both sets
local function unplace(id, h, q)
  local m = redis.call('HGET', h, 'qm')
  if m then redis.call('ZREM', RK(q), m) end
  redis.call('ZREM', DK(q), id)
  redis.call('HDEL', h, 'qm')
end

-- a finished named task starts its name's tombstone
local function tombstone(name, id, now)
  if not name then return end
  local nk = NK(name)
  local f = redis.call('HMGET', nk, 'id', 'finished_ms')
  if f[1] == id and not f[2] then
    redis.call('HSET', nk, 'finished_ms', I(now))
    redis.call('ZADD', TOMBS, now, name)
  end
end

-- when a result finished at now expires: nil for never (ttl below 0)
local function result_expiry(ttl, now)
  ttl = tonumber(ttl or '0')
  if ttl < 0 then return nil end
  if ttl == 0 then ttl = RESULT_TTL_DEFAULT_MS end
  return now + ttl
end

-- ends a task (from state 'from') in state st at now: one HSET of sets plus
-- state, finished_ms and when its result expires, one HDEL of dels plus its
-- lease and queue member; the name's tombstone starts, the counts move and
-- the finished channel hears of it
local function finish(id, h, q, from, st, now, ttl, name, sets, dels)
  sets[#sets + 1] = 'state'
  sets[#sets + 1] = st
  sets[#sets + 1] = 'finished_ms'
  sets[#sets + 1] = I(now)
  dels[#dels + 1] = 'lease_until_ms'
  dels[#dels + 1] = 'qm'
  local exp = result_expiry(ttl, now)
  if not exp then
    dels[#dels + 1] = 'result_expires_ms'
  else
    sets[#sets + 1] = 'result_expires_ms'
    sets[#sets + 1] = I(exp)
    redis.call('ZADD', RESULTS, exp, id)
  end
  redis.call('HSET', h, unpack(sets))
  redis.call('HDEL', h, unpack(dels))
  tombstone(name, id, now)
  move(q, from, st)
  wake_finished(id)
end

-- deletes a task record and its traces (not its name)
local function forget(id, h)
  local f = redis.call('HMGET', h, 'queue', 'state', 'key')
  if not f[1] then return false end
  if f[3] then redis.call('ZREM', KK(f[3]), id) end
  count(f[1], f[2], -1)
  redis.call('DEL', h)
  redis.call('ZREM', RESULTS, id)
  redis.call('ZREM', LEASES, id)
  return true
end
