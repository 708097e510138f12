-- Journal lease, release.  KEYS: lease, records, fence, written.  ARGV: owner,
-- retention_ms.  1: released (records, fence and written then expire after the
-- retention); 0: not ours.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  -- ``written`` says when the records expire (see journal_acquire.lua): now later
  local t = redis.call('TIME')
  redis.call('SET', KEYS[4], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]))
end
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
return 1
