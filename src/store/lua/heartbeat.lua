-- heartbeat. ARGV: id, info JSON, expires.
redis.call('HSET', WORKERS, A(1), A(2))
redis.call('ZADD', WEXP, N(3), A(1))
return 1
