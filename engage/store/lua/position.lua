-- A history's current position (see _position.lua).
--
-- KEYS: 1 history stream, 2 history meta hash
-- ARGV: 1 epoch to use if new, 2 ttl (s)
-- Returns {offset, epoch}.
--#include position
local offset, epoch = position(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return {offset, epoch}
