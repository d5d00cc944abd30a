-- Remove: every key of the cart goes (a frozen cart's too). Replies the units it held.
-- Flags: `allow-oom`, so Remove frees space even when Redis is full. Its only write that can
-- grow is the record of a refusal under a request id (a success's record is smaller than the
-- keys it deletes): while Redis is over maxmemory that refusal is not remembered but answered
-- STORE_FULL (nothing changed), which costs an INFO only on that path.
local h, refused = unended()
if not h then
  if REQUEST and over_maxmemory() then return fail('STORE_FULL') end
  return refused
end
if V1 then
  redis.call('DEL', CART, V1_LINES, V1_COUPONS)
else
  redis.call('DEL', CART)
end
return cmsgpack.pack(tonumber(h[F_ITEM_COUNT]) or 0)
