-- Get: a live cart's lifetime restarts now; a tombstone keeps its own expiry.
local status = redis.call('HGET', META, 'status')
if not status then return fail('CART_NOT_FOUND') end
if status == 'active' then
  redis.call('HSET', META, 'last_activity_at', NOW)
  expire_all(CART_TTL)
end
return snapshot()
