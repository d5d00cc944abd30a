-- AddItems: ARGV[4..] the items (see plan_add); a sku already in the cart adds to its line.
-- Flags: none (not `allow-oom`): it adds lines, so a full Redis refuses it before it runs.
local h, rest = live()
if not h then return rest end
local coupons, lines = contents(rest)
local plan, refused = plan_add(4, h[F_CURRENCY], lines, tonumber(h[F_NEXT_POSITION]),
  tonumber(h[F_LINE_BYTES]))
if refused then return refused end
commit(h)
h[F_ITEM_COUNT] = tonumber(h[F_ITEM_COUNT]) + plan.units
h[F_NEXT_POSITION], h[F_LINE_BYTES] = plan.next_position, plan.bytes
return store(h, coupons .. cmsgpack.pack(lines), CART_TTL)
