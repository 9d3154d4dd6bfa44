-- position(stream, meta, new_epoch, ttl): a history's {offset, epoch},
-- creating the history if it is new, so that a subscriber always gets an
-- epoch it can resume from.
local function position(stream, meta, new_epoch, ttl)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = new_epoch
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', epoch, 'offset', 0)
  end
  redis.call('EXPIRE', meta, ttl)
  return tonumber(redis.call('HGET', meta, 'offset')), epoch
end
