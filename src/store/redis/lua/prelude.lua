-- The head of the store's Functions library (scripts.rs `Library`): all of it, once, at library
-- level, with NOW and V1 (below) and KEYS and ARGV as library locals that each function sets at
-- its entry; each script's body is a function of the library, registered with its flags.
-- Where Redis refuses the library, it is prepended to every cart script instead (after its
-- `#!lua` line, which Redis reads only as the first line of the source: it declares the
-- script's flags, from `Script` in scripts.rs; each script's header says why): this part
-- always, each `--- helper:` section only to the scripts that call it (an EVAL script builds
-- every closure it defines on every call, so unused ones would cost each call).
--
-- Layout v2 (see the module doc of store/redis/mod.rs):
-- KEYS[1] cart:{tenant:id}   string: the whole cart, three msgpack values one after another:
--                            the header (an array of the fields of MetaField, in its order;
--                            `false` for a field without value), the coupons (a flat array:
--                            code, amount, position, ...) and the lines (a flat array: line_id,
--                            quantity, updated_at, position, description json, ...), coupons and
--                            lines in insertion order. Its expiry is the cart's: a live cart's
--                            last activity is that expiry minus CART_TTL.
-- KEYS[2] cart:{tenant:id}:lines, KEYS[3] cart:{tenant:id}:coupons: read only for a cart still
--                            in layout v1 (KEYS[1] then is a hash; see `v1_cart` in `load`), deleted when
--                            such a cart is first written in layout v2.
-- KEYS[4] cart:{tenant:id}:request:<request id>  (only when the call carries a request id)
--                            string: the payload's fingerprint, then the script's reply bytes
--                            as they were sent; lives the request-id ttl, outlives the cart
-- All keys share the {tenant:id} hash tag, so a script touches one Cluster slot.
--
-- Every reply is one bulk string of msgpack values, decoded by codec.rs straight from its
-- bytes: a refusal is two strings (reason, detail); a cart is its expiry (unix ms) and one
-- number (Clear's units cleared), then the cart's stored value; Remove's is the units removed.
--
-- Redis runs a script without interleaving any other command: that is what makes each
-- mutation atomic and linearizable. Redis does not roll back a script that fails halfway,
-- so every script checks everything before its first write (mirroring CartState::apply);
-- the checks work on Lua tables, and the one write is `store`'s SET.
--
-- ARGV[1] now (unix ms, in hexadecimal: `tonumber(s, 16)` is a strtoul, where a decimal
--         `tonumber` is a strtod of about 2,000 instructions)   ARGV[2] expected version (0 = any)
-- ARGV[3] fingerprint of the request ('' without a request id)
-- ARGV[4..] the script's own arguments.
-- A command's arguments reach Redis as strings; a Lua number among them is formatted with
-- `%.17g` on every call (about 2,500 instructions), so constants passed to a command are
-- written in as string literals ('REQUEST_TTL') and computed numbers formatted with '%d'.
-- Constants are written into the code by the Rust side as literals (scripts.rs `CONSTANTS`),
-- rather than passed on every call (each argument costs Redis a Lua string per call) or held
-- in locals (every local a helper uses is an upvalue of its closure, which Lua links anew on
-- every call): the store's policy, CART_TTL, TOMBSTONE_TTL, REQUEST_TTL, REFRESH_SLACK (a Get
-- restarts a live cart's lifetime only once it has run down by more than this), MAX_LINES,
-- MAX_QUANTITY, MAX_COUPONS, MAX_CART_BYTES; the header's size META_COUNT; each header
-- field's position F_<FIELD>, from MetaField; META_FIELDS, the field names as a list of
-- string literals (the fields of a v1 header hash, for HMGET); NONE, the packed empty array
-- (no coupons, no lines). For the same reason the keys and arguments are written in as the
-- expressions they are (a table lookup where used costs less than an upvalue in every closure
-- that uses it): CART, V1_LINES, V1_COUPONS and REQUEST are KEYS[1] to KEYS[4], EXPECTED and
-- FINGERPRINT are ARGV[2] and ARGV[3].
local NOW = tonumber(ARGV[1], 16)
-- Whether KEYS[1] holds a cart in layout v1 (set by `load`).
local V1 = false

local function fail(reason, detail)
  return cmsgpack.pack(reason, detail or '')
end

-- Runs the script's body at most once per request id. A remembered reply (success or refusal)
-- is returned as it was, changing nothing; the same id with another fingerprint is refused.
-- A new reply is remembered by the same script that made the change, so the change and its
-- record are one atomic step (and replicate together). The reply is kept as the bytes it is:
-- remembering costs one SET, replaying one GET.
local function once(body)
  if not REQUEST then return body() end
  local seen = redis.call('GET', REQUEST)
  if seen then
    if string.sub(seen, 1, #FINGERPRINT) ~= FINGERPRINT then return fail('REQUEST_ID_REUSED') end
    local reply = string.sub(seen, #FINGERPRINT + 1)
    -- A record of the v1 scripts holds a packed reply table (a msgpack fixarray, 0x90-0x9f),
    -- which no v2 reply starts with: it is replied as the table it was.
    local first = string.byte(reply, 1)
    if first >= 144 and first <= 159 then return cmsgpack.unpack(reply) end
    return reply
  end
  local reply = body()
  -- A refusal for want of memory is no outcome of the request: nothing is remembered. (The
  -- literal is fail('STORE_FULL'), packed once here rather than on every call.)
  if reply == '\170STORE_FULL\160' then return reply end
  redis.call('SET', REQUEST, FINGERPRINT .. reply, 'PX', 'REQUEST_TTL')
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

--- helper: load
-- The cart: its header table and the rest of its value (the packed coupons, then the packed
-- lines), or nil when there is none. A v1 cart is read as one (and V1 set, so that `store`
-- deletes its v1 keys when it writes the cart in layout v2).
local function load()
  local value = redis.pcall('GET', CART)
  if not value then return nil end
  if type(value) == 'table' then
    -- WRONGTYPE: the header hash of layout v1, read by a function defined on this path only
    -- (Lua builds a closure each time its definition runs: a v2 cart's call builds none).
    V1 = true
    -- A cart stored in layout v1 (KEYS[1] a hash of the header fields, KEYS[2] a hash
    -- line_id -> "quantity|updated_at|position|description", KEYS[3] a hash code ->
    -- "position|amount"), as the v2 header table and the packed coupons and lines; nil when
    -- there is no such cart. Values keep the v1 strings (the Rust side reads numbers from either).
    local function v1_cart()
      local by_position = function(a, b) return a[1] < b[1] end
      local h = redis.call('HMGET', CART, META_FIELDS)
      if not h[F_STATUS] then return nil end
      local records, flat = {}, redis.call('HGETALL', V1_LINES)
      local bytes = 0
      for i = 1, #flat, 2 do
        local quantity, updated_at, position, description =
          string.match(flat[i + 1], '^(%d+)|(%d+)|(%d+)|(.*)$')
        records[#records + 1] =
          {tonumber(position), flat[i], tonumber(quantity), tonumber(updated_at), description}
        bytes = bytes + #flat[i] + #description
      end
      table.sort(records, by_position)
      local lines = {}
      for _, r in ipairs(records) do
        local at = #lines
        lines[at + 1], lines[at + 2], lines[at + 3], lines[at + 4], lines[at + 5] =
          r[2], r[3], r[4], r[1], r[5]
      end
      records, flat = {}, redis.call('HGETALL', V1_COUPONS)
      for i = 1, #flat, 2 do
        local position, amount = string.match(flat[i + 1], '^(%d+)|(.*)$')
        records[#records + 1] = {tonumber(position), flat[i], amount}
      end
      table.sort(records, by_position)
      local coupons = {}
      for _, r in ipairs(records) do
        local at = #coupons
        coupons[at + 1], coupons[at + 2], coupons[at + 3] = r[2], r[3], r[1]
      end
      -- Carts written before line_bytes was kept count their lines' bytes now.
      if not h[F_LINE_BYTES] then h[F_LINE_BYTES] = bytes end
      if not h[F_ITEM_COUNT] then h[F_ITEM_COUNT] = 0 end
      return h, cmsgpack.pack(coupons) .. cmsgpack.pack(lines)
    end
    return v1_cart()
  end
  local at, h = cmsgpack.unpack_one(value)
  -- A value written before a field was added to MetaField lacks it.
  for i = #h + 1, META_COUNT do h[i] = false end
  return h, string.sub(value, at + 1)
end

--- helper: contents
-- The rest of a value (see `load`) as the packed coupons and the lines table.
local function contents(rest)
  local at = cmsgpack.unpack_one(rest)
  local _, lines = cmsgpack.unpack_one(rest, at)
  return string.sub(rest, 1, at), lines
end

--- helper: cart_reply
-- The reply of a cart: its expiry, `extra`, and the value.
local function cart_reply(expires, value, extra)
  return cmsgpack.pack(expires, extra or 0) .. value
end

--- helper: store
-- Writes the cart, header `h` and `rest` (see `load`), as one value living `ttl` from now, and
-- replies it with `extra`. The one write of every mutation but Remove and Clear. Trailing
-- absent fields are left out of the header (they read as absent, like fields added after a
-- value was written): a live cart stores none of the freeze and merge fields, and the value of
-- a small cart stays in a smaller allocation class.
local function store(h, rest, ttl, extra)
  local n = META_COUNT
  while n > 0 and h[n] == false do
    h[n] = nil
    n = n - 1
  end
  local value = cmsgpack.pack(h) .. rest
  local expires = NOW + ttl
  -- As text: Redis would format a number argument with `%.17g`, which costs more.
  redis.call('SET', CART, value, 'PXAT', string.format('%d', expires))
  if V1 then redis.call('DEL', V1_LINES, V1_COUPONS) end
  return cart_reply(expires, value, extra)
end

--- helper: as_is
-- The reply of a call that leaves the cart as it is: its value and expiry as stored.
local function as_is(h, rest)
  return cart_reply(redis.call('PEXPIRETIME', CART), cmsgpack.pack(h) .. rest)
end

--- helper: frozen_now
-- Whether a cart of `status` whose freeze ends at `thaws` (its frozen_until) is frozen now: a
-- freeze ends by itself (CartState::thaw; absent: never). Takes the fields, not the header,
-- so that Clear calls it without a header table.
local function frozen_now(status, thaws)
  if status ~= 'frozen' then return false end
  return not thaws or tonumber(thaws) > NOW
end

--- helper: ended
-- The refusal of a cart of `status` that has ended (CartState::check_not_ended), or nil.
local function ended(status)
  if status == 'deleted' then return fail('CART_DELETED') end
  if status == 'merged' or status == 'merging' then return fail('CART_MERGED') end
  return nil
end

--- helper: unended
-- The guard of Remove, Delete, Freeze and Unfreeze (CartState::check_open): the cart exists,
-- is not deleted, merged or being merged, is at the expected version; a frozen cart passes.
-- Returns the header and the rest (see `load`), or nil and a refusal.
local function unended()
  local h, rest = load()
  if not h then return nil, fail('CART_NOT_FOUND') end
  local refused = ended(h[F_STATUS])
  if refused then return nil, refused end
  if EXPECTED ~= '0' and tonumber(EXPECTED) ~= tonumber(h[F_VERSION]) then
    return nil, fail('VERSION_MISMATCH', tostring(h[F_VERSION]))
  end
  return h, rest
end

--- helper: live
-- The guard of every change of a cart's content (CartState::check_live): `unended`, and not
-- frozen. Returns the header and the rest (see `load`), or nil and a refusal.
local function live()
  local h, rest = unended()
  if not h then return nil, rest end
  if frozen_now(h[F_STATUS], h[F_FROZEN_UNTIL]) then return nil, fail('CART_FROZEN') end
  return h, rest
end

--- helper: commit
-- Records a successful mutation in its header: the next version, activity now.
local function commit(h)
  h[F_VERSION] = tonumber(h[F_VERSION]) + 1
  h[F_UPDATED_AT], h[F_LAST_ACTIVITY_AT] = NOW, NOW
end

--- helper: line_index
-- Where each line of a lines table starts, by line_id.
local function line_index(lines)
  local index = {}
  for i = 1, #lines, 5 do index[lines[i]] = i end
  return index
end

--- helper: plan_add
-- Items start at ARGV[first]: their count, then per item: line_id, quantity,
-- currency ('' = unchecked), description json. Checks them in CartState::check_add's order,
-- applying them to the `lines` table as it goes (nothing is written before the caller's
-- `store`); returns the units added, the next position and what the lines count then (nil
-- and a refusal when an item is refused).
local function plan_add(first, currency, lines, next_position, bytes)
  local count = tonumber(ARGV[first])
  local plan = {units = 0}
  local index = line_index(lines)
  local held = #lines / 5
  for k = 1, count do
    local at = first + 1 + (k - 1) * 4
    local line_id, quantity = ARGV[at], tonumber(ARGV[at + 1])
    local item_currency, description = ARGV[at + 2], ARGV[at + 3]
    if item_currency ~= '' and item_currency ~= currency then
      return nil, fail('CURRENCY_MISMATCH', item_currency)
    end
    local i = index[line_id]
    if i then
      if lines[i + 1] + quantity > MAX_QUANTITY then return nil, fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      lines[i + 1], lines[i + 2] = lines[i + 1] + quantity, NOW
    else
      held = held + 1
      if quantity > MAX_QUANTITY then return nil, fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
      if held > MAX_LINES then return nil, fail('LINE_LIMIT_EXCEEDED') end
      bytes = bytes + #line_id + #description
      if bytes > MAX_CART_BYTES then return nil, fail('CART_TOO_LARGE') end
      local j = #lines
      lines[j + 1], lines[j + 2], lines[j + 3], lines[j + 4], lines[j + 5] =
        line_id, quantity, NOW, next_position, description
      index[line_id] = j + 1
      next_position = next_position + 1
    end
    plan.units = plan.units + quantity
  end
  plan.next_position, plan.bytes = next_position, bytes
  return plan
end
