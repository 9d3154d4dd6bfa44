-- A history's current position, creating the history if it is new, so that a
-- subscriber always gets an epoch it can resume from.
--
-- KEYS: 1 history stream, 2 history meta hash
-- ARGV: 1 epoch to use if new, 2 ttl (s)
-- Returns {offset, epoch}.
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {tonumber(redis.call('HGET', KEYS[2], 'offset')), epoch}
