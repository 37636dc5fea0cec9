-- For the scripts that take many tasks at a time (reserve, maintain, purge;
-- after the prelude and finish.lua).

-- cmd key list...: in chunks, for unpack's limit; step keeps pairs whole
local function bulk(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

-- deletes a task record and its traces (not its name)
local function forget(id, h)
  local f = redis.call('HMGET', h, 'queue', 'state', 'key', 'task')
  if not f[1] then return false end
  if f[3] then redis.call('ZREM', KK(f[3]), id) end
  count(f[1], f[4], f[2], -1)
  redis.call('DEL', h)
  redis.call('ZREM', IDS, id)
  redis.call('ZREM', RESULTS, id)
  redis.call('ZREM', LEASES, id)
  return true
end
