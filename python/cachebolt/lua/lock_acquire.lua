-- lock_acquire.lua: take a token lock if free (SET NX PX); give a key without TTL at the lock's
-- name the lock's TTL, so it ends.
--
-- KEYS[1]  the lock: a string at "<prefix>lock:<key>" that will hold the holder's token
-- ARGV[1]  token: a fresh 32-hex-char token
-- ARGV[2]  ttl_ms: the lock's TTL in milliseconds (integer >= 1)
-- Returns 1 when the lock was taken, 0 when it is held (or another type sits at the lock key).
--
-- Every lock cachebolt writes has a TTL. A key there without one (PTTL -1) was written by
-- another client, of any type: it would hold the lock forever, so it gets ttl_ms and the lock
-- can be taken at most ttl_ms later. A key that has a TTL is left as it is. One key: no hash tag
-- needed for cluster mode.
local lock = KEYS[1]
local ttl_ms = ARGV[2]

if redis.call('SET', lock, ARGV[1], 'NX', 'PX', ttl_ms) then
  return 1
end
if redis.call('PTTL', lock) == -1 then
  redis.call('PEXPIRE', lock, ttl_ms)
end
return 0
