-- Prepended to every cart script (after its `#!lua` line, which Redis reads only as the first
-- line of the source: it declares the script's flags, from `Script` in scripts.rs; each
-- script's header says why): this part always, each `--- helper:` section only to the
-- scripts that call it (Lua builds every closure of a script on every call, so unused ones
-- would cost each call).
--
-- KEYS[1] cart:{tenant:id}          hash: header fields, status, timestamps, version,
--                                   item_count (units, so Clear/Remove need not scan lines),
--                                   next_position (insertion order of lines and coupons),
--                                   line_bytes (what the lines count against MAX_CART_BYTES:
--                                   each line's id and description; absent on carts written
--                                   before it was kept, then summed from the lines),
--                                   generated ('1' when the service chose the cart's id)
-- KEYS[2] cart:{tenant:id}:lines    hash: line_id -> "quantity|updated_at|position|<description json>"
-- KEYS[3] cart:{tenant:id}:coupons  hash: code -> "position|amount"
-- KEYS[4] cart:{tenant:id}:request:<request id>  (only when the call carries a request id)
--                                   string: the payload's fingerprint, then the msgpack of the
--                                   script's reply; lives the request-id ttl, outlives the cart
-- All keys share the {tenant:id} hash tag, so a script touches one Cluster slot.
--
-- Redis runs a script without interleaving any other command: that is what makes each
-- mutation atomic and linearizable. Redis does not roll back a script that fails halfway,
-- so every script checks everything before its first write (mirroring CartState::apply).
--
-- ARGV[1] now (unix ms)   ARGV[2] expected version (0 = any)
-- ARGV[3] fingerprint of the request ('' without a request id)
-- ARGV[4..] the script's own arguments.
-- The store's policy (lifetimes and limits) is written into the source by the Rust side
-- (the @NAME@ values below) rather than passed on every call: each argument costs Redis a Lua
-- string per call, and the policy only changes with the config.
local META, LINES, COUPONS = KEYS[1], KEYS[2], KEYS[3]
local NOW, EXPECTED = ARGV[1], ARGV[2]
local CART_TTL, TOMBSTONE_TTL = '@CART_TTL_MS@', '@TOMBSTONE_TTL_MS@'
local MAX_LINES, MAX_QUANTITY, MAX_COUPONS = @MAX_LINES@, @MAX_QUANTITY@, @MAX_COUPONS@
local MAX_CART_BYTES = @MAX_CART_BYTES@
local REQUEST, FINGERPRINT, REQUEST_TTL = KEYS[4], ARGV[3], '@REQUEST_ID_TTL_MS@'

local function fail(reason, detail)
  return {'ERR', reason, detail or ''}
end

-- Runs the script's body at most once per request id. A remembered reply (success or refusal)
-- is returned as it was, changing nothing; the same id with another fingerprint is refused.
-- A new reply is remembered by the same script that made the change, so the change and its
-- record are one atomic step (and replicate together).
local function once(body)
  if not REQUEST then return body() end
  local seen = redis.call('GET', REQUEST)
  if seen then
    if string.sub(seen, 1, #FINGERPRINT) ~= FINGERPRINT then return fail('REQUEST_ID_REUSED') end
    return cmsgpack.unpack(string.sub(seen, #FINGERPRINT + 1))
  end
  local reply = body()
  -- A refusal for want of memory is no outcome of the request: nothing is remembered.
  if reply[1] == 'ERR' and reply[2] == 'STORE_FULL' then return reply end
  redis.call('SET', REQUEST, FINGERPRINT .. cmsgpack.pack(reply), 'PX', REQUEST_TTL)
  return reply
end

--- helper: over_maxmemory
-- Whether Redis holds more than its maxmemory, as its own check before a script without
-- `allow-oom` would say (INFO memory, about 14 µs: only for a write that would grow a Redis
-- that lets this script run when full).
local function over_maxmemory()
  local info = redis.call('INFO', 'memory')
  local limit = tonumber(string.match(info, '\nmaxmemory:(%d+)'))
  return limit ~= nil and limit > 0 and tonumber(string.match(info, '\nused_memory:(%d+)')) > limit
end

--- helper: header
-- The header as one string: the values of META_FIELDS (defined by the Rust side, which
-- decodes them in the same order) joined by the unit separator, which no stored value can
-- contain. One string instead of a field/value array keeps the reply cheap to parse.
local function header()
  local values = redis.call('HMGET', META, unpack(META_FIELDS))
  for i = 1, #META_FIELDS do
    if not values[i] then values[i] = '' end
  end
  return table.concat(values, '\31')
end

--- helper: cart_reply
-- The reply of every script that returns a cart: the joined header (see `header`), the
-- HGETALL of the lines and of the coupons, and one number (Clear's units cleared). The Rust
-- side (codec::decode_snapshot) reads these positions.
local function cart_reply(joined_header, lines, coupons, extra)
  return {'OK', joined_header, lines, coupons, extra or 0}
end

--- helper: snapshot
-- The whole cart as it is now.
local function snapshot(extra)
  return cart_reply(header(), redis.call('HGETALL', LINES), redis.call('HGETALL', COUPONS), extra)
end

--- helper: expire_all
local function expire_all(ttl)
  redis.call('PEXPIRE', META, ttl)
  redis.call('PEXPIRE', LINES, ttl)
  redis.call('PEXPIRE', COUPONS, ttl)
end

--- helper: frozen_now
-- Whether a cart of `status` is frozen now: a freeze ends by itself at its frozen_until
-- (CartState::thaw; '' = never), read only for a frozen cart.
local function frozen_now(status)
  if status ~= 'frozen' then return false end
  local thaws = redis.call('HGET', META, 'frozen_until')
  return not thaws or thaws == '' or tonumber(thaws) > tonumber(NOW)
end

--- helper: unended
-- The guard of Remove, Delete, Freeze and Unfreeze (CartState::check_open): the cart exists,
-- is not deleted, merged or being merged, is at the expected version; a frozen cart passes.
-- Returns the HMGET of status, version and the `...` fields, or nil and a refusal.
local function unended(...)
  local state = redis.call('HMGET', META, 'status', 'version', ...)
  if not state[1] then return nil, fail('CART_NOT_FOUND') end
  if state[1] == 'deleted' then return nil, fail('CART_DELETED') end
  if state[1] == 'merged' or state[1] == 'merging' then return nil, fail('CART_MERGED') end
  if EXPECTED ~= '0' and EXPECTED ~= state[2] then return nil, fail('VERSION_MISMATCH', state[2]) end
  return state
end

--- helper: live
-- The guard of every change of a cart's content (CartState::check_live): `unended`, and not
-- frozen.
local function live(...)
  local state, refused = unended(...)
  if refused then return nil, refused end
  if frozen_now(state[1]) then return nil, fail('CART_FROZEN') end
  return state
end

--- helper: commit
-- Records a successful mutation in one HSET: the next version, activity now, and the
-- script's own `fields` (name, value, ...).
local function commit(state, fields)
  redis.call('HSET', META, 'version', tonumber(state[2]) + 1, 'updated_at', NOW, 'last_activity_at', NOW,
    unpack(fields))
end

--- helper: parse_line
local function parse_line(record)
  local quantity, updated_at, position, description =
    string.match(record, '^(%d+)|(%d+)|(%d+)|(.*)$')
  return tonumber(quantity), updated_at, position, description
end

--- helper: stored_line_bytes
-- What the cart's lines count against MAX_CART_BYTES (CartState::line_bytes): the header's
-- `stored` line_bytes, or for a cart written before it was kept, the sum over its lines.
local function stored_line_bytes(stored)
  if stored then return tonumber(stored) end
  local total, flat = 0, redis.call('HGETALL', LINES)
  for i = 1, #flat, 2 do
    local _, _, _, description = parse_line(flat[i + 1])
    total = total + #flat[i] + #description
  end
  return total
end

--- helper: plan_add
-- Items start at ARGV[first]: their count, then per item: line_id, quantity,
-- currency ('' = unchecked), description json. Checks them in CartState::check_add's order and
-- returns the writes without making them (nil and a refusal when an item is refused). `bytes`
-- is what the lines count now; a new line adds its id and description (plan.bytes after).
local function plan_add(first, currency, next_position, bytes)
  local count = tonumber(ARGV[first])
  local plan = {writes = {}, units = 0, bytes = bytes}
  if count == 0 then
    plan.next_position = next_position
    return plan
  end
  local ids = {}
  for i = 1, count do ids[i] = ARGV[first + 1 + (i - 1) * 4] end
  local existing = redis.call('HMGET', LINES, unpack(ids))
  local lines = redis.call('HLEN', LINES)
  for i = 1, count do
    local at = first + 1 + (i - 1) * 4
    local line_id, quantity = ARGV[at], tonumber(ARGV[at + 1])
    local item_currency, description = ARGV[at + 2], ARGV[at + 3]
    if item_currency ~= '' and item_currency ~= currency then
      return nil, fail('CURRENCY_MISMATCH', item_currency)
    end
    local record
    if existing[i] then
      local current, _, position, stored = parse_line(existing[i])
      if current + quantity > MAX_QUANTITY then return nil, fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      record = (current + quantity) .. '|' .. NOW .. '|' .. position .. '|' .. stored
    else
      lines = lines + 1
      if quantity > MAX_QUANTITY then return nil, fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      if lines > MAX_LINES then return nil, fail('LINE_LIMIT_EXCEEDED') end
      bytes = bytes + #line_id + #description
      if bytes > MAX_CART_BYTES then return nil, fail('CART_TOO_LARGE') end
      record = quantity .. '|' .. NOW .. '|' .. next_position .. '|' .. description
      next_position = next_position + 1
    end
    table.insert(plan.writes, line_id)
    table.insert(plan.writes, record)
    plan.units = plan.units + quantity
  end
  plan.next_position = next_position
  plan.bytes = bytes
  return plan
end

--- helper: apply_add
-- Writes the lines of a plan; the header fields it changes go into the caller's commit.
local function apply_add(plan)
  if #plan.writes > 0 then
    redis.call('HSET', LINES, unpack(plan.writes))
  end
end
