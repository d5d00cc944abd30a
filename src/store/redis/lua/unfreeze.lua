-- Unfreeze: opens a frozen cart; an active one (or one whose freeze ended by itself) replies as
-- it is (no version bump), whatever the expected version.
-- Flags: none (not `allow-oom`): it rewrites the cart, so a full Redis refuses it.
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
local refused = ended(h[F_STATUS])
if refused then return refused end
if not frozen_now(h[F_STATUS], h[F_FROZEN_UNTIL]) then return as_is(h, rest) end
if EXPECTED ~= '0' and tonumber(EXPECTED) ~= tonumber(h[F_VERSION]) then
  return fail('VERSION_MISMATCH', tostring(h[F_VERSION]))
end
commit(h)
h[F_STATUS], h[F_FROZEN_AT], h[F_FREEZE_REASON], h[F_FROZEN_UNTIL] = 'active', false, false, false
return store(h, rest, CART_TTL)
