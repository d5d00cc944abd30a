-- Clear: ARGV[4] preserve coupons ('1' or '0'), ARGV[5] reason, ARGV[6] '1' to clear only a
-- cart whose id the service generated (any other answers CART_NOT_FOUND: VTEX's public route).
-- Reads the header and at most the coupons, never the lines (`load_head`: a GETRANGE of the
-- value's prefix), and replaces the old value whole, so a cart of 250 lines costs one larger
-- free more than a cart of one. Replies the units removed.
--
-- Flags: none (not `allow-oom`), so a full Redis refuses Clear before its first command.
-- Clear frees the lines but writes cleared_at and a clear_reason of up to 256 bytes, and under
-- a request id a record of its reply: on an empty cart it only grows. Telling the two apart
-- inside the script would take an INFO memory on every call (about 14 µs, half the cost of a
-- Clear). To free a full Redis, Remove carts.
local h, coupons = load_head()
if not h then return fail('CART_NOT_FOUND') end
if ARGV[6] == '1' and h[F_GENERATED] ~= '1' then return fail('CART_NOT_FOUND') end
local refused = ended(h)
if refused then return refused end
if EXPECTED ~= '0' and tonumber(EXPECTED) ~= tonumber(h[F_VERSION]) then
  return fail('VERSION_MISMATCH', tostring(h[F_VERSION]))
end
if frozen_now(h) then return fail('CART_FROZEN') end
local cleared = tonumber(h[F_ITEM_COUNT]) or 0
commit(h)
h[F_ITEM_COUNT], h[F_LINE_BYTES], h[F_CLEARED_AT], h[F_CLEAR_REASON] = 0, 0, NOW, ARGV[5]
if ARGV[4] ~= '1' then coupons = NONE end
return store(h, coupons .. NONE, CART_TTL, cleared)
