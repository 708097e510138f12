-- Journal, append under the lease.  KEYS: lease, records.
-- ARGV: owner, lease_ms, retention_ms, first (1: only into an empty list), record...
-- Returns the list's new length; -1 when the lease is not ours, -2 when ``first`` and
-- the list is not empty; -4 when lease and records are both gone (Redis restarted
-- empty, or was flushed).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
    return -4
  end
  return -1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] == '1' and redis.call('LLEN', KEYS[2]) > 0 then return -2 end
local n = redis.call('RPUSH', KEYS[2], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return n
