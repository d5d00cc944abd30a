-- Create: ARGV[4..9] customer_id, session_id, channel, currency, locale, metadata json
-- (opaque here); ARGV[10] '1' when the service generated the id, else '0'; ARGV[11..] the
-- initial items (see plan_add). Version starts at 1.
-- Flags: none, so not `allow-oom`: a Create adds a whole cart, so Redis refuses it (OOM,
-- before its first command) once it is over `maxmemory`.
if redis.call('EXISTS', CART) == 1 then return fail('CART_ALREADY_EXISTS') end
local lines = {}
local plan, refused = plan_add(11, ARGV[7], lines, 1, 0)
if refused then return refused end
local h = {}
for i = 1, META_COUNT do h[i] = false end
h[F_CUSTOMER_ID], h[F_SESSION_ID], h[F_CHANNEL] = ARGV[4], ARGV[5], ARGV[6]
h[F_CURRENCY], h[F_LOCALE], h[F_METADATA] = ARGV[7], ARGV[8], ARGV[9]
h[F_STATUS], h[F_VERSION], h[F_GENERATED] = 'active', 1, ARGV[10]
h[F_CREATED_AT], h[F_UPDATED_AT], h[F_LAST_ACTIVITY_AT] = NOW, NOW, NOW
h[F_CLEAR_REASON], h[F_ORDER_NUMBER] = '', ''
h[F_ITEM_COUNT], h[F_NEXT_POSITION], h[F_LINE_BYTES] = plan.units, plan.next_position, plan.bytes
return store(h, NONE .. cmsgpack.pack(lines), CART_TTL)
