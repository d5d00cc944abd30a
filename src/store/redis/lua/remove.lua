-- Remove: every key of the cart goes (a frozen cart's too). Replies the units it held.
-- Flags: `allow-oom`, so Remove frees space even when Redis is full. Its only write that can
-- grow is the record of a refusal under a request id (a success's record is smaller than the
-- keys it deletes): while Redis is over maxmemory that refusal is not remembered but answered
-- STORE_FULL (nothing changed), which costs an INFO only on that path.
local state, refused = unended('item_count')
if refused then
  if REQUEST and over_maxmemory() then return fail('STORE_FULL') end
  return refused
end
redis.call('DEL', META, LINES, COUPONS)
return {'OK', tonumber(state[3] or '0')}
