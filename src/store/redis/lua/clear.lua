-- Clear: ARGV[4] preserve coupons ('1' or '0'), ARGV[5] reason, ARGV[6] '1' to clear only a
-- cart whose id the service generated (any other answers CART_NOT_FOUND: VTEX's public route).
-- Keeps the header and reads no line, so only freeing the lines hash grows with the cart. (DEL, not UNLINK: freeing 250
-- lines inline costs less than waking the lazy-free thread on a busy machine.) Replies the
-- units removed.
--
-- Flags: none (not `allow-oom`), so a full Redis refuses Clear before its first command.
-- Clear frees the lines but writes cleared_at and a clear_reason of up to 256 bytes, and under
-- a request id a record of about 280 bytes: on an empty cart it only grows. Telling the two
-- apart inside the script would take an INFO memory on every call (about 14 µs, half the cost
-- of a Clear). To free a full Redis, Remove carts.
--
-- One HMGET reads what the guard needs and the whole header at once (item_count, then
-- META_FIELDS); the reply is that header with the fields Clear changed, not a second read.
local values = redis.call('HMGET', META, 'item_count', unpack(META_FIELDS))
-- `values` holds item_count, then META_FIELDS: a field sits at SHIFT + its F_ position (the
-- F_ positions are written in by the Rust side, from its one list of the fields).
local ITEM_COUNT, SHIFT = 1, 1
local STATUS, VERSION = SHIFT + F_STATUS, SHIFT + F_VERSION
local UPDATED_AT, LAST_ACTIVITY_AT = SHIFT + F_UPDATED_AT, SHIFT + F_LAST_ACTIVITY_AT
local CLEARED_AT, CLEAR_REASON = SHIFT + F_CLEARED_AT, SHIFT + F_CLEAR_REASON
local GENERATED, FROZEN_UNTIL = SHIFT + F_GENERATED, SHIFT + F_FROZEN_UNTIL
if not values[STATUS] then return fail('CART_NOT_FOUND') end
if ARGV[6] == '1' and values[GENERATED] ~= '1' then return fail('CART_NOT_FOUND') end
if values[STATUS] == 'deleted' then return fail('CART_DELETED') end
if values[STATUS] == 'merged' or values[STATUS] == 'merging' then return fail('CART_MERGED') end
if EXPECTED ~= '0' and EXPECTED ~= values[VERSION] then
  return fail('VERSION_MISMATCH', values[VERSION])
end
-- As `frozen_now`, from the header already read.
if values[STATUS] == 'frozen' then
  local thaws = values[FROZEN_UNTIL]
  if not thaws or thaws == '' or tonumber(thaws) > tonumber(NOW) then return fail('CART_FROZEN') end
end
local preserve = ARGV[4] == '1'
if preserve then
  redis.call('DEL', LINES)
else
  redis.call('DEL', LINES, COUPONS)
end
local version = tonumber(values[VERSION]) + 1
redis.call('HSET', META, 'version', version, 'updated_at', NOW, 'last_activity_at', NOW,
  'item_count', 0, 'line_bytes', 0, 'cleared_at', NOW, 'clear_reason', ARGV[5])
redis.call('PEXPIRE', META, CART_TTL)
local coupons = {}
if preserve then
  redis.call('PEXPIRE', COUPONS, CART_TTL)
  coupons = redis.call('HGETALL', COUPONS)
end
values[VERSION], values[UPDATED_AT], values[LAST_ACTIVITY_AT] = version, NOW, NOW
values[CLEARED_AT], values[CLEAR_REASON] = NOW, ARGV[5]
local first_field, last_field = SHIFT + 1, SHIFT + #META_FIELDS
for i = first_field, last_field do
  if not values[i] then values[i] = '' end
end
-- The lines were just deleted: the reply names none.
return cart_reply(table.concat(values, '\31', first_field, last_field), {}, coupons,
  tonumber(values[ITEM_COUNT] or '0'))
