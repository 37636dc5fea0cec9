-- maintain. ARGV: now, tombstone_ms, limit, the "revoked" error JSON, the
-- "cannot be decoded" error JSON.
-- Tasks whose lease ended go back to their queue (or end REVOKED when a
-- revoke was asked for; or FAILURE when their record has no numbers to
-- queue them by: a foreign writer); expired results and their tasks, expired
-- tombstones and workers go. Returns {requeued, expired results}.
local now, tomb, limit, rerr, baderr = N(1), N(2), N(3), A(4), A(5)
local requeued, expired = 0, 0
local lost = redis.call('ZRANGEBYSCORE', LEASES, '-inf', '(' .. I(now), 'LIMIT', 0, limit)
local gone = {}
for _, id in ipairs(lost) do
  local h = TK(id)
  local f = redis.call('HMGET', h, 'state', 'revoke_requested', 'queue', 'name',
    'lease_until_ms', 'result_ttl_ms', 'priority', 'eta_ms', 'seq', 'task')
  if f[1] ~= STARTED then
    gone[#gone + 1] = id
  elseif (tonumber(f[5] or '0') or 0) >= now then
    redis.call('ZADD', LEASES, tonumber(f[5]), id)
  else
    gone[#gone + 1] = id
    local prio, eta, seq = tonumber(f[7]), tonumber(f[8]), tonumber(f[9])
    if f[2] == '1' then
      finish(id, h, f[3], f[10], STARTED, REVOKED, now, f[6], f[4], {'error', rerr}, {})
    elseif not (prio and eta and seq) then
      local field = (not prio and 'priority') or (not eta and 'eta_ms') or 'seq'
      finish_undecodable(id, h, f[3], f[10], STARTED, now, f[6], f[4], baderr,
        field .. ': not a number')
    else
      local m = place_f(id, f[3], prio, eta, seq, now)
      if m then redis.call('HSET', h, 'state', PENDING, 'qm', m)
      else redis.call('HSET', h, 'state', PENDING) end
      redis.call('HDEL', h, 'worker', 'lease_until_ms')
      move(f[3], f[10], STARTED, PENDING)
      wake_queue(f[3])
      requeued = requeued + 1
    end
  end
end
bulk('ZREM', LEASES, gone)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', RESULTS, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', RESULTS, id)
  local h = TK(id)
  local e = redis.call('HGET', h, 'result_expires_ms')
  if e and tonumber(e) <= now then
    forget(id, h)
    expired = expired + 1
  end
end
local cut = now - tomb
for _, name in ipairs(redis.call('ZRANGEBYSCORE', TOMBS, '-inf', cut, 'LIMIT', 0, limit)) do
  redis.call('ZREM', TOMBS, name)
  local fin = redis.call('HGET', NK(name), 'finished_ms')
  if fin and tonumber(fin) <= cut then redis.call('DEL', NK(name)) end
end
for _, w in ipairs(redis.call('ZRANGEBYSCORE', WEXP, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', WEXP, w)
  redis.call('HDEL', WORKERS, w)
end
return {requeued, expired}
