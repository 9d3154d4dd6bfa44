-- Apply a batch of interactions on one content item, atomically.
--
-- KEYS: 1 counts hash, 2 likers set, 3 applause hash (user -> total),
--       4 HyperLogLog of viewers, 5 pending hash, 6 pending-since string,
--       7 like sequence counter, 8 event log stream
-- ARGV: 1 content id, 2 now (ms), 3 applause cap, 4 ttl (s), 5 event log max length,
--       6 the ops: msgpack of a flat array of quadruples kind (v|l|u|a), who,
--       count, address (one argument rather than four per op: packing
--       arguments is what costs the client most),
--       7 view de-duplication window (ms, 0: off), 8 the prefix of its keys
--       (one key per item and viewer: "<prefix><who>"),
--       9 the limits: "" (none) or msgpack of {rate-limit key prefix, ban key
--       prefix, like interval ms, like tolerance ms, view interval, view
--       tolerance, per-address interval, per-address tolerance}; just the two
--       prefixes when rate limits are off (bans still apply)
-- A view by a known user or viewer id counts in "views" once per window; it
-- always feeds the HyperLogLog of unique viewers.
-- Likes and applause by a banned user ("<ban prefix><user>" exists) are
-- refused. With limits, each op spends one unit (n for n folded views) of its
-- user's like or view limit (an anonymous one's address instead) and of its
-- address's limit, all or nothing (GCRA, _gcra.lua); a refused op changes
-- nothing.
-- Appends "applause" events (who clapped, how much) and "milestone" events
-- (likes or applause passing 10, 100, 1000 ...) to the event log.
-- Returns {0} when the counts hash is missing (the caller reloads it from
-- Postgres and retries), else {1, unique_viewers, comments, then per op: views,
-- likes, applause, extra, refused} where extra is the like state (0/1) or the
-- user's applause, and refused is 0 (applied), -1 (banned) or the ms to wait.
--#include gcra
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local sep = '\31'
local id = ARGV[1]
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local dedup_ms = tonumber(ARGV[7])
local dedup_prefix = ARGV[8]
local limits = nil
local now_ms = nil
if ARGV[9] ~= '' then
  limits = cmsgpack.unpack(ARGV[9])
  if limits[3] then
    now_ms = gcra_now_ms()
  end
end
local anon_prefix = 'anon' .. sep

-- Limit keys read or spent by earlier ops of this call: a batch from one
-- address or user reads its TAT once and writes it once (at the end), not per op.
local tats, spent, banned = {}, {}, {}

-- GCRA over several keys, all or nothing, through the TAT cache above.
local function spend(checks)
  local decided, worst = {}, 0
  for _, c in ipairs(checks) do
    local key = c[1]
    local ok, retry_ms, tat = gcra_check(key, c[2], c[3], c[4], now_ms,
                                         decided[key] or tats[key])
    if ok == 1 then
      decided[key] = tat
    else
      tats[key] = tats[key] or tat
      if retry_ms < 0 then
        return -1
      end
      worst = math.max(worst, retry_ms)
    end
  end
  if worst > 0 then
    return worst
  end
  for key, tat in pairs(decided) do
    tats[key], spent[key] = tat, true
  end
  return 0
end

-- 0 if the op may go ahead, -1 if its user is banned, else ms to wait.
local function refusal(kind, who, n, address)
  if not limits then
    return 0
  end
  local signed_in = who ~= '' and string.sub(who, 1, #anon_prefix) ~= anon_prefix
  if kind ~= 'v' then
    if banned[who] == nil then
      banned[who] = redis.call('EXISTS', limits[2] .. who) == 1
    end
    if banned[who] then
      return -1
    end
  end
  if not limits[3] then  -- bans only: rate limits are off
    return 0
  end
  local checks = {}
  local interval, tolerance, action = limits[3], limits[4], 'like:'
  if kind == 'v' then
    interval, tolerance, action = limits[5], limits[6], 'view:'
  end
  if signed_in then
    checks[#checks + 1] = {limits[1] .. action .. 'u:' .. who, interval, tolerance, n}
  elseif address ~= '' then
    checks[#checks + 1] = {limits[1] .. action .. 'ip:' .. address, interval, tolerance, n}
  end
  if address ~= '' then
    checks[#checks + 1] = {limits[1] .. 'ip:' .. address, limits[7], limits[8], n}
  end
  if #checks == 0 then
    return 0
  end
  local retry_ms = spend(checks)
  if retry_ms == 0 then
    return 0
  end
  if retry_ms < 0 then  -- more at once than the burst: wait one interval per unit
    return math.ceil(n * interval)
  end
  return math.max(1, math.ceil(retry_ms))
end
local cur = redis.call('HMGET', KEYS[1], 'views', 'likes', 'applause')
local views, likes, applause = tonumber(cur[1]) or 0, tonumber(cur[2]) or 0, tonumber(cur[3]) or 0
local dv, dl, da, events = 0, 0, 0, 0
local hll_dirty = false
local seq = nil
local out = {1, 0, tonumber(redis.call('HGET', KEYS[1], 'comments')) or 0}
local likes0, applause0 = likes, applause

local function log_event(kind, data)
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[5], '*', 'type', kind, 'at', ARGV[2],
             'data', cjson.encode(data))
end

-- The highest power of ten in (before, after], or nil.
local function milestone(before, after)
  local m = nil
  local step = 10
  while step <= after do
    if step > before then m = step end
    step = step * 10
  end
  return m
end
local ops = cmsgpack.unpack(ARGV[6])
for i = 1, #ops, 4 do
  local kind, who, n = ops[i], ops[i + 1], tonumber(ops[i + 2])
  local extra = 0
  local refused = refusal(kind, who, n, ops[i + 3])
  if refused ~= 0 then
    kind = 'x'  -- refused: changes nothing
  end
  -- Anonymous views arrive folded (count > 1); every view is one event.
  events = events + ((kind == 'v') and n or 1)
  if kind == 'v' then
    if who == '' or dedup_ms == 0
        or redis.call('SET', dedup_prefix .. who, 1, 'NX', 'PX', dedup_ms) then
      dv = dv + n
      views = views + n
    end
    if who ~= '' and redis.call('PFADD', KEYS[4], who) == 1 then
      hll_dirty = true
    end
  elseif kind == 'l' or kind == 'u' then
    local changed
    if kind == 'l' then
      changed = redis.call('SADD', KEYS[2], who)
    else
      changed = redis.call('SREM', KEYS[2], who)
    end
    if changed == 1 then
      seq = seq or redis.call('INCR', KEYS[7])
      local step = (kind == 'l') and 1 or -1
      dl = dl + step
      likes = likes + step
      redis.call('HSET', KEYS[5], 'L' .. sep .. id .. sep .. who,
                 ((kind == 'l') and '1:' or '0:') .. seq)
    end
    extra = (kind == 'l') and 1 or 0
  elseif kind == 'a' then
    local mine = tonumber(redis.call('HGET', KEYS[3], who)) or 0
    local add = math.max(0, math.min(n, cap - mine))
    if add > 0 then
      mine = redis.call('HINCRBY', KEYS[3], who, add)
      da = da + add
      applause = applause + add
      redis.call('HSET', KEYS[5], 'A' .. sep .. id .. sep .. who, mine)
      log_event('applause', {content = id, user = who, added = add, mine = mine,
                             total = applause})
    end
    extra = mine
  elseif kind == 'x' then
    events = events - 1  -- counted above as one event; a refused op is none
  else
    return redis.error_reply('unknown op kind ' .. tostring(kind))
  end
  out[#out + 1] = views
  out[#out + 1] = likes
  out[#out + 1] = applause
  out[#out + 1] = extra
  out[#out + 1] = refused
end
if dv ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'views', dv)
  redis.call('HINCRBY', KEYS[5], 'v' .. sep .. id, dv)
end
if dl ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'likes', dl)
  redis.call('HINCRBY', KEYS[5], 'l' .. sep .. id, dl)
end
if da ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'applause', da)
  redis.call('HINCRBY', KEYS[5], 'a' .. sep .. id, da)
end
if hll_dirty then
  redis.call('HSET', KEYS[5], 'H' .. sep .. id, 1)
end
local m = milestone(likes0, likes)
if m then log_event('milestone', {content = id, metric = 'likes', value = m}) end
m = milestone(applause0, applause)
if m then log_event('milestone', {content = id, metric = 'applause', value = m}) end
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HINCRBY', KEYS[5], '#events', events)
  redis.call('SET', KEYS[6], ARGV[2], 'NX')
end
for key in pairs(spent) do
  gcra_commit(key, tats[key], now_ms)
end
for k = 1, 4 do
  redis.call('EXPIRE', KEYS[k], ttl)
end
out[2] = redis.call('PFCOUNT', KEYS[4])
return out
