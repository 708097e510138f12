-- Journal lease, time left.  KEYS: lease.  ARGV: owner.  The lease's time left as
-- Redis counts it (ms); -3 when it is not ours any more (expired, or taken over).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -3 end
return redis.call('PTTL', KEYS[1])
