-- MergeIn: Merge step 3, on the target. ARGV[4] the mode (sum, max, keep_source, keep_target),
-- ARGV[5] the source's currency, ARGV[6..] the source's lines as items (see plan_add), then the
-- count of its coupons and per coupon: code, amount. Always called under an idempotency key
-- derived from the Merge's, so a retry replays the first outcome: each guest line counts once.
-- Mirrors CartState::absorb: every line is checked (CartState::check_add's order), then every
-- coupon, before the first write.
-- Flags: none (not `allow-oom`): it adds lines, so a full Redis refuses it before it runs.
local state, refused = live('currency', 'next_position', 'item_count', 'line_bytes')
if refused then return refused end
local mode, currency = ARGV[4], ARGV[5]
if currency ~= state[3] then return fail('CURRENCY_MISMATCH', currency) end
local next_position, units = tonumber(state[4]), tonumber(state[5] or '0')
local bytes = stored_line_bytes(state[6])
local first = 6
local count = tonumber(ARGV[first])
local replace = mode == 'keep_source'
local writes = {}
if mode ~= 'keep_target' and count > 0 then
  local ids = {}
  for i = 1, count do ids[i] = ARGV[first + 1 + (i - 1) * 4] end
  local existing, lines = {}, 0
  if replace then
    units, bytes = 0, 0
  else
    existing = redis.call('HMGET', LINES, unpack(ids))
    lines = redis.call('HLEN', LINES)
  end
  for i = 1, count do
    local at = first + 1 + (i - 1) * 4
    local line_id, quantity, description = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 3]
    if existing[i] then
      local current, _, position, stored = parse_line(existing[i])
      local wanted = current + quantity
      if mode == 'max' then wanted = math.max(current, quantity) end
      if wanted > MAX_QUANTITY then return fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      if wanted ~= current then
        table.insert(writes, line_id)
        table.insert(writes, wanted .. '|' .. NOW .. '|' .. position .. '|' .. stored)
        units = units + wanted - current
      end
    else
      lines = lines + 1
      if quantity > MAX_QUANTITY then return fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      if lines > MAX_LINES then return fail('LINE_LIMIT_EXCEEDED') end
      bytes = bytes + #line_id + #description
      if bytes > MAX_CART_BYTES then return fail('CART_TOO_LARGE') end
      table.insert(writes, line_id)
      table.insert(writes, quantity .. '|' .. NOW .. '|' .. next_position .. '|' .. description)
      next_position = next_position + 1
      units = units + quantity
    end
  end
elseif replace then
  units, bytes = 0, 0
end
local coupons_at = first + 1 + count * 4
local coupon_count = tonumber(ARGV[coupons_at])
local new_coupons = {}
if coupon_count > 0 then
  local held = redis.call('HLEN', COUPONS)
  local added = 0
  for i = 1, coupon_count do
    local code = ARGV[coupons_at + 1 + (i - 1) * 2]
    if redis.call('HEXISTS', COUPONS, code) == 0 then added = added + 1 end
  end
  if added > 0 and held + added > MAX_COUPONS then return fail('COUPON_LIMIT_EXCEEDED') end
  for i = 1, coupon_count do
    local at = coupons_at + 1 + (i - 1) * 2
    if redis.call('HEXISTS', COUPONS, ARGV[at]) == 0 then
      table.insert(new_coupons, ARGV[at])
      table.insert(new_coupons, next_position .. '|' .. ARGV[at + 1])
      next_position = next_position + 1
    end
  end
end
if replace then redis.call('DEL', LINES) end
if #writes > 0 then redis.call('HSET', LINES, unpack(writes)) end
if #new_coupons > 0 then redis.call('HSET', COUPONS, unpack(new_coupons)) end
commit(state, {'item_count', units, 'next_position', next_position, 'line_bytes', bytes})
expire_all(CART_TTL)
return snapshot()
