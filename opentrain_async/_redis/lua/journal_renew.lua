-- Journal lease, renew.  KEYS: lease, records, fence(, written).  ARGV: owner, lease_ms.
-- 1: renewed; 0: not ours; -4: the job is gone (as in journal_append.lua).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0 then return -4 end
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
