-- Peek: reads a cart without restarting its lifetime (GetActiveCart looks at every cart of a
-- customer's index, Merge at its source first; only the cart answered is read with Get).
-- Flags: `no-writes` and `allow-oom`: it only reads, so a full Redis answers it.
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
return as_is(h, rest)
