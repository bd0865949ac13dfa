-- lock_acquire_fenced.lua: take a token lock if free (SET NX PX) and hand out its fence number,
-- in one atomic step.
--
-- KEYS[1]  the lock: a string at "<prefix>lock:<key>" that will hold the holder's token
-- KEYS[2]  the fence counter: a string at "<prefix>fence:..." in the lock's cluster slot (see
--          fence_key in cachebolt/_redis.py), holding the last fence handed out
-- ARGV[1]  token: a fresh 32-hex-char token
-- ARGV[2]  ttl_ms: the lock's TTL in milliseconds (integer >= 1)
-- ARGV[3]  keep_ms: how long the counter outlives its last grant, in milliseconds
-- Returns the fence (an integer > 0) when the lock was taken, nil when it is held (or another
-- type sits at the lock key; a key there without TTL gets ttl_ms, as in lock_acquire.lua). A counter that this script cannot have written (not a decimal
-- integer below 2^53 - 1: "1e18", "inf", "0x10", 2^63, a hash) is a WRONGTYPE error, and
-- nothing is written: a fence is never repeated, negative or rounded.
--
-- fence = max(last + 1, server TIME in microseconds). While the counter lives (keep_ms after
-- the last grant) each fence is the last one + 1 or more, whatever the server clock does; when
-- it has expired (or was deleted by reset(), or evicted) the next fence is the server's time in
-- microseconds, larger than every earlier fence unless the server clock went back by more than
-- the time since that grant. So the counter may carry a TTL and no fence counter is immortal.
-- Fences are monotonic per lock, not dense: locks whose counters share a key (one cluster
-- slot, see fence_key) share the sequence. Values stay below 2^53 (exact in Lua doubles) until
-- the year 2255. Plain acquire_lock (SET NX PX) does not touch the counter.
local lock = KEYS[1]
local counter = KEYS[2]

-- Read the counter before any write: another type there is a WRONGTYPE error, nothing changed;
-- so is a value that is not an integer (see prelude.lua) below 2^53 - 1 (fence = last + 1 stays
-- exact).
local stored = redis.call('GET', counter)
local last = 0
if stored then
  last = integer(stored)
  if not last or last >= 9007199254740991 then
    return redis.error_reply('WRONGTYPE fence counter is not an integer below 2^53 - 1')
  end
end
if not redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('PTTL', lock) == -1 then
    redis.call('PEXPIRE', lock, ARGV[2])
  end
  return nil
end
local time = redis.call('TIME')
local fence = math.max(last + 1, tonumber(time[1]) * 1000000 + tonumber(time[2]))
redis.call('SET', counter, string.format('%d', fence), 'PX', ARGV[3])
return fence
