-- Enqueue's check and write (after task.lua).
--
-- A record is the REC_FIELDS arguments after an offset o (er__rd_args_rec
-- writes them): o+1 id, +2 task, +3 queue, +4 priority, +5 args, +6 kwargs,
-- +7 context (optional), +8 name (optional), +9 key (optional),
-- +10 created_ms, +11 eta_ms, +12 expires_ms, +13 max_retries,
-- +14 soft_limit_ms, +15 hard_limit_ms, +16 result_ttl_ms, +17 ignore_result.
-- They are read where used, not copied into a table: a script runs often.

-- what the checks see of a task the batch enqueues
local QUEUED = {state = PENDING, attempt = 0}

-- Checks the record at o (flags: ER_ENQ_IF_ABSENT in bit 0; tomb:
-- tombstone_ms). Returns the live task the key rule returned instead, or
-- false; or nil, an error name and message.
local function enq_check(o, flags, tomb)
  local id, name, key, created = A(o + 1), opt(A(o + 8)), opt(A(o + 9)), N(o + 10)
  if flags % 2 == 1 and key then
    -- a task that a key lookup returns at time at: queued, running, or
    -- succeeded with its result kept (made here: only the key rule needs it)
    local function live(id, at)
      local t = task_view(id)
      if not t then return false end
      if t.state == PENDING or t.state == STARTED or t.state == RETRY then return true end
      return t.state == SUCCESS and not t.ignore and (not t.expires or t.expires > at)
    end
    local hit = V.keys and V.keys[key]
    if hit and not live(hit, created) then hit = nil end
    if not hit then
      for _, k in ipairs(redis.call('ZREVRANGE', KK(key), 0, -1)) do
        if live(k, created) then hit = k break end
      end
    end
    if hit then return hit end
  end
  if name then
    local holder, fin
    local nv = V.names and V.names[name]
    if nv then
      holder, fin = nv.id, nv.finished
    else
      local f = redis.call('HMGET', NK(name), 'id', 'finished_ms')
      holder, fin = f[1], tonumber(f[2])
    end
    if holder and not fin then
      return nil, 'EEXIST', "task name '" .. name .. "' is taken by a task that has not finished"
    end
    if fin and created < fin + tomb then
      return nil, 'ETOMBSTONED', "task name '" .. name .. "' is tombstoned: its task finished " ..
        I(created - fin) .. ' ms ago and names stay taken for ' .. I(tomb) .. ' ms'
    end
    V.names = V.names or {}
    V.names[name] = {id = id}
  end
  if (V.tasks and V.tasks[id]) or redis.call('EXISTS', TK(id)) == 1 then
    return nil, 'EEXIST', 'task id ' .. id .. ' already exists'
  end
  V.tasks = V.tasks or {}
  V.tasks[id] = QUEUED
  if key then
    V.keys = V.keys or {}
    V.keys[key] = id
  end
  return false
end

-- The first of n new sequence numbers, less one.
local function seq_take(n)
  if n == 0 then return 0 end
  return redis.call('INCRBY', SEQ, n) - n
end

-- Writes the checked record at o (not found by its key) with sequence
-- number seq.
local function enq_write(o, seq)
  local id, q = A(o + 1), A(o + 3)
  local ctx, name, key = opt(A(o + 7)), opt(A(o + 8)), opt(A(o + 9))
  local f = {'id', id, 'task', A(o + 2), 'queue', q, 'priority', A(o + 4),
    'state', PENDING, 'args', A(o + 5), 'kwargs', A(o + 6), 'created_ms', A(o + 10),
    'eta_ms', A(o + 11), 'expires_ms', A(o + 12), 'attempt', '0', 'retries', '0',
    'max_retries', A(o + 13), 'soft_limit_ms', A(o + 14), 'hard_limit_ms', A(o + 15),
    'result_ttl_ms', A(o + 16), 'ignore_result', A(o + 17), 'revoke_requested', '0',
    'progress', '-1', 'seq', I(seq)}
  local m = place_f(id, q, N(o + 4), N(o + 11), seq, N(o + 10))
  if m then f[#f + 1] = 'qm' f[#f + 1] = m end
  if ctx then f[#f + 1] = 'context' f[#f + 1] = ctx end
  if name then
    f[#f + 1] = 'name'
    f[#f + 1] = name
    redis.call('DEL', NK(name))
    redis.call('HSET', NK(name), 'id', id)
    redis.call('ZREM', TOMBS, name)
  end
  if key then
    f[#f + 1] = 'key'
    f[#f + 1] = key
    redis.call('ZADD', KK(key), seq, id)
  end
  redis.call('HSET', TK(id), unpack(f))
  redis.call('ZADD', IDS, 0, id)
  count(q, A(o + 2), PENDING, 1)
  wake_queue(q)
end
