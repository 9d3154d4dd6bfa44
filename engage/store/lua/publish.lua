-- Append an event to a channel's history and publish it, atomically, so that
-- offsets are gap-free and subscribers see them in order whichever process
-- published.
--
-- KEYS: 1 history stream, 2 history meta hash (epoch, offset),
--       3 counts hash (may be absent), 4 event log stream
-- ARGV: 1 channel, 2 subject (content id or feed), 3 event type,
--       4 payload (msgpack), 5 max history length, 6 history ttl (s),
--       7 epoch to use if the history is new, 8 comment count delta,
--       9 event log type ('' for none), 10 event log data (JSON), 11 now (ms),
--       12 event log max length
-- Returns {offset, epoch}.
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  -- A new history: whatever stream is left belongs to an older epoch.
  epoch = ARGV[7]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 'offset', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], offset .. '-1', 't', ARGV[3], 'd', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
local delta = tonumber(ARGV[8])
if delta ~= 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'comments', delta)
end
if ARGV[9] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'type', ARGV[9], 'at', ARGV[11],
             'data', ARGV[10])
end
redis.call('PUBLISH', ARGV[1],
  cmsgpack.pack({t = ARGV[3], s = ARGV[2], o = offset, e = epoch, d = ARGV[4]}))
return {offset, epoch}
