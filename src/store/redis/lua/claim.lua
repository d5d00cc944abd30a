-- Claim: ARGV[4] customer id. Merge of a guest cart for a customer who has no cart: the cart
-- becomes the customer's (it keeps its id). A cart already the customer's replies as it is; a
-- cart of another customer is not found.
-- Flags: none (not `allow-oom`): it writes the customer id, so a full Redis refuses it.
local h, rest = live()
if not h then return rest end
local customer = h[F_CUSTOMER_ID]
if customer == ARGV[4] then return as_is(h, rest) end
if customer and customer ~= '' then return fail('CART_NOT_FOUND') end
commit(h)
h[F_CUSTOMER_ID] = ARGV[4]
return store(h, rest, CART_TTL)
