-- Shared pacing, store.  KEYS: the state hash.  ARGV = expected version, ttl_ms,
-- field, value, ...  Writes only if the version is unchanged since the load (hand_back:
-- only into an empty key); returns 1, else 0.
local key = KEYS[1]
if (redis.call('HGET', key, 'v') or '0') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', key, 'v', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[2]))
return 1
