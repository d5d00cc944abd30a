-- UpdateItems: ARGV[8] the count, then per update: line_id, quantity (0 removes the line).
-- Line ids are distinct (the caller merges duplicates).
local refused = check_live()
if refused then return refused end
local count = tonumber(ARGV[8])
local records = {}
for i = 1, count do
  local line_id, quantity = ARGV[7 + i * 2], tonumber(ARGV[8 + i * 2])
  records[i] = redis.call('HGET', LINES, line_id)
  if not records[i] then return fail('LINE_ITEM_NOT_FOUND', line_id) end
  if quantity > MAX_QUANTITY then return fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
end
local delta = 0
for i = 1, count do
  local line_id, quantity = ARGV[7 + i * 2], tonumber(ARGV[8 + i * 2])
  local current, _, position, description = parse_line(records[i])
  delta = delta + quantity - current
  if quantity == 0 then
    redis.call('HDEL', LINES, line_id)
  else
    redis.call('HSET', LINES, line_id, quantity .. '|' .. NOW .. '|' .. position .. '|' .. description)
  end
end
redis.call('HINCRBY', META, 'item_count', delta)
commit(CART_TTL)
return snapshot()
