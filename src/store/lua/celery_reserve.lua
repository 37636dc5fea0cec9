-- Celery: take up to max messages, as kombu's Redis transport delivers them
-- but in one step: each leaves its list and enters the `unacked` hash (value
-- [message, exchange, routing_key]) and `unacked_index` (score: the time) in
-- this script, so no message is ever only in a worker's memory. Messages
-- whose eta came in errand's delayed set are taken first.
-- ARGV: now (seconds), max, unacked, unacked_index, delayed hash, delayed
-- set, the set-aside list, then the lists in order of priority.
-- Returns list, tag, message per message taken (tag "" when it has none: it
-- went to the set-aside list).
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local UN, IX, DH, DZ, ASIDE = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local out, n = {}, 0
local function take(list, msg)
  n = n + 1
  local ok, m = pcall(cjson.decode, msg)
  local p = ok and type(m) == 'table' and m.properties
  local tag = type(p) == 'table' and p.delivery_tag
  if type(tag) ~= 'string' or tag == '' then
    redis.call('LPUSH', ASIDE, msg)
    tag = ''
  else
    local di = type(p.delivery_info) == 'table' and p.delivery_info or {}
    local ex = type(di.exchange) == 'string' and di.exchange or ''
    local rk = type(di.routing_key) == 'string' and di.routing_key or list
    redis.call('HSET', UN, tag, '[' .. msg .. ', ' .. cjson.encode(ex) .. ', ' ..
      cjson.encode(rk) .. ']')
    redis.call('ZADD', IX, now, tag)
  end
  out[#out + 1] = list
  out[#out + 1] = tag
  out[#out + 1] = msg
end
local due = redis.call('ZRANGEBYSCORE', DZ, '-inf', now, 'LIMIT', 0, max)
for _, tag in ipairs(due) do
  local v = redis.call('HGET', DH, tag)
  redis.call('ZREM', DZ, tag)
  redis.call('HDEL', DH, tag)
  if v then
    local nl = string.find(v, '\n', 1, true)
    take(string.sub(v, 1, nl - 1), string.sub(v, nl + 1))
  end
end
for i = 8, #ARGV do
  if n >= max then break end
  local ms = redis.call('RPOP', ARGV[i], max - n)
  if ms then
    for _, m in ipairs(ms) do take(ARGV[i], m) end
  end
end
return out
