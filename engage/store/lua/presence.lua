-- Record this instance's watchers of a subject and total everyone's.
--
-- Each instance owns one field: "<connections>:<expiry ms>". Fields past their
-- expiry belong to instances that died without saying goodbye and are removed.
-- When the total changes it is published, so every instance learns at once.
--
-- KEYS: 1 watchers hash
-- ARGV: 1 instance id, 2 local connections, 3 now (ms), 4 expiry (ms),
--       5 key ttl (s), 6 channel, 7 subject
-- Returns the total.
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], n .. ':' .. ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local now = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
local total, last = 0, nil
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  if field == '_t' then
    last = tonumber(value)
  else
    local count, expiry = string.match(value, '^(%d+):(%d+)$')
    if count == nil or tonumber(expiry) < now then
      redis.call('HDEL', KEYS[1], field)
    else
      total = total + tonumber(count)
    end
  end
end
if total ~= last then
  redis.call('HSET', KEYS[1], '_t', total)
  redis.call('PUBLISH', ARGV[6], cmsgpack.pack({t = 'presence', s = ARGV[7], w = total}))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return total
