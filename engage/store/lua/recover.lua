-- What a subscriber missed: the history's position and, when the client's
-- epoch is the history's and it is at most ARGV[5] events behind, the
-- entries after its offset, in one round trip (a reconnect storm is
-- thousands of these).
--
-- KEYS: 1 history stream, 2 history meta hash
-- ARGV: 1 epoch to use if new, 2 ttl (s), 3 the client's offset,
--       4 the client's epoch, 5 most events to return
-- Returns {offset, epoch, entries}: entries as XRANGE gives them (maybe
-- fewer than missed, if trimmed: the caller checks they are all there).
--#include position
local offset, epoch = position(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
local since = tonumber(ARGV[3])
local entries = {}
if epoch == ARGV[4] and since < offset and offset - since <= tonumber(ARGV[5]) then
  entries = redis.call('XRANGE', KEYS[1], (since + 1) .. '-0', offset .. '-1')
end
return {offset, epoch, entries}
