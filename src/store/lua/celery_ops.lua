-- Celery: a batch of the worker's writes, applied together. ARGV: unacked,
-- unacked_index, the set-aside list, delayed hash, delayed set, now
-- (seconds), then operations, each a name and its fields:
--   ack TAG                 the message is done: out of unacked (1 if it was in)
--   touch TAG               still running: its unacked_index time is now (1 if
--                           it is still ours, 0 when it was restored)
--   set KEY VALUE TTL       a result: SET (SETEX when TTL > 0) and PUBLISH, as
--                           Celery's Redis backend writes it
--   push LIST MESSAGE       publish (LPUSH, as kombu does)
--   back TAG LIST MESSAGE   give back: out of unacked, next in its list
--   aside TAG MESSAGE       out of unacked (if in), kept in the set-aside list
--   defer TAG LIST ETA MESSAGE  out of unacked, into the delayed set until ETA
--   join TAG J T S INDEX VALUE TTL  a chord part: ZADD J INDEX VALUE
--                           (Celery's ordered chords; a part run again
--                           replaces its earlier one) and ack TAG, 0; when
--                           the count reaches S's size plus T, the parts in
--                           order, and TAG stays unacked (the caller sends the
--                           callback with joined; if it cannot, the message
--                           comes back and its run joins again)
--   joined TAG J T S        the callback is sent: ack TAG, delete J, T and S
-- Returns one result per operation.
local UN, IX, ASIDE, DH, DZ, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local out, i = {}, 7
local function unack(tag)
  local had = redis.call('HDEL', UN, tag)
  redis.call('ZREM', IX, tag)
  return had
end
while ARGV[i] do
  local op = ARGV[i]
  if op == 'ack' then
    out[#out + 1] = unack(ARGV[i + 1])
    i = i + 2
  elseif op == 'touch' then
    local has = redis.call('HEXISTS', UN, ARGV[i + 1])
    if has == 1 then redis.call('ZADD', IX, now, ARGV[i + 1]) end
    out[#out + 1] = has
    i = i + 2
  elseif op == 'set' then
    local ttl = tonumber(ARGV[i + 3])
    if ttl > 0 then
      redis.call('SETEX', ARGV[i + 1], ttl, ARGV[i + 2])
    else
      redis.call('SET', ARGV[i + 1], ARGV[i + 2])
    end
    redis.call('PUBLISH', ARGV[i + 1], ARGV[i + 2])
    out[#out + 1] = 0
    i = i + 4
  elseif op == 'push' then
    redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
    out[#out + 1] = 0
    i = i + 3
  elseif op == 'back' then
    local had = unack(ARGV[i + 1])
    if had == 1 then redis.call('RPUSH', ARGV[i + 2], ARGV[i + 3]) end
    out[#out + 1] = had
    i = i + 4
  elseif op == 'aside' then
    out[#out + 1] = unack(ARGV[i + 1])
    redis.call('LPUSH', ASIDE, ARGV[i + 2])
    i = i + 3
  elseif op == 'defer' then
    local tag = ARGV[i + 1]
    local had = unack(tag)
    if had == 1 then
      redis.call('HSET', DH, tag, ARGV[i + 2] .. '\n' .. ARGV[i + 4])
      redis.call('ZADD', DZ, tonumber(ARGV[i + 3]), tag)
    end
    out[#out + 1] = had
    i = i + 5
  elseif op == 'join' then
    local tag, J, T, S = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local idx, ttl = ARGV[i + 5], tonumber(ARGV[i + 7])
    if tonumber(idx) then redis.call('ZREMRANGEBYSCORE', J, idx, idx) end
    redis.call('ZADD', J, idx, ARGV[i + 6])
    local n = redis.call('ZCARD', J)
    local t, s = redis.call('GET', T), redis.call('GET', S)
    if ttl > 0 then
      redis.call('EXPIRE', J, ttl)
      redis.call('EXPIRE', T, ttl)
      redis.call('EXPIRE', S, ttl)
    end
    if s and n == tonumber(s) + (tonumber(t) or 0) then
      out[#out + 1] = redis.call('ZRANGE', J, 0, -1)
    else
      unack(tag)
      out[#out + 1] = 0
    end
    i = i + 8
  elseif op == 'joined' then
    out[#out + 1] = unack(ARGV[i + 1])
    redis.call('DEL', ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    i = i + 5
  else
    return redis.error_reply('celery_ops: unknown operation ' .. op)
  end
end
return out
