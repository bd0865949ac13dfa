-- rate_limit_sliding_log.lua: exact sliding-log rate limit, a copy of SlidingLog in
-- rust/src/store/rate_limit/algorithm.rs (same allowed / remaining / reset_after / retry_after).
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
-- One member per admitted call: score = its time in ms, member =
-- "<cum>:<cost>:<span>:<held>:<first>" where <cum> is the running total of units admitted into
-- this log, this call included, zero-padded to 16 digits (so members are unique and sort by
-- (time, cum) and by cum alike), and the other fields describe the log just after this call:
-- <span> = this time - the oldest entry's time (ms), <held> = units in the log, <first> = the
-- oldest entry's cost. Only the newest member's note is read, so a call costs, on top of TIME:
--   admitted, nothing expired:    ZRANGE (newest), ZADD, PEXPIRE
--   denied, nothing expired:      ZRANGE (newest); + ZRANGEBYLEX, ZSCORE when the wait depends
--                                 on an entry after the oldest (cost > 1 or mixed costs)
--   the noted oldest has expired: + ZREMRANGEBYSCORE and ZRANGE (new oldest); a call that then
--                                 admits nothing rewrites the newest's note (ZADD + ZREM)
--   the newest has expired:       DEL (then as an empty log)
-- The oldest entry held is always the noted one (anything older was removed when the note was
-- written), so units in the window = <held> while the noted oldest is in the window. A hit at
-- t counts in (t - window, t]. The key expires when its newest hit leaves the window; a denied
-- call records nothing. Time never runs behind the newest recorded hit. Members of the older
-- "<cum>:<cost>" form are read too (their note is rebuilt). Lua numbers are doubles: exact up
-- to 2^53 units. One key: no hash tag needed for cluster mode.
local log = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now, ttl = ARGV[4], ARGV[2]
if now == nil or now == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now, ttl = tonumber(now), math.max(window, 60000)
end

local match, format = string.match, string.format
-- A log holding anything but our members and integer scores (a score of "inf" or 1.5, a field of
-- 30 digits, notes that do not add up) is foreign data: WRONGTYPE, never a wait or a count.

-- used: units in the window; first_ts / first_cost: the oldest entry held; renote: the newest's
-- note is out of date (entries were removed) and must be rewritten unless a new entry is added.
local used, top_cum, top_ts, first_ts, first_cost, renote = 0, 0, nil, nil, nil, false
-- Another type at the key raises WRONGTYPE here, before anything is written.
local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
local top = newest[1]
if top then
  top_ts = integer(newest[2])
  if not top_ts then
    return redis.error_reply(WRONGTYPE)
  end
  if top_ts > now then
    now = top_ts
  end
  local edge = now - window
  if top_ts > edge then
    local cum, span, held, first = match(top, '^(%d+):%d+:(%d+):(%d+):(%d+)$')
    if cum then
      top_cum, span, used, first_cost = integer(cum), integer(span), integer(held), integer(first)
      if not (top_cum and span and used and first_cost) then
        return redis.error_reply(WRONGTYPE)
      end
      first_ts = top_ts - span
    else
      top_cum = integer(match(top, '^(%d+):%d+$'))
      if not top_cum then
        return redis.error_reply(WRONGTYPE)
      end
    end
    if not first_ts or first_ts <= edge then
      redis.call('ZREMRANGEBYSCORE', log, '-inf', edge)
      local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
      local oldest_cum, oldest_cost = match(oldest[1], '^(%d+):(%d+)')
      first_ts, first_cost, oldest_cum = integer(oldest[2]), integer(oldest_cost), integer(oldest_cum)
      if not (first_ts and first_cost and oldest_cum) or oldest_cum > top_cum then
        return redis.error_reply(WRONGTYPE)
      end
      used = top_cum - oldest_cum + first_cost
      renote = true
    end
  else
    -- The newest hit has left the window, so every hit has: the log is empty.
    redis.call('DEL', log)
    top_ts = nil
  end
end

local need = math.max(cost, 1)
local allowed = need <= limit and used + need <= limit
if allowed and cost > 0 then
  top_cum, used = top_cum + cost, used + cost
  if not top_ts then
    first_ts, first_cost = now, cost
  end
  redis.call('ZADD', log, now, format('%016d:%d:%d:%d:%d', top_cum, cost, now - first_ts, used, first_cost))
  redis.call('PEXPIRE', log, ttl)
  top_ts = now
elseif renote then
  -- The new note goes in before the old one leaves: a ZREM of the only member would delete the
  -- key, and the ZADD would then create it again without its TTL (an immortal key).
  local units = match(top, '^%d+:(%d+)')
  local note = format('%016d:%s:%d:%d:%d', top_cum, units, top_ts - first_ts, used, first_cost)
  if note ~= top then
    redis.call('ZADD', log, top_ts, note)
    redis.call('ZREM', log, top)
  end
end

local retry_after = 0
if not allowed then
  if need > limit then
    retry_after = window -- never admitted: "no sooner than one window"
  else
    -- Oldest first, the entry whose expiry frees `excess` units: the oldest if its cost is
    -- enough, else the first with cum >= (cum before the oldest) + excess. Members are ordered
    -- by cum both by score and lexicographically (zero-padded), so ZRANGEBYLEX finds it.
    local excess = used + need - limit
    local ts = first_ts
    if excess > first_cost then
      local target = format('[%016d', top_cum - used + excess)
      local member = redis.call('ZRANGEBYLEX', log, target, '+', 'LIMIT', 0, 1)[1]
      ts = member and integer(redis.call('ZSCORE', log, member))
    end
    retry_after = ts and ts + window - now
    if not retry_after or retry_after <= 0 or retry_after > window then
      return redis.error_reply(WRONGTYPE)
    end
  end
  -- Our logs always carry a TTL; a planted one without denies for at most one window from here.
  if top_ts and redis.call('PTTL', log) == -1 then
    redis.call('PEXPIRE', log, ttl)
  end
end

local reset_after = 0
if top_ts then
  reset_after = top_ts + window - now
end
return {allowed and 1 or 0, math.max(limit - used, 0), reset_after, retry_after}
