-- Journal, append under the lease.  KEYS: lease, records, fence, written.
-- ARGV: owner, lease_ms, retention_ms, first (1: only into an empty list), record...
-- Returns the list's new length; -1 when the lease is not ours, -2 when ``first`` and
-- the list is not empty; -4 when the job is gone (Redis restarted empty, or was
-- flushed).  Gone, in every journal script: lease, records and fence all missing (the
-- fence lives as long as the job; a lease that merely expired leaves it).  Also -4 when
-- the records alone are missing after the header (evicted under a maxmemory policy, or
-- deleted): appending would start a list without its header or its earlier records.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0 then return -4 end
  return -1
end
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2]) == 0 then return -4 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] == '1' and redis.call('LLEN', KEYS[2]) > 0 then return -2 end
local n = redis.call('RPUSH', KEYS[2], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
-- ``written``: when the records expire (Redis ms), see acquire.
local t = redis.call('TIME')
redis.call('SET', KEYS[4], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3]))
return n
