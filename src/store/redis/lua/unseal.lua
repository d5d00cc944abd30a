-- Unseal: ARGV[4] the merge key. Undoes Seal after the target refused the merge, so the
-- refusal changes nothing in the source but its lifetime; any other state replies as it is.
-- Flags: `allow-oom`: it only takes back what Seal wrote, so a full Redis still lets a
-- refused merge give the guest cart back.
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
if h[F_STATUS] ~= 'merging' or h[F_MERGE_KEY] ~= ARGV[4] then return as_is(h, rest) end
h[F_STATUS], h[F_MERGED_INTO], h[F_MERGE_KEY] = 'active', false, false
return store(h, rest, CART_TTL)
