-- Remove: every key of the cart goes. Replies the units it held.
local state, refused = live('item_count')
if refused then return refused end
redis.call('DEL', META, LINES, COUPONS)
return {'OK', tonumber(state[3] or '0')}
