-- Shared pacing, load.  KEYS: the state hash.  Returns {TIME seconds, TIME
-- microseconds, HGETALL of the state}.
local t = redis.call('TIME')
return {t[1], t[2], redis.call('HGETALL', KEYS[1])}
