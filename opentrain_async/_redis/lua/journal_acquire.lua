-- Journal lease, acquire.  KEYS: lease, fence, records, written.
-- ARGV: owner, lease_ms, host, pid, machine, since, steal_owner.
-- Returns {1, token} when taken; {0, the holder's HGETALL, its PTTL} when held; {-5}
-- when a run wrote this job's records (``written``, kept as long as the fence) but they
-- are gone before their retention ran out (evicted under a maxmemory policy, or
-- deleted): a new journal would send its delivered inputs again.  ``written`` holds
-- when the records expire (Redis ms, set by each append; '1' from an older run: not
-- known, a loss): gone after that, they expired, and the job starts fresh (a run that
-- died leaves ``written`` persisted, and every later run was refused for ever).
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[7] then
  return {0, redis.call('HGETALL', KEYS[1]), redis.call('PTTL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[4]) == 1 and redis.call('EXISTS', KEYS[3]) == 0 then
  local expires = nil  -- not a string (not ours to read): not known, a loss
  if redis.call('TYPE', KEYS[4]).ok == 'string' then expires = tonumber(redis.call('GET', KEYS[4])) end
  local t = redis.call('TIME')
  if expires == nil or expires <= 1 or t[1] * 1000 + math.floor(t[2] / 1000) < expires then
    return {-5}
  end
  redis.call('DEL', KEYS[4])
end
local token = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token, 'host', ARGV[3],
  'pid', ARGV[4], 'machine', ARGV[5], 'since', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[4])
return {1, token}
