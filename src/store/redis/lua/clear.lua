-- Clear: ARGV[10] preserve coupons ('1' or '0'), ARGV[11] reason. Keeps the header and reads no
-- line, so only freeing the lines hash grows with the cart. (DEL, not UNLINK: freeing 250
-- lines inline costs less than waking the lazy-free thread on a busy machine.) Replies the
-- units removed.
local state, refused = live('item_count')
if refused then return refused end
local preserve = ARGV[10] == '1'
if preserve then
  redis.call('DEL', LINES)
else
  redis.call('DEL', LINES, COUPONS)
end
commit(state, {'item_count', 0, 'cleared_at', NOW, 'clear_reason', ARGV[11]})
redis.call('PEXPIRE', META, CART_TTL)
local coupons = {}
if preserve then
  redis.call('PEXPIRE', COUPONS, CART_TTL)
  coupons = redis.call('HGETALL', COUPONS)
end
-- The lines were just deleted: the reply names none.
return {'OK', header(), {}, coupons, tonumber(state[3] or '0')}
