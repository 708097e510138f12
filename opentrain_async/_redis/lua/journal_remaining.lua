-- Journal lease, time left.  KEYS: lease, records, fence(, written).  ARGV: owner.  The lease's
-- time left as Redis counts it (ms); -3 when it is not ours any more (expired, or
-- taken over); -4 when the job is gone (as in journal_append.lua).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0 then return -4 end
  return -3
end
return redis.call('PTTL', KEYS[1])
