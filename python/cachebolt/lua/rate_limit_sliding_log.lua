-- rate_limit_sliding_log.lua: exact sliding-log rate limit, a copy of SlidingLog in
-- rust/src/store/rate_limit.rs (same allowed / remaining / reset_after / retry_after).
--
-- KEYS[1]  the log: a sorted set at "<prefix>ratelimit:<key>"
-- ARGV[1]  limit: units admitted per window (integer >= 1)
-- ARGV[2]  window_ms: window length in milliseconds (integer >= 1)
-- ARGV[3]  cost: units this call takes (integer >= 0; 0 is a peek that records nothing)
-- ARGV[4]  now_ms: "" to read the server's TIME (normal use); a clock in ms for tests, with
--          which the key lives at least 60 s of real time (the test's clock is not the server's;
--          state that its clock has expired is then read as empty by the arithmetic below)
-- Returns {allowed (1 or 0), remaining, reset_after_ms, retry_after_ms}.
--
-- One member per admitted call: score = its time in ms, member = "<cum>:<cost>" where <cum> is
-- the running total of units admitted into this log, this call included, zero-padded to 16
-- digits. Members are therefore unique, sort by (time, cum) alike, and the units in the window
-- are cum(newest) - cum(oldest) + cost(oldest): two lookups, not a sum over the log. A hit at t
-- counts in (t - window, t]. The key expires when its newest hit leaves the window; a denied
-- call writes nothing. Time never runs behind the newest recorded hit. Lua numbers are doubles:
-- exact up to 2^53 units. One key: no hash tag needed for cluster mode.
local log = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now, min_ttl = nil, 0
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  now, min_ttl = tonumber(ARGV[4]), 60000
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function parse(member)
  local cum, units = string.match(member, '^(%d+):(%d+)$')
  if not cum then
    error({err = 'WRONGTYPE Operation against a key holding the wrong kind of value'})
  end
  return tonumber(cum), tonumber(units)
end

-- Another type at the key raises WRONGTYPE here, before anything is written.
local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
local used, top_cum, top_ts, base = 0, 0, nil, 0
if newest[1] then
  top_ts = tonumber(newest[2])
  if top_ts > now then
    now = top_ts
  end
  if top_ts + window > now then
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
    local oldest = redis.call('ZRANGE', log, 0, 0)
    local oldest_cum, oldest_cost = parse(oldest[1])
    base = oldest_cum - oldest_cost
    top_cum = parse(newest[1])
    used = top_cum - base
  else
    -- The newest hit has left the window, so every hit has: the log is empty.
    redis.call('DEL', log)
    top_ts = nil
  end
end

local need = math.max(cost, 1)
local allowed = need <= limit and used + need <= limit
if allowed and cost > 0 then
  top_cum = top_cum + cost
  redis.call('ZADD', log, now, string.format('%016d:%d', top_cum, cost))
  redis.call('PEXPIRE', log, math.max(window, min_ttl))
  used = used + cost
  top_ts = now
end

local retry_after = 0
if not allowed then
  if need > limit then
    retry_after = window -- never admitted: "no sooner than one window"
  else
    -- Oldest first, the entry whose expiry frees `excess` units; cum grows with rank, so a
    -- binary search by rank finds it in O(log^2 n).
    local target = base + used + need - limit
    local lo, hi = 0, redis.call('ZCARD', log) - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if parse(redis.call('ZRANGE', log, mid, mid)[1]) >= target then
        hi = mid
      else
        lo = mid + 1
      end
    end
    local entry = redis.call('ZRANGE', log, lo, lo, 'WITHSCORES')
    retry_after = tonumber(entry[2]) + window - now
  end
end

local reset_after = 0
if top_ts then
  reset_after = top_ts + window - now
end
return {allowed and 1 or 0, math.max(limit - used, 0), reset_after, retry_after}
