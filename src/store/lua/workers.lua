-- workers. ARGV: now. Returns the live workers' info, by id.
local ids = redis.call('ZRANGEBYSCORE', WEXP, '(' .. I(N(1)), '+inf')
table.sort(ids)
local out = {}
for _, id in ipairs(ids) do
  local info = redis.call('HGET', WORKERS, id)
  if info then out[#out + 1] = info end
end
return out
