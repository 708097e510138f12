-- Webhook dedupe, release.  KEYS: the event's key.  ARGV: the claim's token.
-- Deletes the key only if this claim still holds it, atomically.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
