-- migrate. Brings a store of key layout version 1 to this one, 2: every
-- task's id into the ids index and its count by name into ncounts, then the
-- version key (KEYS[2], which no other script writes) to 2, all in this one
-- script, so no call sees a store half migrated. It walks the database's
-- keys once (SCAN; a cluster node's own), matching the store's task keys: a
-- large store is blocked that long, once. Returns the version the store has after it.
local v = redis.call('GET', KEYS[2])
if v ~= '1' then return v end
local pat = string.gsub(B, '[%*%?%[%]\\]', '\\%0') .. 'task:*'
local cur, by = '0', {}
repeat
  local r = redis.call('SCAN', cur, 'MATCH', pat, 'COUNT', 1000)
  cur = r[1]
  for _, k in ipairs(r[2]) do
    if redis.call('TYPE', k).ok == 'hash' then
      local f = redis.call('HMGET', k, 'id', 'state', 'task')
      if f[1] then redis.call('ZADD', IDS, 0, f[1]) end
      if f[2] and f[3] then
        local c = f[2] .. ':' .. f[3]
        by[c] = (by[c] or 0) + 1
      end
    end
  end
until cur == '0'
for c, n in pairs(by) do redis.call('HINCRBY', NCOUNTS, c, n) end
redis.call('SET', KEYS[2], '2')
return '2'
