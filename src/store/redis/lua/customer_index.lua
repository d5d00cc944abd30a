#!lua
-- A customer's index of carts (store/redis/customers.rs), not a cart: KEYS[1]
-- cart:customer:{tenant:<digest>}:carts, a sorted set of cart ids scored by when they were
-- indexed. ARGV[1] now (unix ms), ARGV[2] the cart id, ARGV[3] the most entries it keeps,
-- ARGV[4] its lifetime (ms, from this write).
-- Flags: none (not `allow-oom`): it may add an entry, so a full Redis refuses it (OOM) before
-- it runs, as every cart script that grows.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
