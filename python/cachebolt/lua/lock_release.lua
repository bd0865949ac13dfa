-- lock_release.lua: release a token lock only for its holder (compare and delete, atomically).
--
-- KEYS[1]  the lock: a string at "<prefix>lock:<key>" holding the holder's token
-- ARGV[1]  token: the 32-hex-char token acquire_lock returned
-- Returns 1 when the lock was released, 0 when it is free or held under another token.
--
-- A key of another type at that name is "not held by this token" (0), as in the Rust store,
-- rather than a WRONGTYPE error. One key: no hash tag needed for cluster mode.
local lock = KEYS[1]
local token = ARGV[1]

if redis.call('TYPE', lock)['ok'] == 'string' and redis.call('GET', lock) == token then
  redis.call('DEL', lock)
  return 1
end
return 0
