-- renew. ARGV: lease_until, n, then id, attempt for each. Returns per task
-- -1 (fenced) or its revoke_requested.
local untl, n = N(1), N(2)
local out = {}
for i = 0, n - 1 do
  local id, att = A(3 + 2 * i), N(4 + 2 * i)
  local h = TK(id)
  local f = redis.call('HMGET', h, 'state', 'attempt', 'revoke_requested')
  if f[1] == STARTED and tonumber(f[2]) == att then
    redis.call('HSET', h, 'lease_until_ms', I(untl))
    redis.call('ZADD', LEASES, untl, id)
    out[i + 1] = tonumber(f[3]) or 0
  else
    out[i + 1] = -1
  end
end
return out
