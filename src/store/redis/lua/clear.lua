-- Clear: ARGV[8] preserve coupons ('1' or '0'), ARGV[9] reason. Keeps the header; costs the
-- same for any number of lines but for freeing the lines hash. Replies the units removed.
local refused = check_live()
if refused then return refused end
local cleared = tonumber(redis.call('HGET', META, 'item_count') or '0')
redis.call('DEL', LINES)
if ARGV[8] ~= '1' then redis.call('DEL', COUPONS) end
redis.call('HSET', META, 'item_count', 0, 'cleared_at', NOW, 'clear_reason', ARGV[9])
commit(CART_TTL)
return snapshot(cleared)
