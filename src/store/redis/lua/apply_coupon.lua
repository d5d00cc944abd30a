-- ApplyCoupon: ARGV[8] code, ARGV[9] amount. The same code again replaces its amount.
local refused = check_live()
if refused then return refused end
local code, amount = ARGV[8], ARGV[9]
local existing = redis.call('HGET', COUPONS, code)
if existing then
  redis.call('HSET', COUPONS, code, string.match(existing, '^(%d+)|') .. '|' .. amount)
else
  if redis.call('HLEN', COUPONS) >= MAX_COUPONS then return fail('COUPON_LIMIT_EXCEEDED') end
  local position = redis.call('HINCRBY', META, 'next_position', 1) - 1
  redis.call('HSET', COUPONS, code, position .. '|' .. amount)
end
commit(CART_TTL)
return snapshot()
