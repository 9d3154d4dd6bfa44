-- GCRA rate limiting, included into scripts by a line "--#include gcra"
-- (engage/store/scripts.py). The same arithmetic as engage/domain/ratelimit.py,
-- in milliseconds; docs/rate-limits.md explains it.
--
-- Self-contained so any script may include it: only locals, all named gcra*,
-- no top-level statements besides their definitions, no return.
--
-- A key holds its TAT (theoretical arrival time, ms on the Redis clock) as a
-- string, with a PX expiry at that TAT: once it passes the key is idle anyway.
-- Times and intervals may be fractional milliseconds (20000/1s is 0.05 ms).
--
--   gcra_now_ms()                          Redis server time in ms (one clock
--                                          for every instance)
--   gcra(key, interval_ms, tolerance_ms, cost, now_ms)
--                                          one key: returns allowed (0/1),
--                                          retry_after_ms (0 if allowed, -1 if
--                                          cost can never fit); spends if allowed
--   gcra_all(limits, now_ms)               several keys, all or nothing: limits
--                                          is an array of {key, interval_ms,
--                                          tolerance_ms, cost}; returns allowed,
--                                          retry_after_ms (the longest wait, -1
--                                          never), and the 1-based index of the
--                                          limit that refused (0 if allowed).
--                                          Nothing is spent unless all pass.
--   gcra_check / gcra_commit               the two phases, for scripts that
--                                          must decide other things in between
--
-- retry_after_ms is fractional; round it up before returning it from a script
-- (Redis truncates Lua numbers to integers).

-- Slack in the comparison with the tolerance: float sums drift by ulps, and
-- a request arriving exactly on time must pass. One microsecond, the
-- resolution of TIME.
local gcra_epsilon_ms = 0.001

local function gcra_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

-- Phase one: would cost fit on key? Reads, never writes. tat, if given, is a
-- TAT this script already decided for the key (the same key twice in one call).
-- Returns ok (0/1), retry_after_ms (0 if ok, -1 if never), and the TAT to
-- commit if ok (the unchanged TAT if not).
local function gcra_check(key, interval_ms, tolerance_ms, cost, now_ms, tat)
  if tat == nil then
    local stored = redis.call('GET', key)
    if stored then
      tat = tonumber(stored)
    end
  end
  if tat == nil or tat < now_ms then
    tat = now_ms
  end
  local new_tat = tat + cost * interval_ms
  local over = new_tat - now_ms - tolerance_ms
  if over > gcra_epsilon_ms then
    if cost * interval_ms > tolerance_ms + gcra_epsilon_ms then
      return 0, -1, tat
    end
    return 0, over, tat
  end
  return 1, 0, new_tat
end

-- Phase two: store the TAT phase one returned, expiring when it is reached.
local function gcra_commit(key, tat, now_ms)
  local ttl = math.max(1, math.ceil(tat - now_ms))
  redis.call('SET', key, string.format('%.17g', tat), 'PX', string.format('%d', ttl))
end

local function gcra(key, interval_ms, tolerance_ms, cost, now_ms)
  now_ms = now_ms or gcra_now_ms()
  local ok, retry_ms, tat = gcra_check(key, interval_ms, tolerance_ms, cost, now_ms)
  if ok == 1 then
    gcra_commit(key, tat, now_ms)
  end
  return ok, retry_ms
end

local function gcra_all(limits, now_ms)
  now_ms = now_ms or gcra_now_ms()
  local decided = {}
  local worst, which = 0, 0
  for i, l in ipairs(limits) do
    local ok, retry_ms, tat = gcra_check(l[1], l[2], l[3], l[4], now_ms, decided[l[1]])
    if ok == 1 then
      decided[l[1]] = tat
    elseif retry_ms < 0 then
      return 0, -1, i
    elseif retry_ms > worst then
      worst, which = retry_ms, i
    end
  end
  if which > 0 then
    return 0, worst, which
  end
  for key, tat in pairs(decided) do
    gcra_commit(key, tat, now_ms)
  end
  return 1, 0, 0
end
