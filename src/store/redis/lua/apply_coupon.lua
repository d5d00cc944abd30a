-- ApplyCoupon: ARGV[4] code, ARGV[5] amount. The same code again replaces its amount.
-- Flags: none (not `allow-oom`): a new coupon grows the cart, so a full Redis refuses it.
local state, refused = live('next_position')
if refused then return refused end
local code, amount = ARGV[4], ARGV[5]
local existing = redis.call('HGET', COUPONS, code)
local fields = {}
if existing then
  redis.call('HSET', COUPONS, code, string.match(existing, '^(%d+)|') .. '|' .. amount)
else
  if redis.call('HLEN', COUPONS) >= MAX_COUPONS then return fail('COUPON_LIMIT_EXCEEDED') end
  local position = tonumber(state[3])
  redis.call('HSET', COUPONS, code, position .. '|' .. amount)
  fields = {'next_position', position + 1}
end
commit(state, fields)
expire_all(CART_TTL)
return snapshot()
