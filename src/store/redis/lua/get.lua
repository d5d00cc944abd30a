-- Get: reads the cart; a live cart's lifetime restarts now, but only once it has run down by
-- more than REFRESH_SLACK (so a steady-state Get writes nothing: it is a GET and a
-- PEXPIRETIME, and replicates nothing); a tombstone keeps its own expiry. A cart in layout v1
-- is read as it is (its keys re-armed the same way), not rewritten.
-- Flags: `allow-oom`, so a full Redis still answers Get: besides reading, it at most re-arms
-- the expiry of keys that exist, which adds nothing. The lifetime refresh keeps working when
-- full.
local value = redis.pcall('GET', CART)
if not value then return fail('CART_NOT_FOUND') end
local v1 = type(value) == 'table'
if v1 then
  local h, rest = load()
  if not h then return fail('CART_NOT_FOUND') end
  value = cmsgpack.pack(h) .. rest
end
local expires = redis.call('PEXPIRETIME', CART)
if expires < NOW + CART_TTL - REFRESH_SLACK then
  local _, h = cmsgpack.unpack_one(value)
  -- A frozen cart and one a merge is under way on are live too.
  local status = h[F_STATUS]
  if status == 'active' or status == 'frozen' or status == 'merging' then
    expires = NOW + CART_TTL
    local at = string.format('%d', expires)
    redis.call('PEXPIREAT', CART, at)
    if v1 then
      redis.call('PEXPIREAT', V1_LINES, at)
      redis.call('PEXPIREAT', V1_COUPONS, at)
    end
  end
end
return cart_reply(expires, value)
