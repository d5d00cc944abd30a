-- ApplyCoupon: ARGV[4] code, ARGV[5] amount (kept as the decimal text it came as: Lua numbers
-- are doubles). The same code again replaces its amount.
-- Flags: none (not `allow-oom`): a new coupon grows the cart, so a full Redis refuses it.
local h, rest = live()
if not h then return rest end
local at, coupons = cmsgpack.unpack_one(rest)
local code, amount = ARGV[4], ARGV[5]
local found = false
for i = 1, #coupons, 3 do
  if coupons[i] == code then
    coupons[i + 1], found = amount, true
    break
  end
end
if not found then
  if #coupons / 3 >= MAX_COUPONS then return fail('COUPON_LIMIT_EXCEEDED') end
  local position = tonumber(h[F_NEXT_POSITION])
  local n = #coupons
  coupons[n + 1], coupons[n + 2], coupons[n + 3] = code, amount, position
  h[F_NEXT_POSITION] = position + 1
end
commit(h)
return store(h, cmsgpack.pack(coupons) .. string.sub(rest, at + 1), CART_TTL)
