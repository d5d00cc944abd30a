-- ApplyCoupon: ARGV[10] code, ARGV[11] amount. The same code again replaces its amount.
local state, refused = live('next_position')
if refused then return refused end
local code, amount = ARGV[10], ARGV[11]
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
