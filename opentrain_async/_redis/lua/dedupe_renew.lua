-- Webhook dedupe, renew.  KEYS: the event's key.  ARGV: the claim's token, ttl in ms.
-- Extends the claim only if this claim still holds it (not settled, not expired, not
-- taken by another replica after it lapsed), atomically.  1: renewed; 0: not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
