-- Get: a live cart's lifetime restarts now; a tombstone keeps its own expiry.
-- Flags: `allow-oom`, so a full Redis still answers Get: besides reading, it only
-- overwrites last_activity_at with a timestamp of the same width and re-arms the TTLs of keys
-- that exist, which adds nothing. The lifetime refresh therefore keeps working when full.
local status = redis.call('HGET', META, 'status')
if not status then return fail('CART_NOT_FOUND') end
if status == 'active' or status == 'frozen' or status == 'merging' then
  redis.call('HSET', META, 'last_activity_at', NOW)
  expire_all(CART_TTL)
end
return snapshot()
