-- documents and counters, read. ARGV: what, coll, then
--   'g' key            -> {value, version} or false
--   'l' after limit    -> {key, value, version, ...} of up to limit documents
--                         whose keys sort after `after` ('' : from the first)
--   'c' key            -> the counter as integer text ('0' when absent)
local what, coll = A(1), A(2)
if what == 'g' then
  local f = redis.call('HMGET', DOCK(coll, A(3)), 'value', 'version')
  if not f[1] then return false end
  return f
elseif what == 'l' then
  local from = '-'
  if A(3) ~= '' then from = '(' .. A(3) end
  local out = {}
  for _, k in ipairs(redis.call('ZRANGEBYLEX', DXK(coll), from, '+', 'LIMIT', 0, N(4))) do
    local f = redis.call('HMGET', DOCK(coll, k), 'value', 'version')
    if f[1] then
      out[#out + 1] = k
      out[#out + 1] = f[1]
      out[#out + 1] = f[2]
    end
  end
  return out
end
return redis.call('HGET', CTRK(coll), A(3)) or '0'
