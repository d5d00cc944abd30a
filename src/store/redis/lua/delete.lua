-- Delete: ARGV[4] order number. Turns the cart (a frozen one too: checkout ends so) into a
-- tombstone that lives the tombstone ttl.
-- Repeating it with the same order number replies the same snapshot and changes nothing.
-- Flags: none (not `allow-oom`): the tombstone keeps every line and adds deleted_at and the
-- order number, so it grows; a full Redis refuses it before it runs (resend: idempotent).
local h, rest = load()
if not h then return fail('CART_NOT_FOUND') end
if h[F_STATUS] == 'deleted' then
  if h[F_ORDER_NUMBER] ~= ARGV[4] then return fail('ORDER_NUMBER_MISMATCH') end
  return cart_reply(redis.call('PEXPIRETIME', CART), cmsgpack.pack(h) .. rest)
end
local refused = ended(h[F_STATUS])
if refused then return refused end
if EXPECTED ~= '0' and tonumber(EXPECTED) ~= tonumber(h[F_VERSION]) then
  return fail('VERSION_MISMATCH', tostring(h[F_VERSION]))
end
commit(h)
h[F_STATUS], h[F_DELETED_AT], h[F_ORDER_NUMBER] = 'deleted', NOW, ARGV[4]
return store(h, rest, TOMBSTONE_TTL)
