-- Peek: reads a cart without restarting its lifetime (GetActiveCart looks at every cart of a
-- customer's index, Merge at its source first; only the cart answered is read with Get).
-- Flags: `no-writes` and `allow-oom`: it only reads, so a full Redis answers it.
if redis.call('EXISTS', META) == 0 then return fail('CART_NOT_FOUND') end
return snapshot()
