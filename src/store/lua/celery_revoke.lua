-- Celery: revoked ids kept (src/celery/revoked.c). ARGV: the sorted set, the
-- oldest score kept, how many kept, then when, id for each. A revoke already
-- known keeps the later time; older and surplus ones are trimmed.
local key = ARGV[1]
for i = 4, #ARGV, 2 do redis.call('ZADD', key, 'GT', ARGV[i], ARGV[i + 1]) end
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', key, 0, -tonumber(ARGV[3]) - 1)
return 0
