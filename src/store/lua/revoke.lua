-- revoke. ARGV: id, now, error JSON. Returns the state it had, or -1 when
-- unknown. A queued task ends REVOKED; a running one gets revoke_requested,
-- and the control channel hears of it.
-- the queued task out of both sets
local function unplace(id, h, q)
  local m = redis.call('HGET', h, 'qm')
  if m then redis.call('ZREM', RK(q), m) end
  redis.call('ZREM', DK(q), id)
  redis.call('HDEL', h, 'qm')
end

local id, now = A(1), N(2)
local h = TK(id)
local f = redis.call('HMGET', h, 'state', 'queue', 'name', 'result_ttl_ms', 'task')
if not f[1] then return -1 end
if f[1] == PENDING or f[1] == RETRY then
  unplace(id, h, f[2])
  finish(id, h, f[2], f[5], f[1], REVOKED, now, f[4], f[3], {'error', A(3)}, {})
elseif f[1] == STARTED then
  redis.call('HSET', h, 'revoke_requested', '1')
  WCTL = wake_id(WCTL, id)
end
return tonumber(f[1])
