-- Seal: ARGV[4] the target cart id, ARGV[5] the merge key (the Merge's idempotency key).
-- Merge step 2: the source refuses every mutation from now on (CART_MERGED), so what the
-- merge takes is what it holds, and a concurrent AddItems either got in before (and is
-- merged) or is refused. No version bump: an unsealed source is as it was. Sealed again under
-- the same key it replies as it is (a retry reuses the target recorded here).
-- Flags: none (not `allow-oom`): it adds the merge's fields, so a full Redis refuses it.
local state = redis.call('HMGET', META, 'status', 'merge_key')
if not state[1] then return fail('CART_NOT_FOUND') end
if state[1] == 'deleted' then return fail('CART_DELETED') end
if state[1] == 'merging' and state[2] == ARGV[5] then return snapshot() end
if state[1] == 'merging' or state[1] == 'merged' then return fail('CART_MERGED') end
if frozen_now(state[1]) then return fail('CART_FROZEN') end
redis.call('HSET', META, 'status', 'merging', 'merged_into', ARGV[4], 'merge_key', ARGV[5])
return snapshot()
