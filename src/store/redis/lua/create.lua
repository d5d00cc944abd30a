-- Create: ARGV[4..9] customer_id, session_id, channel, currency, locale, metadata json
-- (opaque here); ARGV[10] '1' when the service generated the id, else '0'; ARGV[11..] the
-- initial items (see plan_add). Version starts at 1.
-- Flags: none, so not `allow-oom`: a Create adds a whole cart, so Redis refuses it (OOM,
-- before its first command) once it is over `maxmemory`. Without flags Redis would only refuse
-- the first write that may grow memory, and this script begins with a DEL, which it lets by.
if redis.call('EXISTS', META) == 1 then return fail('CART_ALREADY_EXISTS') end
-- Leftovers of a cart whose header expired a moment before its lines must not resurface.
redis.call('DEL', LINES, COUPONS)
local plan, refused = plan_add(11, ARGV[7], 1, 0)
if refused then return refused end
apply_add(plan)
redis.call('HSET', META,
  'customer_id', ARGV[4], 'session_id', ARGV[5], 'channel', ARGV[6], 'currency', ARGV[7],
  'locale', ARGV[8], 'metadata', ARGV[9], 'status', 'active', 'version', 1,
  'item_count', plan.units, 'next_position', plan.next_position, 'line_bytes', plan.bytes,
  'generated', ARGV[10],
  'created_at', NOW, 'updated_at', NOW, 'last_activity_at', NOW)
expire_all(CART_TTL)
return snapshot()
