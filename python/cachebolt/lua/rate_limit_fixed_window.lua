-- rate_limit_fixed_window.lua: fixed-window rate limit, a copy of FixedWindow in
-- rust/src/store/rate_limit/algorithm.rs (same allowed / remaining / reset_after / retry_after).
--
-- KEYS[1]  the state: a hash at "<prefix>ratelimit:<key>" with fields
--          alg="fixed_window", start (ms), width (ms), count (units), last (ms)
-- ARGV[1]  limit: units admitted per window (integer >= 1)
-- ARGV[2]  window_ms: window length in milliseconds (integer >= 1)
-- ARGV[3]  cost: units this call takes (integer >= 0; 0 is a peek that records nothing)
-- ARGV[4]  now_ms: "" to read the server's TIME (normal use); a clock in ms for tests, with
--          which the key lives at least 60 s of real time (the test's clock is not the server's;
--          state that its clock has expired is then read as empty by the arithmetic below)
-- Returns {allowed (1 or 0), remaining, reset_after_ms, retry_after_ms}.
--
-- Windows are [k * window_ms, (k + 1) * window_ms) of the clock; `last` keeps time from running
-- backwards (up to a window; see below). The key expires at the end of its window, and is deleted at once when it holds
-- nothing. Another algorithm's state at the key is a WRONGTYPE error. One key: no hash tag
-- needed for cluster mode.
local state_key = KEYS[1]
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

-- Another type at the key raises WRONGTYPE here, before anything is written. State this
-- script cannot have written (another algorithm's name, a missing field, a field that is not a
-- decimal integer below 2^53: "inf", "1e18", "-1") is WRONGTYPE too, with a fixed text: stored
-- text never reaches the caller, and no sum or wait is computed from it.
local state = redis.call('HMGET', state_key, 'alg', 'start', 'width', 'count', 'last')
local alg = state[1]
if alg ~= 'fixed_window' then
  if alg == 'sliding_counter' then
    return redis.error_reply('WRONGTYPE rate limit uses algorithm "sliding_counter", not "fixed_window"')
  end
  if redis.call('EXISTS', state_key) == 1 then
    return redis.error_reply(WRONGTYPE)
  end
end
local start, width, count, last = 0, 0, 0, 0
if alg then
  start, width, count, last =
    integer(state[2]), integer(state[3]), integer(state[4]), integer(state[5])
  if not (start and width and count and last) then
    return redis.error_reply(WRONGTYPE)
  end
end
-- A server clock stepped back: by at most a window, `now` is held at `last` until the clock
-- catches up (nothing is admitted twice). State more than a window ahead was written under a
-- clock that has since stepped back further; holding `now` there would deny for as long as the
-- step, and every call would re-arm the TTL, so it is read as empty. A steady clock never
-- leaves `last` ahead of `now`.
if last > now + window then
  start, width, count, last = 0, 0, 0, 0
elseif now < last then
  now = last
end

if width == 0 or now >= start + width then
  count = 0
end
-- A changed window re-aligns the current window to the new width; the count is kept.
start = now - now % window

local need = math.max(cost, 1)
local allowed = need <= limit and count <= limit - need
if allowed then
  count = count + cost
end
local window_end = start + window
local retry_after = 0
if not allowed then
  if need > limit then
    retry_after = window -- never admitted: "no sooner than one window"
  else
    retry_after = window_end - now
  end
end

local expires_at = now
if count > 0 then
  expires_at = window_end
end
if expires_at > now then
  redis.call('HSET', state_key, 'alg', 'fixed_window', 'start', start, 'width', window,
    'count', count, 'last', now)
  redis.call('PEXPIRE', state_key, math.max(expires_at - now, min_ttl))
elseif alg then
  redis.call('DEL', state_key)
end
return {allowed and 1 or 0, math.max(limit - count, 0), expires_at - now, retry_after}
