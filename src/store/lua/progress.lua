-- progress. ARGV: id, attempt, progress, message (optional). Returns 0 when
-- fenced.
local h = TK(A(1))
local f = redis.call('HMGET', h, 'state', 'attempt')
if f[1] ~= STARTED or tonumber(f[2]) ~= N(2) then return 0 end
redis.call('HSET', h, 'progress', A(3))
local m = opt(A(4))
if m then redis.call('HSET', h, 'progress_msg', m) else redis.call('HDEL', h, 'progress_msg') end
return 1
