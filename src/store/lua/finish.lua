-- Ending and deleting tasks: for the scripts that finish, revoke, purge or
-- expire them (after the prelude).

-- cmd key list...: in chunks, for unpack's limit; step keeps pairs whole
local function bulk(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
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
  WFIN = wake_id(WFIN, id)
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
