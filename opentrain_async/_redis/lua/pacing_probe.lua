-- Shared pacing, probe.  KEYS: a probe key.  ARGV: ttl_ms.  A write Redis refuses
-- when full (OOM) or a read-only replica, as it would refuse the other scripts; a probe
-- that only read would rejoin into the next refusal.
redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[1]))
return 1
