-- FinishMerge: ARGV[4] the merge key. Merge step 4: the sealed source becomes the MERGED
-- tombstone, which lives the tombstone ttl. Again under the same key: replies as it is.
-- Flags: none (not `allow-oom`): it rewrites the cart, so a full Redis refuses it (the retry
-- finishes it; the lines are already in the target, counted once).
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
local status, sealed = h[F_STATUS], h[F_MERGE_KEY] == ARGV[4]
if status == 'merged' and sealed then return as_is(h, rest) end
if status == 'deleted' then return fail('CART_DELETED') end
if status ~= 'merging' or not sealed then return fail('CART_MERGED') end
commit(h)
h[F_STATUS] = 'merged'
return store(h, rest, TOMBSTONE_TTL)
