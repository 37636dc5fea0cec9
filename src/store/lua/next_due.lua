-- next_due. ARGV: queues... Returns, as integer text, the earliest eta in the
-- queues' delayed sets and the earliest lease end of any queue; '0' when
-- there is neither. Read-only.
local best = nil
local function consider(z)
  local r = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if r[2] then
    local v = tonumber(r[2])
    if not best or v < best then best = v end
  end
end
consider(LEASES)
local i = 1
while A(i) do
  consider(DK(A(i)))
  i = i + 1
end
if not best then return '0' end
return I(best)
