-- Install an item's state loaded from Postgres, unless someone already has.
--
-- KEYS: 1 counts hash, 2 likers set, 3 applause hash, 4 HyperLogLog,
--       5 staged likers, 6 staged applause, 7 staged HyperLogLog
-- ARGV: 1 views, 2 likes, 3 applause, 4 ttl (s), 5 comments
-- Returns 1 if installed, 0 if the counts hash already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
for k = 5, 7 do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('RENAME', KEYS[k], KEYS[k - 3])
  end
end
redis.call('HSET', KEYS[1], 'views', ARGV[1], 'likes', ARGV[2], 'applause', ARGV[3],
           'comments', ARGV[5])
for k = 1, 4 do
  redis.call('EXPIRE', KEYS[k], tonumber(ARGV[4]))
end
return 1
