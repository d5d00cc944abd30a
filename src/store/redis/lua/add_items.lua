-- AddItems: ARGV[8..] the items (see plan_add); a sku already in the cart adds to its line.
local refused = check_live()
if refused then return refused end
local meta = redis.call('HMGET', META, 'currency', 'next_position')
local plan
plan, refused = plan_add(8, meta[1], tonumber(meta[2]))
if refused then return refused end
apply_add(plan)
commit(CART_TTL)
return snapshot()
