-- rate_limit_gcra.lua: the generic cell rate algorithm (as in redis-cell), a copy of Gcra in
-- rust/src/store/rate_limit/gcra.rs (same allowed / remaining / reset_after / retry_after).
--
-- KEYS[1]  the state: a hash at "<prefix>ratelimit:<key>" with fields
--          alg="gcra", last (ms), debt (units of 1/per ms, owed at `last`), per (the limit
--          `debt` is counted in)
-- ARGV[1]  limit: units admitted per window, also the burst (integer >= 1)
-- ARGV[2]  window_ms: window length in milliseconds (integer >= 1); limit * window_ms < 2^53,
--          checked by the caller
-- ARGV[3]  cost: units this call takes (integer >= 0; 0 is a peek that records nothing)
-- ARGV[4]  now_ms: "" to read the server's TIME (normal use); a clock in ms for tests, with
--          which the key lives at least 60 s of real time (the test's clock is not the server's;
--          state that its clock has expired is then read as empty by the arithmetic below)
-- Returns {allowed (1 or 0), remaining, reset_after_ms, retry_after_ms}.
--
-- A unit costs window_ms of debt counted in 1/limit ms (exact for any limit); a ms drains limit
-- of it; a call is allowed when the debt after it is at most limit * window_ms. Every number
-- formed stays at or below limit * window_ms < 2^53, exact in doubles. The key expires when
-- the debt is gone, and is deleted at once when it holds none. Another algorithm's state at
-- the key is a WRONGTYPE error. One key: no hash tag needed for cluster mode.
local state_key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now, min_ttl = clock(ARGV[4])

-- ceil(a / b) for integers a >= 0, b > 0, exact below 2^53 (a double quotient may round).
local function ceil_div(a, b)
  local q = math.ceil(a / b)
  if q > 0 and (q - 1) * b >= a then
    q = q - 1
  elseif q * b < a then
    q = q + 1
  end
  return q
end

-- Another type at the key raises WRONGTYPE here, before anything is written. State this
-- script cannot have written (another algorithm's name, a missing field, a field that is not a
-- decimal integer below 2^53, debt without a unit) is WRONGTYPE too, with a fixed text.
local state = redis.call('HMGET', state_key, 'alg', 'last', 'debt', 'per')
local alg = state[1]
if alg ~= 'gcra' then
  if alg == 'fixed_window' or alg == 'sliding_counter' then
    return redis.error_reply('WRONGTYPE rate limit uses algorithm "' .. alg .. '", not "gcra"')
  end
  if redis.call('EXISTS', state_key) == 1 then
    return redis.error_reply(WRONGTYPE)
  end
end
local last, debt, per = 0, 0, 0
if alg then
  last, debt, per = integer(state[2]), integer(state[3]), integer(state[4])
  if not (last and debt and per) or (debt > 0 and per == 0) then
    return redis.error_reply(WRONGTYPE)
  end
end
-- A server clock stepped back: by at most a window, `now` is held at `last` (nothing is admitted
-- twice). State more than a window ahead was written under a clock that has since stepped back
-- further; holding `now` there would deny while every call re-arms the TTL, so it is read as
-- empty, as in the counters.
if last > now + window then
  last, debt, per = 0, 0, 0
elseif now < last then
  now = last
end

local cap = limit * window
-- A changed limit re-expresses the debt in the new unit: whole ms, at most a full burst.
if per ~= limit and debt > 0 then
  local ms = ceil_div(debt, per)
  if ms >= window then
    debt = cap
  else
    debt = ms * limit
  end
end
-- Drain: (now - last) * limit may pass 2^53, so compare in ms first.
if now - last >= ceil_div(debt, limit) then
  debt = 0
else
  debt = debt - (now - last) * limit
end

local need = math.max(cost, 1)
local allowed = need <= limit and debt <= cap - need * window
if allowed then
  debt = debt + cost * window
end
local retry_after = 0
if not allowed then
  if need > limit then
    retry_after = window -- never admitted: "no sooner than one window"
  else
    retry_after = ceil_div(debt - (cap - need * window), limit)
  end
end

local reset_after = ceil_div(debt, limit)
if reset_after > 0 then
  redis.call('HSET', state_key, 'alg', 'gcra', 'last', now, 'debt', debt, 'per', limit)
  redis.call('PEXPIRE', state_key, math.max(reset_after, min_ttl))
elseif alg then
  redis.call('DEL', state_key)
end
return {allowed and 1 or 0, math.max(limit - ceil_div(debt, window), 0), reset_after, retry_after}
