-- Journal lease, acquire.  KEYS: lease, fence.
-- ARGV: owner, lease_ms, host, pid, machine, since, steal_owner.
-- Returns {1, token} when taken; {0, the holder's HGETALL, its PTTL} when held.
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[7] then
  return {0, redis.call('HGETALL', KEYS[1]), redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token, 'host', ARGV[3],
  'pid', ARGV[4], 'machine', ARGV[5], 'since', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PERSIST', KEYS[2])
return {1, token}
