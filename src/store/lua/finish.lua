-- Ending and deleting tasks: for the scripts that finish, revoke, purge or
-- expire them (after the prelude).

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
  ttl = tonumber(ttl or '0') or 0 -- a foreign value: the default
  if ttl < 0 then return nil end
  if ttl == 0 then ttl = RESULT_TTL_DEFAULT_MS end
  return now + ttl
end

-- ends a task (from state 'from'; on queue q, of task name tn) in state st
-- at now: one HSET of sets plus
-- state, finished_ms and when its result expires, one HDEL of dels plus its
-- lease and queue member; the name's tombstone starts, the counts move and
-- the finished channel hears of it
local function finish(id, h, q, tn, from, st, now, ttl, name, sets, dels)
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
  move(q, tn, from, st)
  WFIN = wake_id(WFIN, id)
end

-- ends a task whose record cannot be used (an older writer, a foreign
-- script) FAILURE, from state 'from': its error is baderr (the JSON of
-- "task record cannot be decoded", from the caller) with ': ' .. why added
local function finish_undecodable(id, h, q, tn, from, now, ttl, name, baderr, why)
  local e = cjson.decode(baderr)
  e.message = e.message .. ': ' .. why
  finish(id, h, q, tn, from, FAILURE, now, ttl, name,
    {'error', cjson.encode(e), 'revoke_requested', '0', 'progress', '-1'},
    {'worker', 'progress_msg', 'result'})
end
