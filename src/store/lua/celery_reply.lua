-- Celery: a remote control reply, published as kombu's Redis transport
-- publishes to a direct exchange: pushed on each queue bound to it with the
-- reply's routing key. ARGV: the exchange's binding set
-- (_kombu.binding.EXCHANGE, members "key\6\22pattern\6\22queue"), the
-- routing key, the message. Returns how many queues got it.
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', ARGV[1])) do
  local key, queue = string.match(m, '^(.-)\6\22.-\6\22(.*)$')
  if key == ARGV[2] and queue then
    redis.call('LPUSH', queue, ARGV[3])
    n = n + 1
  end
end
return n
