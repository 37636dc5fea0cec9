-- reserve. ARGV: now, worker, lease_until, max, the "expired" error JSON, the
-- "cannot be decoded" error JSON, queues... For each queue in order: due
-- delayed tasks move to the ready set (up to 1000 a call), then the ready
-- set is taken from its best end: each task becomes STARTED and enters
-- leases in this same script, or, past its expiry, ends REVOKED. A member
-- whose eta is still ahead of now (promoted by a caller whose clock runs
-- ahead) is stepped over. A task whose record this script cannot compute
-- with (a number that is not one, no task name, an unknown state: an older
-- writer, a foreign script) ends FAILURE here, saying why, instead of
-- failing every reserve after it. Returns the claimed tasks' hashes in
-- order (their JSON is checked by the caller, which fails what does not
-- decode, fenced by the attempt).
local now, worker, untl, max, experr, baderr = N(1), A(2), N(3), N(4), A(5), A(6)
local out, leases = {}, {}
-- the fields read of each task (HMGET), and which must be integers
local FIELDS = {'state', 'eta_ms', 'expires_ms', 'name', 'attempt', 'result_ttl_ms',
  'priority', 'seq', 'retries', 'task', 'id'}
local INTS = {2, 3, 5, 6, 7, 8, 9}
local KNOWN = {[PENDING] = true, [STARTED] = true, [RETRY] = true, [SUCCESS] = true,
  [FAILURE] = true, [REVOKED] = true}
-- why the task with fields f cannot be reserved, or nil (also for a task
-- gone, or in a known state that is not queued: its member is stale)
local function bad(f, id)
  if not f[1] then return nil end
  if not KNOWN[f[1]] then return 'state: unknown value' end
  if f[1] ~= PENDING and f[1] ~= RETRY then return nil end
  for _, i in ipairs(INTS) do
    if not f[i] then return FIELDS[i] .. ': missing' end
    if not string.match(f[i], '^%-?%d+$') then return FIELDS[i] .. ': not a number' end
  end
  if not f[10] or f[10] == '' then return 'task: missing' end
  if f[11] ~= id then return 'id: missing' end
  return nil
end
-- ends the task FAILURE with the reason; counted as leaving the state it
-- holds, or PENDING when that is unknown (a queue's sets hold only PENDING
-- and RETRY tasks)
local function poison(id, h, q, f, why)
  local from = (f[1] == RETRY) and RETRY or PENDING
  finish_undecodable(id, h, q, f[10], from, now, f[6], f[4], baderr, why)
end
local function promote(q)
  local due = redis.call('ZRANGEBYSCORE', DK(q), '-inf', now, 'LIMIT', 0, 1000)
  bulk('ZREM', DK(q), due)
  for _, id in ipairs(due) do
    local h = TK(id)
    local f = redis.call('HMGET', h, unpack(FIELDS))
    local why = bad(f, id)
    if why then
      poison(id, h, q, f, why)
    elseif f[1] == PENDING or f[1] == RETRY then
      local m = place_f(id, q, tonumber(f[7]), tonumber(f[2]), tonumber(f[8]), now)
      if m then redis.call('HSET', h, 'qm', m) end
    end
  end
end
local qi = 7
while A(qi) and #out < max do
  local q = A(qi)
  qi = qi + 1
  promote(q)
  local skip, looked = 0, 0
  while #out < max and looked < 1000 do
    local ms = redis.call('ZRANGE', RK(q), skip, skip + max - #out - 1)
    if #ms == 0 then break end
    local rm = {}
    for _, m in ipairs(ms) do
      looked = looked + 1
      local id = string.sub(m, 33)
      local h = TK(id)
      local f = redis.call('HMGET', h, unpack(FIELDS))
      local st = f[1]
      local why = bad(f, id)
      if why then
        rm[#rm + 1] = m
        poison(id, h, q, f, why)
      elseif st ~= PENDING and st ~= RETRY then
        rm[#rm + 1] = m
      elseif tonumber(f[2]) > now then
        skip = skip + 1
      else
        rm[#rm + 1] = m
        local exp = tonumber(f[3])
        if exp > 0 and exp <= now then
          finish(id, h, q, f[10], st, REVOKED, now, f[6], f[4],
            {'error', experr, 'revoke_requested', '0', 'progress', '-1'},
            {'worker', 'progress_msg'})
        else
          redis.call('HSET', h, 'state', STARTED, 'attempt', I(tonumber(f[5]) + 1),
            'started_ms', I(now), 'worker', worker, 'lease_until_ms', I(untl),
            'revoke_requested', '0', 'progress', '-1')
          redis.call('HDEL', h, 'qm', 'finished_ms', 'progress_msg', 'result_expires_ms')
          leases[#leases + 1] = untl
          leases[#leases + 1] = id
          move(q, f[10], st, STARTED)
          out[#out + 1] = redis.call('HGETALL', h)
        end
      end
    end
    bulk('ZREM', RK(q), rm)
  end
end
bulk('ZADD', LEASES, leases)
return out
