-- Clear: ARGV[4] preserve coupons ('1' or '0'), ARGV[5] reason, ARGV[6] '1' to clear only a
-- cart whose id the service generated (any other answers CART_NOT_FOUND: VTEX's public route),
-- ARGV[7] the new expiry (NOW + CART_TTL) in decimal: the arguments of a command are given to
-- Redis as strings (a number is formatted with `%.17g`, about 2,500 instructions each), so the
-- GETRANGE bounds are string literals and the SET's PXAT is this argument (and the reply's
-- expiry the same sum, as a number).
-- Reads the header and at most the coupons, never the lines, and replaces the old value whole,
-- so a cart of 250 lines costs one larger free more than a cart of one. Replies the units
-- removed. The header is read in the fewest bytes that hold it: taking a string into Lua costs
-- about ten instructions a byte (a 4 KiB read was a third of a Clear), and the lines of a
-- 250-line cart are about 50 KB. So a GETRANGE of the value's first 512 bytes (a cart's header
-- and coupons nearly always fit), then, only when those were 512 bytes and did not hold them,
-- of its first 4 KiB.
--
-- The new header is spliced, not rebuilt: its fields up to created_at are the old bytes as
-- they are, updated_at .. line_bytes (the fields Clear writes, and the few between them) are
-- packed anew, and the fields after line_bytes are the old bytes again. Only the fields the
-- checks need are decoded, into locals: no header table is built nor packed whole (each
-- costs about as much as the SET). The value stays layout v2 as `load` reads it.
-- A value this does not read (a v1 cart, a header and coupons past the prefix) is loaded
-- whole by `load` and packed as a v2 value first, then spliced the same way.
--
-- Flags: none (not `allow-oom`), so a full Redis refuses Clear before its first command.
-- Clear frees the lines but writes cleared_at and a clear_reason of up to 256 bytes, and under
-- a request id a record of its reply: on an empty cart it only grows. Telling the two apart
-- inside the script would take an INFO memory on every call (about 14 µs, half the cost of a
-- Clear). To free a full Redis, Remove carts.
-- The cleared value of a cart whose value starts with `head` and the units removed, or nil
-- and a refusal; raises an error when `head` is not a v2 value's start or stops short.
local function cleared(head)
  local tag, high, low = string.byte(head, 1, 3)
  if tag ~= 220 then error('not an array16 header') end
  local count = high * 256 + low
  if count < F_LINE_BYTES then error('a header without line_bytes') end
  -- Fields 1 .. F_CREATED_AT (status among them), then F_UPDATED_AT .. F_LINE_BYTES.
  local kept, _, _, _, _, _, _, status = cmsgpack.unpack_limit(head, F_CREATED_AT, 3)
  local at, _, _, _, _, deleted_at, order_number, version, next_position, generated, units =
    cmsgpack.unpack_limit(head, F_LINE_BYTES - F_CREATED_AT, kept)
  local tail, thaws = at, false
  if count > F_LINE_BYTES then
    local after = {cmsgpack.unpack_limit(head, count - F_LINE_BYTES, at)}
    tail, thaws = after[1], after[1 + F_FROZEN_UNTIL - F_LINE_BYTES]
  end
  if kept <= 0 or at <= 0 or tail <= 0 then error('stops short') end
  local coupons = NONE
  if ARGV[4] == '1' then
    local after = cmsgpack.unpack_one(head, tail)
    if after <= 0 then error('stops short') end
    coupons = string.sub(head, tail + 1, after)
  end
  if ARGV[6] == '1' and generated ~= '1' then return nil, fail('CART_NOT_FOUND') end
  local refused = ended(status)
  if refused then return nil, refused end
  if EXPECTED ~= '0' and tonumber(EXPECTED) ~= tonumber(version) then
    return nil, fail('VERSION_MISMATCH', tostring(version))
  end
  if frozen_now(status, thaws) then return nil, fail('CART_FROZEN') end
  -- As `commit` and Clear's own fields: updated_at, last_activity_at and cleared_at now,
  -- clear_reason, the next version, no units and no line bytes ('\0' is a packed 0). NOW is
  -- packed once (cmsgpack makes a string of each value it packs).
  local now = cmsgpack.pack(NOW)
  local fresh = cmsgpack.pack(ARGV[5], deleted_at, order_number, tonumber(version) + 1,
    next_position, generated)
  return string.sub(head, 1, kept) .. now .. now .. now .. fresh .. '\0\0'
    .. string.sub(head, at + 1, tail) .. coupons .. NONE, tonumber(units) or 0
end

local head = redis.pcall('GETRANGE', CART, '0', '511')
local ok, value, units = pcall(cleared, head)
if not ok and type(head) == 'string' and #head == 512 then
  ok, value, units = pcall(cleared, redis.pcall('GETRANGE', CART, '0', '4095'))
end
if not ok then
  local h, rest = load()
  if not h then return fail('CART_NOT_FOUND') end
  -- Trailing absent fields left out, as `store` does.
  local n = META_COUNT
  while n > F_LINE_BYTES and h[n] == false do
    h[n] = nil
    n = n - 1
  end
  value, units = cleared(cmsgpack.pack(h) .. rest)
end
if not value then return units end
redis.call('SET', CART, value, 'PXAT', ARGV[7])
if V1 then redis.call('DEL', V1_LINES, V1_COUPONS) end
return cart_reply(NOW + CART_TTL, value, units)
