-- Freeze: ARGV[4] reason, ARGV[5] when it thaws by itself (unix ms; '' = never). Holds the cart
-- still for checkout. A frozen cart replies as it is (no version bump), whatever the expected
-- version (CartState::apply's order: not found, deleted, merged, frozen, version).
-- Flags: none (not `allow-oom`): it adds the freeze's fields, so a full Redis refuses it.
local state = redis.call('HMGET', META, 'status', 'version')
if not state[1] then return fail('CART_NOT_FOUND') end
if state[1] == 'deleted' then return fail('CART_DELETED') end
if state[1] == 'merged' or state[1] == 'merging' then return fail('CART_MERGED') end
if frozen_now(state[1]) then return snapshot() end
if EXPECTED ~= '0' and EXPECTED ~= state[2] then return fail('VERSION_MISMATCH', state[2]) end
commit(state, {'status', 'frozen', 'frozen_at', NOW, 'freeze_reason', ARGV[4], 'frozen_until', ARGV[5]})
expire_all(CART_TTL)
return snapshot()
