-- Spend one action on several rate limit keys, all or nothing (GCRA).
--
-- KEYS: the limiter keys (the same key may appear twice; both costs count)
-- ARGV: per key, in KEYS order: interval (ms), tolerance (ms), cost;
--       then optionally now (ms), which only tests pass: everyone else must
--       share the Redis clock
-- Returns {allowed (0/1), retry_after (ms, rounded up; -1: never fits),
--          1-based index of the key that refused with that wait (0 if allowed)}.
--#include gcra

local n = #KEYS
local now_ms
if #ARGV == 3 * n + 1 then
  now_ms = tonumber(ARGV[3 * n + 1])
elseif #ARGV == 3 * n then
  now_ms = gcra_now_ms()
else
  return redis.error_reply('ratelimit: ARGV must be 3 per key (+ now)')
end
local limits = {}
for i = 1, n do
  limits[i] = {KEYS[i], tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]),
               tonumber(ARGV[3 * i])}
end
local allowed, retry_ms, which = gcra_all(limits, now_ms)
return {allowed, math.ceil(retry_ms), which}
