-- Enqueue and complete, shared by their single scripts and apply: each is a
-- check against V, the view of what the script's earlier mutations will
-- have done (so a batch checks everything before it writes anything: Redis
-- does not undo a script's writes), and a write.
local V = {tasks = {}, names = {}, keys = {}}

-- a task as the checks see it, or nil: what the writes need too, read once
local function task_read(id)
  local f = redis.call('HMGET', TK(id), 'state', 'attempt', 'ignore_result',
    'result_expires_ms', 'queue', 'name', 'result_ttl_ms', 'priority', 'eta_ms', 'seq',
    'retries')
  if not f[1] then return nil end
  return {state = f[1], attempt = tonumber(f[2]), ignore = f[3] == '1',
    expires = tonumber(f[4]), queue = f[5], name = f[6], ttl = f[7], priority = f[8],
    eta = f[9], seq = f[10], retries = f[11]}
end
local function task_view(id)
  local t = V.tasks[id]
  if t ~= nil then return t end
  return task_read(id)
end

-- ---- records: the REC_FIELDS arguments after offset o (er__rd_args_rec) ----
local function rec_read(o)
  return {id = A(o + 1), task = A(o + 2), queue = A(o + 3), priority = A(o + 4),
    args = A(o + 5), kwargs = A(o + 6), context = opt(A(o + 7)), name = opt(A(o + 8)),
    key = opt(A(o + 9)), created = A(o + 10), eta = A(o + 11), expires = A(o + 12),
    max_retries = A(o + 13), soft = A(o + 14), hard = A(o + 15), ttl = A(o + 16),
    ignore = A(o + 17)}
end

-- a task that a key lookup returns at time at: queued, running, or succeeded
-- with its result kept
local function live(id, at)
  local t = task_view(id)
  if not t then return false end
  if t.state == PENDING or t.state == STARTED or t.state == RETRY then return true end
  return t.state == SUCCESS and not t.ignore and (not t.expires or t.expires > at)
end

-- ---- enqueue ------------------------------------------------------------------
-- Checks record r (flags: ER_ENQ_IF_ABSENT in bit 0; tomb: tombstone_ms).
-- Returns nil, or an error name and message. Sets r.found to the live task
-- the key rule returned instead.
local function enq_check(r, flags, tomb)
  local created = tonumber(r.created)
  if flags % 2 == 1 and r.key then
    local hit = V.keys[r.key]
    if hit and not live(hit, created) then hit = nil end
    if not hit then
      for _, k in ipairs(redis.call('ZREVRANGE', KK(r.key), 0, -1)) do
        if live(k, created) then hit = k break end
      end
    end
    if hit then
      r.found = hit
      return nil
    end
  end
  if r.name then
    local holder, fin
    local nv = V.names[r.name]
    if nv then
      holder, fin = nv.id, nv.finished
    else
      local f = redis.call('HMGET', NK(r.name), 'id', 'finished_ms')
      holder, fin = f[1], tonumber(f[2])
    end
    if holder and not fin then
      return 'EEXIST', "task name '" .. r.name .. "' is taken by a task that has not finished"
    end
    if fin and created < fin + tomb then
      return 'ETOMBSTONED', "task name '" .. r.name .. "' is tombstoned: its task finished " ..
        I(created - fin) .. ' ms ago and names stay taken for ' .. I(tomb) .. ' ms'
    end
    V.names[r.name] = {id = r.id}
  end
  if V.tasks[r.id] or redis.call('EXISTS', TK(r.id)) == 1 then
    return 'EEXIST', 'task id ' .. r.id .. ' already exists'
  end
  V.tasks[r.id] = {state = PENDING, attempt = 0}
  if r.key then V.keys[r.key] = r.id end
  return nil
end

-- The first of n new sequence numbers, less one.
local function seq_take(n)
  if n == 0 then return 0 end
  return redis.call('INCRBY', SEQ, n) - n
end

-- Writes checked record r (not found by its key) with sequence number seq.
local function enq_write(r, seq)
  local id, q = r.id, r.queue
  local f = {'id', id, 'task', r.task, 'queue', q, 'priority', r.priority,
    'state', PENDING, 'args', r.args, 'kwargs', r.kwargs, 'created_ms', r.created,
    'eta_ms', r.eta, 'expires_ms', r.expires, 'attempt', '0', 'retries', '0',
    'max_retries', r.max_retries, 'soft_limit_ms', r.soft, 'hard_limit_ms', r.hard,
    'result_ttl_ms', r.ttl, 'ignore_result', r.ignore, 'revoke_requested', '0',
    'progress', '-1', 'seq', I(seq)}
  local m = place_f(id, q, tonumber(r.priority), tonumber(r.eta), seq, tonumber(r.created))
  if m then f[#f + 1] = 'qm' f[#f + 1] = m end
  if r.context then f[#f + 1] = 'context' f[#f + 1] = r.context end
  if r.name then
    f[#f + 1] = 'name'
    f[#f + 1] = r.name
    redis.call('DEL', NK(r.name))
    redis.call('HSET', NK(r.name), 'id', id)
    redis.call('ZREM', TOMBS, r.name)
  end
  if r.key then
    f[#f + 1] = 'key'
    f[#f + 1] = r.key
    redis.call('ZADD', KK(r.key), seq, id)
  end
  redis.call('HSET', TK(id), unpack(f))
  count(q, PENDING, 1)
  wake_queue(q)
end

-- ---- complete -----------------------------------------------------------------
-- An outcome: the DONE_FIELDS arguments after offset o (er__rd_args_done).
local function done_read(o)
  return {id = A(o + 1), att = N(o + 2), st = A(o + 3), res = opt(A(o + 4)),
    err = opt(A(o + 5)), reta = N(o + 6), now = N(o + 7)}
end

-- Whether outcome c's attempt still owns its task (else it is fenced).
local function done_check(c)
  local t = task_view(c.id)
  if not t or t.state ~= STARTED or t.attempt ~= c.att then return false end
  c.t = t
  local after = {state = c.st, attempt = c.att, ignore = t.ignore}
  if c.st == SUCCESS or c.st == FAILURE or c.st == REVOKED then
    if c.st == SUCCESS then after.expires = result_expiry(t.ttl, c.now) end
    if t.name then V.names[t.name] = {id = c.id, finished = c.now} end
  end
  V.tasks[c.id] = after
  return true
end

-- Writes checked outcome c: SUCCESS, FAILURE and REVOKED finish the task;
-- RETRY queues it again at its retry eta, one more retry counted; PENDING
-- gives it back to its queue. (No earlier mutation of the script changed
-- the task: a second outcome for it is fenced.)
local function done_write(c)
  local id, st, now, t = c.id, c.st, c.now, c.t
  local h, q = TK(id), t.queue
  local sets, dels = {}, {}
  redis.call('ZREM', LEASES, id)
  if st == PENDING or st == RETRY then
    local eta = tonumber(t.eta)
    sets = {'state', st}
    dels = {'worker', 'lease_until_ms'}
    if st == RETRY then
      eta = c.reta
      sets[3], sets[4], sets[5], sets[6] = 'eta_ms', I(c.reta), 'retries', I(tonumber(t.retries) + 1)
      if c.err then sets[#sets + 1] = 'error' sets[#sets + 1] = c.err
      else dels[#dels + 1] = 'error' end
    end
    local m = place_f(id, q, tonumber(t.priority), eta, tonumber(t.seq), now)
    if m then sets[#sets + 1] = 'qm' sets[#sets + 1] = m end
    redis.call('HSET', h, unpack(sets))
    redis.call('HDEL', h, unpack(dels))
    move(q, STARTED, st)
    wake_queue(q)
  else
    if c.res and not t.ignore then sets[#sets + 1] = 'result' sets[#sets + 1] = c.res
    else dels[#dels + 1] = 'result' end
    if c.err then sets[#sets + 1] = 'error' sets[#sets + 1] = c.err
    else dels[#dels + 1] = 'error' end
    finish(id, h, q, STARTED, st, now, t.ttl, t.name, sets, dels)
  end
end
