-- Freeze: ARGV[4] reason, ARGV[5] when it thaws by itself (unix ms; '' = never). Holds the cart
-- still for checkout. A frozen cart replies as it is (no version bump), whatever the expected
-- version (CartState::apply's order: not found, deleted, merged, frozen, version).
-- Flags: none (not `allow-oom`): it adds the freeze's fields, so a full Redis refuses it.
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
local refused = ended(h[F_STATUS])
if refused then return refused end
if frozen_now(h[F_STATUS], h[F_FROZEN_UNTIL]) then return as_is(h, rest) end
if EXPECTED ~= '0' and tonumber(EXPECTED) ~= tonumber(h[F_VERSION]) then
  return fail('VERSION_MISMATCH', tostring(h[F_VERSION]))
end
commit(h)
h[F_STATUS], h[F_FROZEN_AT], h[F_FREEZE_REASON] = 'frozen', NOW, ARGV[4]
h[F_FROZEN_UNTIL] = tonumber(ARGV[5]) or false
return store(h, rest, CART_TTL)
