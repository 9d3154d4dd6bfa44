-- Publish an item's current counts on its channel, with a revision number so
-- that subscribers can drop an older snapshot that arrives late.
--
-- KEYS: 1 counts hash, 2 HyperLogLog
-- ARGV: 1 channel, 2 subject
-- Returns the revision published, or 0 if the item is not cached.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
local c = redis.call('HMGET', KEYS[1], 'views', 'likes', 'applause', 'comments')
redis.call('PUBLISH', ARGV[1], cmsgpack.pack({
  t = 'counts', s = ARGV[2], r = rev,
  d = {views = tonumber(c[1]) or 0, unique_viewers = redis.call('PFCOUNT', KEYS[2]),
       likes = tonumber(c[2]) or 0, applause = tonumber(c[3]) or 0,
       comments = tonumber(c[4]) or 0}}))
return rev
