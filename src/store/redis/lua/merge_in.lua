-- MergeIn: Merge step 3, on the target. ARGV[4] the mode (sum, max, keep_source, keep_target),
-- ARGV[5] the source's currency, ARGV[6..] the source's lines as items (see plan_add), then the
-- count of its coupons and per coupon: code, amount. Always called under an idempotency key
-- derived from the Merge's, so a retry replays the first outcome: each guest line counts once.
-- Mirrors CartState::absorb: every line is checked (CartState::check_add's order), then every
-- coupon, on Lua tables; the one write is `store`'s.
-- Flags: none (not `allow-oom`): it adds lines, so a full Redis refuses it before it runs.
local h, rest = live()
if not h then return rest end
local mode, currency = ARGV[4], ARGV[5]
if currency ~= h[F_CURRENCY] then return fail('CURRENCY_MISMATCH', currency) end
local at, coupons = cmsgpack.unpack_one(rest)
local _, lines = cmsgpack.unpack_one(rest, at)
local first = 6
local count = tonumber(ARGV[first])
local next_position = tonumber(h[F_NEXT_POSITION])
local units, bytes = tonumber(h[F_ITEM_COUNT]), tonumber(h[F_LINE_BYTES])
if mode == 'sum' or mode == 'keep_source' then
  if mode == 'keep_source' then lines, units, bytes = {}, 0, 0 end
  local plan, refused = plan_add(first, currency, lines, next_position, bytes)
  if refused then return refused end
  units, next_position, bytes = units + plan.units, plan.next_position, plan.bytes
elseif mode == 'max' then
  local index = line_index(lines)
  local held = #lines / 5
  for k = 1, count do
    local item = first + 1 + (k - 1) * 4
    local line_id, quantity, description = ARGV[item], tonumber(ARGV[item + 1]), ARGV[item + 3]
    local i = index[line_id]
    if i then
      -- Only a higher quantity changes the line.
      if quantity > lines[i + 1] then
        units = units + quantity - lines[i + 1]
        lines[i + 1], lines[i + 2] = quantity, NOW
      end
    else
      held = held + 1
      if quantity > MAX_QUANTITY then return fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      if held > MAX_LINES then return fail('LINE_LIMIT_EXCEEDED') end
      bytes = bytes + #line_id + #description
      if bytes > MAX_CART_BYTES then return fail('CART_TOO_LARGE') end
      local j = #lines
      lines[j + 1], lines[j + 2], lines[j + 3], lines[j + 4], lines[j + 5] =
        line_id, quantity, NOW, next_position, description
      index[line_id] = j + 1
      next_position = next_position + 1
      units = units + quantity
    end
  end
end
-- Coupons by code: a code the target holds keeps its amount.
local coupons_at = first + 1 + count * 4
local held_codes = {}
for i = 1, #coupons, 3 do held_codes[coupons[i]] = true end
local added = {}
for k = 1, tonumber(ARGV[coupons_at]) do
  local code = ARGV[coupons_at + 1 + (k - 1) * 2]
  if not held_codes[code] then
    held_codes[code] = true
    added[#added + 1] = k
  end
end
if #added > 0 and #coupons / 3 + #added > MAX_COUPONS then return fail('COUPON_LIMIT_EXCEEDED') end
for _, k in ipairs(added) do
  local n = #coupons
  coupons[n + 1], coupons[n + 2], coupons[n + 3] =
    ARGV[coupons_at + 1 + (k - 1) * 2], ARGV[coupons_at + 2 + (k - 1) * 2], next_position
  next_position = next_position + 1
end
commit(h)
h[F_ITEM_COUNT], h[F_NEXT_POSITION], h[F_LINE_BYTES] = units, next_position, bytes
return store(h, cmsgpack.pack(coupons) .. cmsgpack.pack(lines), CART_TTL)
