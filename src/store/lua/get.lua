-- get. ARGV: 'i' or 'k', the id or key, now. A finished task whose result
-- expired reads as gone even before maintain deletes it.
local now = N(3)
local function visible(id)
  local h = TK(id)
  local e = redis.call('HGET', h, 'result_expires_ms')
  if e and tonumber(e) <= now then return nil end
  local r = redis.call('HGETALL', h)
  if #r == 0 then return nil end
  return r
end
if A(1) == 'i' then return visible(A(2)) or false end
for _, id in ipairs(redis.call('ZREVRANGE', KK(A(2)), 0, -1)) do
  local r = visible(id)
  if r then return r end
end
return false
