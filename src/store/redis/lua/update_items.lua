-- UpdateItems: ARGV[4] the count, then per update: line_id, quantity (0 removes the line).
-- Line ids are distinct (the caller merges duplicates).
-- Flags: none (not `allow-oom`): a record rewritten with a longer quantity grows, and Redis
-- cannot tell in advance, so a full Redis refuses it before it runs (Remove frees space).
local state, refused = live('item_count', 'line_bytes')
if refused then return refused end
local count = tonumber(ARGV[4])
local ids = {}
for i = 1, count do ids[i] = ARGV[3 + i * 2] end
local records = redis.call('HMGET', LINES, unpack(ids))
for i = 1, count do
  if not records[i] then return fail('LINE_ITEM_NOT_FOUND', ids[i]) end
  if tonumber(ARGV[4 + i * 2]) > MAX_QUANTITY then return fail('QUANTITY_LIMIT_EXCEEDED', ids[i]) end
end
local delta, removed, writes = 0, {}, {}
-- A removed line frees its id and description; a quantity change keeps the line's bytes.
local bytes = stored_line_bytes(state[4])
for i = 1, count do
  local quantity = tonumber(ARGV[4 + i * 2])
  local current, _, position, description = parse_line(records[i])
  delta = delta + quantity - current
  if quantity == 0 then
    table.insert(removed, ids[i])
    bytes = bytes - #ids[i] - #description
  else
    table.insert(writes, ids[i])
    table.insert(writes, quantity .. '|' .. NOW .. '|' .. position .. '|' .. description)
  end
end
if #removed > 0 then redis.call('HDEL', LINES, unpack(removed)) end
if #writes > 0 then redis.call('HSET', LINES, unpack(writes)) end
commit(state, {'item_count', tonumber(state[3]) + delta, 'line_bytes', bytes})
expire_all(CART_TTL)
return snapshot()
