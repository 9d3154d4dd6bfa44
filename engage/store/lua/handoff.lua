-- Atomically move every pending change into a new flush batch.
--
-- KEYS: 1 pending hash, 2 pending-since, 3 batch hash, 4 batches zset
--       (batch id -> hand-off time), 5 batches-since hash (batch id -> time of
--       the oldest change in it)
-- ARGV: 1 batch id, 2 now (ms)
-- Returns 1 if a batch was made, 0 if nothing was pending.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[3])
local since = redis.call('GET', KEYS[2]) or ARGV[2]
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], since)
return 1
