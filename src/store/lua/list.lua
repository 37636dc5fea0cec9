-- list. ARGV: cursor (optional: '-' or '+id'), limit, state, task name and
-- queue (each optional), now, scan. Walks the ids index down from the
-- cursor, newest first, looking at no more than scan entries, and returns
-- {next, record...}: next is the id to go on from (false when the index
-- ends within this page), each record a task hash as HGETALL gives it
-- without its result. A task whose result expired is left out, as get
-- leaves it out; an index entry whose task is gone is stepped over.
local cursor, limit, st, tn, q, now, scan = opt(A(1)), N(2), opt(A(3)), opt(A(4)), opt(A(5)),
  N(6), N(7)
local out, looked, hi, last = {false}, 0, '+', nil
if cursor then hi = '(' .. cursor end
local filtered = st or tn or q
while true do
  local want = limit - #out + 2
  if filtered then want = math.min(scan - looked, 500) end
  if want <= 0 then want = 1 end
  local ids = redis.call('ZREVRANGEBYLEX', IDS, hi, '-', 'LIMIT', 0, want)
  if #ids == 0 then return out end
  for _, id in ipairs(ids) do
    if #out - 1 == limit or looked == scan then
      out[1] = last
      return out
    end
    looked = looked + 1
    last = id
    local h = TK(id)
    local f = redis.call('HMGET', h, 'state', 'task', 'queue', 'result_expires_ms')
    local e = tonumber(f[4])
    if f[1] and (not st or f[1] == st) and (not tn or f[2] == tn) and (not q or f[3] == q)
        and not (e and e <= now) then
      local all, r = redis.call('HGETALL', h), {}
      for i = 1, #all, 2 do
        if all[i] ~= 'result' then
          r[#r + 1] = all[i]
          r[#r + 1] = all[i + 1]
        end
      end
      out[#out + 1] = r
    end
  end
  hi = '(' .. last
end
