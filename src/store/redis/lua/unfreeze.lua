-- Unfreeze: opens a frozen cart; an active one (or one whose freeze ended by itself) replies as
-- it is (no version bump), whatever the expected version.
-- Flags: none (not `allow-oom`): it rewrites header fields, so a full Redis refuses it.
local state = redis.call('HMGET', META, 'status', 'version')
if not state[1] then return fail('CART_NOT_FOUND') end
if state[1] == 'deleted' then return fail('CART_DELETED') end
if state[1] == 'merged' or state[1] == 'merging' then return fail('CART_MERGED') end
if not frozen_now(state[1]) then return snapshot() end
if EXPECTED ~= '0' and EXPECTED ~= state[2] then return fail('VERSION_MISMATCH', state[2]) end
commit(state, {'status', 'active', 'frozen_at', '', 'freeze_reason', '', 'frozen_until', ''})
expire_all(CART_TTL)
return snapshot()
