-- AddItems: ARGV[4..] the items (see plan_add); a sku already in the cart adds to its line.
-- Flags: none (not `allow-oom`): it adds lines, so a full Redis refuses it before it runs.
local state, refused = live('currency', 'next_position', 'item_count', 'line_bytes')
if refused then return refused end
local plan
plan, refused = plan_add(4, state[3], tonumber(state[4]), stored_line_bytes(state[6]))
if refused then return refused end
apply_add(plan)
commit(state, {'item_count', tonumber(state[5]) + plan.units, 'next_position', plan.next_position,
  'line_bytes', plan.bytes})
expire_all(CART_TTL)
return snapshot()
