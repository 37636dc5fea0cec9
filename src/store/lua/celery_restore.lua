-- Celery: what kombu's restore_visible does, in one script: messages in
-- `unacked` whose unacked_index time is older than the visibility timeout
-- (their consumer died, or holds them too long) go back to the list they
-- came from: the queues bound to their exchange and routing key
-- (_kombu.binding.EXCHANGE), the priority sub-list of their priority.
-- ARGV: unacked, unacked_index, now (seconds), visibility timeout (seconds),
-- at most this many. Returns how many went back.
local UN, IX, now, vis, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local SEP = '\6\22'
local tags = redis.call('ZRANGEBYSCORE', IX, '-inf', now - vis, 'LIMIT', 0, limit)
local function queues(ex, rk)
  local qs = {}
  if ex ~= '' then
    for _, b in ipairs(redis.call('SMEMBERS', '_kombu.binding.' .. ex)) do
      local a = string.find(b, SEP, 1, true)
      local c = a and string.find(b, SEP, a + 2, true)
      if a and c and string.sub(b, 1, a - 1) == rk then qs[#qs + 1] = string.sub(b, c + 2) end
    end
  end
  if #qs == 0 then qs[1] = rk end
  return qs
end
local function step(p)
  local s = 0
  for _, x in ipairs({0, 3, 6, 9}) do if p >= x then s = x end end
  return s
end
local n = 0
for _, tag in ipairs(tags) do
  local v = redis.call('HGET', UN, tag)
  redis.call('HDEL', UN, tag)
  redis.call('ZREM', IX, tag)
  local ok, d = pcall(cjson.decode, v or '')
  if ok and type(d) == 'table' and type(d[1]) == 'table' then
    local ex, rk = tostring(d[2] or ''), tostring(d[3] or '')
    -- the message's own text when this is how it was written, not a re-encoding
    local suffix = ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']'
    local msg
    if string.sub(v, -#suffix) == suffix then
      msg = string.sub(v, 2, #v - #suffix)
    else
      msg = cjson.encode(d[1])
    end
    local p = type(d[1].properties) == 'table' and tonumber(d[1].properties.priority) or 0
    local s = step(p or 0)
    for _, q in ipairs(queues(ex, rk)) do
      if s > 0 then q = q .. SEP .. s end
      redis.call('RPUSH', q, msg)
    end
    n = n + 1
  end
end
return n
