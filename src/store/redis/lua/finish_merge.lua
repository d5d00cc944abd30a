-- FinishMerge: ARGV[4] the merge key. Merge step 4: the sealed source becomes the MERGED
-- tombstone, which lives the tombstone ttl. Again under the same key: replies as it is.
-- Flags: none (not `allow-oom`): it bumps the version, so a full Redis refuses it (the
-- retry finishes it; the lines are already in the target, counted once).
local state = redis.call('HMGET', META, 'status', 'merge_key', 'version')
if not state[1] then return fail('CART_NOT_FOUND') end
if state[1] == 'merged' and state[2] == ARGV[4] then return snapshot() end
if state[1] == 'deleted' then return fail('CART_DELETED') end
if state[1] ~= 'merging' or state[2] ~= ARGV[4] then return fail('CART_MERGED') end
redis.call('HSET', META, 'status', 'merged', 'version', tonumber(state[3]) + 1, 'updated_at', NOW)
expire_all(TOMBSTONE_TTL)
return snapshot()
