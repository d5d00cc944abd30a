-- Remove: every key of the cart goes. Replies the units it held.
local refused = check_live()
if refused then return refused end
local units = tonumber(redis.call('HGET', META, 'item_count') or '0')
redis.call('DEL', META, LINES, COUPONS)
return {'OK', units}
