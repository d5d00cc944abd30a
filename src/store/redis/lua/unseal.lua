-- Unseal: ARGV[4] the merge key. Undoes Seal after the target refused the merge, so the
-- refusal changes nothing in the source; any other state replies as it is.
-- Flags: `allow-oom`: it only takes back what Seal wrote, so a full Redis still lets a
-- refused merge give the guest cart back.
local state = redis.call('HMGET', META, 'status', 'merge_key')
if not state[1] then return fail('CART_NOT_FOUND') end
if state[1] == 'merging' and state[2] == ARGV[4] then
  redis.call('HSET', META, 'status', 'active', 'merged_into', '', 'merge_key', '')
end
return snapshot()
