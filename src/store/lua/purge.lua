-- purge. ARGV: '1' for every queue or '0', the queue, now, limit. Deletes up
-- to limit queued tasks (their names stay tombstoned) and returns how many;
-- the caller repeats while a whole limit went, so that no one script runs
-- long. The queues with queued tasks are those with a PENDING or RETRY count.
-- Waiters on the purged tasks hear of them on the finished channel: they
-- are gone.
local now, limit = N(3), N(4)
local qs = {}
if A(1) == '1' then
  for _, f in ipairs(redis.call('HKEYS', COUNTS)) do
    local st = string.sub(f, 1, 2)
    if st == PENDING .. ':' or st == RETRY .. ':' then qs[string.sub(f, 3)] = true end
  end
else
  qs[A(2)] = true
end
local removed = 0
for q, _ in pairs(qs) do
  for _, z in ipairs({RK(q), DK(q)}) do
    while removed < limit do
      local ms = redis.call('ZRANGE', z, 0, limit - removed - 1)
      if #ms == 0 then break end
      for _, m in ipairs(ms) do
        redis.call('ZREM', z, m)
        local id = m
        if z == RK(q) then id = string.sub(m, 33) end
        local h = TK(id)
        local f = redis.call('HMGET', h, 'state', 'name')
        if f[1] == PENDING or f[1] == RETRY then
          tombstone(f[2], id, now)
          forget(id, h)
          removed = removed + 1
          WFIN = wake_id(WFIN, id)
        end
      end
    end
  end
end
return removed
