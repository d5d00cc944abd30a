-- Claim: ARGV[4] customer id. Merge of a guest cart for a customer who has no cart: the cart
-- becomes the customer's (it keeps its id). A cart already the customer's replies as it is; a
-- cart of another customer is not found.
-- Flags: none (not `allow-oom`): it writes the customer id, so a full Redis refuses it.
local state, refused = live('customer_id')
if refused then return refused end
if state[3] == ARGV[4] then return snapshot() end
if state[3] and state[3] ~= '' then return fail('CART_NOT_FOUND') end
commit(state, {'customer_id', ARGV[4]})
expire_all(CART_TTL)
return snapshot()
