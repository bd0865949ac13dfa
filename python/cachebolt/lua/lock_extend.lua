-- lock_extend.lua: reset a token lock's TTL only for its holder (compare and pexpire, atomically).
--
-- KEYS[1]  the lock: a string at "<prefix>lock:<key>" holding the holder's token
-- ARGV[1]  token: the 32-hex-char token acquire_lock returned
-- ARGV[2]  ttl_ms: the new TTL in milliseconds (integer >= 1), counted from now
-- Returns 1 when the TTL was reset, 0 when the lock is free or held under another token.
--
-- A key of another type at that name is "not held by this token" (0), as in the Rust store.
-- One key: no hash tag needed for cluster mode.
local lock = KEYS[1]
local token = ARGV[1]
local ttl_ms = ARGV[2]

if redis.call('TYPE', lock)['ok'] == 'string' and redis.call('GET', lock) == token then
  redis.call('PEXPIRE', lock, ttl_ms)
  return 1
end
return 0
