-- reserve. ARGV: now, worker, lease_until, max, the "expired" error JSON,
-- queues... For each queue in order: due delayed tasks move to the ready set
-- (up to 1000 a call), then the ready set is taken from its best end: each
-- task becomes STARTED and enters leases in this same script, or, past its
-- expiry, ends REVOKED. A member whose eta is still ahead of now (promoted by
-- a caller whose clock runs ahead) is stepped over. Returns the claimed
-- tasks' hashes in order.
local now, worker, untl, max, experr = N(1), A(2), N(3), N(4), A(5)
local out, leases = {}, {}
local function promote(q)
  local due = redis.call('ZRANGEBYSCORE', DK(q), '-inf', now, 'LIMIT', 0, 1000)
  bulk('ZREM', DK(q), due)
  for _, id in ipairs(due) do
    local h = TK(id)
    local f = redis.call('HMGET', h, 'state', 'priority', 'eta_ms', 'seq')
    if f[1] == PENDING or f[1] == RETRY then
      local m = place_f(id, q, tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), now)
      if m then redis.call('HSET', h, 'qm', m) end
    end
  end
end
local qi = 6
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
      local f = redis.call('HMGET', h, 'state', 'eta_ms', 'expires_ms', 'name', 'attempt',
        'result_ttl_ms')
      local st = f[1]
      if st ~= PENDING and st ~= RETRY then
        rm[#rm + 1] = m
      elseif tonumber(f[2]) > now then
        skip = skip + 1
      else
        rm[#rm + 1] = m
        local exp = tonumber(f[3])
        if exp > 0 and exp <= now then
          finish(id, h, q, st, REVOKED, now, f[6], f[4],
            {'error', experr, 'revoke_requested', '0', 'progress', '-1'},
            {'worker', 'progress_msg'})
        else
          redis.call('HSET', h, 'state', STARTED, 'attempt', I(tonumber(f[5]) + 1),
            'started_ms', I(now), 'worker', worker, 'lease_until_ms', I(untl),
            'revoke_requested', '0', 'progress', '-1')
          redis.call('HDEL', h, 'qm', 'finished_ms', 'progress_msg', 'result_expires_ms')
          leases[#leases + 1] = untl
          leases[#leases + 1] = id
          move(q, st, STARTED)
          out[#out + 1] = redis.call('HGETALL', h)
        end
      end
    end
    bulk('ZREM', RK(q), rm)
  end
end
bulk('ZADD', LEASES, leases)
return out
