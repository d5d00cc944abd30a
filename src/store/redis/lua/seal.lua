-- Seal: ARGV[4] the target cart id, ARGV[5] the merge key (the Merge's idempotency key).
-- Merge step 2: the source refuses every mutation from now on (CART_MERGED), so what the
-- merge takes is what it holds, and a concurrent AddItems either got in before (and is
-- merged) or is refused. No version bump: an unsealed source is as it was. Sealed again under
-- the same key it replies as it is (a retry reuses the target recorded here).
-- Flags: none (not `allow-oom`): it adds the merge's fields, so a full Redis refuses it.
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
local status = h[F_STATUS]
if status == 'deleted' then return fail('CART_DELETED') end
if status == 'merging' and h[F_MERGE_KEY] == ARGV[5] then return as_is(h, rest) end
if status == 'merging' or status == 'merged' then return fail('CART_MERGED') end
if frozen_now(h[F_STATUS], h[F_FROZEN_UNTIL]) then return fail('CART_FROZEN') end
h[F_STATUS], h[F_MERGED_INTO], h[F_MERGE_KEY] = 'merging', ARGV[4], ARGV[5]
return store(h, rest, CART_TTL)
