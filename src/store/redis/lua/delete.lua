-- Delete: ARGV[4] order number. Turns the cart (a frozen one too: checkout ends so) into a
-- tombstone that lives the tombstone ttl.
-- Repeating it with the same order number replies the same snapshot and changes nothing.
-- Flags: none (not `allow-oom`): the tombstone keeps every line and adds deleted_at and the
-- order number, so it grows; a full Redis refuses it before it runs (resend: idempotent).
local state = redis.call('HMGET', META, 'status', 'order_number')
if not state[1] then return fail('CART_NOT_FOUND') end
if state[1] == 'deleted' then
  if state[2] == ARGV[4] then return snapshot() end
  return fail('ORDER_NUMBER_MISMATCH')
end
local refused
state, refused = unended()
if refused then return refused end
commit(state, {'status', 'deleted', 'deleted_at', NOW, 'order_number', ARGV[4]})
expire_all(TOMBSTONE_TTL)
return snapshot()
