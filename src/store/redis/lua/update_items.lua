-- UpdateItems: ARGV[4] the count, then per update: line_id, quantity (0 removes the line).
-- Line ids are distinct (the caller merges duplicates).
-- Flags: none (not `allow-oom`): a line rewritten with a larger quantity grows, and Redis
-- cannot tell in advance, so a full Redis refuses it before it runs (Remove frees space).
local h, rest = live()
if not h then return rest end
local coupons, lines = contents(rest)
local index = line_index(lines)
local count = tonumber(ARGV[4])
for k = 1, count do
  local line_id = ARGV[3 + k * 2]
  if not index[line_id] then return fail('LINE_ITEM_NOT_FOUND', line_id) end
  if tonumber(ARGV[4 + k * 2]) > MAX_QUANTITY then return fail('QUANTITY_LIMIT_EXCEEDED', line_id) end
end
-- A removed line frees its id and description; a quantity change keeps the line's bytes.
local delta, bytes, removed = 0, tonumber(h[F_LINE_BYTES]), {}
for k = 1, count do
  local line_id, quantity = ARGV[3 + k * 2], tonumber(ARGV[4 + k * 2])
  local i = index[line_id]
  delta = delta + quantity - lines[i + 1]
  if quantity == 0 then
    removed[i], bytes = true, bytes - #line_id - #lines[i + 4]
  else
    lines[i + 1], lines[i + 2] = quantity, NOW
  end
end
if next(removed) then
  local kept = {}
  for i = 1, #lines, 5 do
    if not removed[i] then
      local n = #kept
      kept[n + 1], kept[n + 2], kept[n + 3], kept[n + 4], kept[n + 5] =
        lines[i], lines[i + 1], lines[i + 2], lines[i + 3], lines[i + 4]
    end
  end
  lines = kept
end
commit(h)
h[F_ITEM_COUNT], h[F_LINE_BYTES] = tonumber(h[F_ITEM_COUNT]) + delta, bytes
return store(h, coupons .. cmsgpack.pack(lines), CART_TTL)
