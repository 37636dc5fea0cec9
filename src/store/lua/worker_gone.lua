-- worker_gone. ARGV: id.
redis.call('HDEL', WORKERS, A(1))
redis.call('ZREM', WEXP, A(1))
return 1
