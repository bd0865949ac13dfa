-- rate_limit_gcra.lua: the generic cell rate algorithm (as in redis-cell) on one key, or on several
-- at once, all or nothing: a copy of Gcra in rust/src/store/rate_limit/gcra.rs (same allowed /
-- remaining / reset_after / retry_after) and of Store::rate_limit_many
-- (rust/src/store/rate_limit/multi_key.rs). n = #KEYS; with one key, the layout of the other
-- single-key scripts.
--
-- KEYS[i]       the state of key i: a hash at "<prefix>ratelimit:<key>" with fields
--               alg="gcra", last (ms), debt (units of 1/per ms, owed at `last`), per (the limit
--               `debt` is counted in)
-- ARGV[2i - 1]  limit of key i: units admitted per window, also the burst (integer >= 1)
-- ARGV[2i]      window_ms of key i: window length in milliseconds (integer >= 1);
--               limit * window_ms < 2^53, checked by the caller
-- ARGV[2n + 1]  cost: units this call takes at every key (integer >= 0; 0 is a peek that records
--               nothing)
-- ARGV[2n + 2]  now_ms: "" to read the server's TIME (normal use); a clock in ms for tests, with
--               which a key lives at least 60 s of real time (the test's clock is not the
--               server's; state that its clock has expired is then read as empty below)
-- Returns {allowed_1, remaining_1, reset_after_ms_1, retry_after_ms_1, allowed_2, ...}: for each
-- key, whether it alone had room (1 or 0), its remaining units and its own waits in ms.
--
-- The call is admitted iff every key has room; only then is `cost` recorded, at every key. A
-- denied call records nothing: each key is written drained to now, which changes no decision,
-- and a key with room reports its quota untouched. A script runs alone on its server, so the
-- check of every key and the recording are one atomic step, across processes. Each key keeps
-- its own clock clamp and its own TTL: it expires when its debt is gone, and is deleted at once
-- when it holds none. Cluster mode: several keys must hash to one slot (one hash tag).
--
-- A unit costs window_ms of debt counted in 1/limit ms (exact for any limit); a ms drains limit
-- of it; a call is allowed when the debt after it is at most limit * window_ms. Every number
-- formed stays at or below limit * window_ms < 2^53, exact in doubles.

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

local function load(key, limit, window, cost, now)
  local state, err = hash_state(key, 'gcra', {'last', 'debt', 'per'})
  if not state then
    return nil, err
  end
  local last, debt, per = unpack(state)
  if debt > 0 and per == 0 then
    return nil, redis.error_reply(WRONGTYPE) -- debt without a unit: not ours
  end
  -- A server clock stepped back: by at most a window, `now` is held at `last` (nothing is
  -- admitted twice). State more than a window ahead was written under a clock that has since
  -- stepped back further; holding `now` there would deny while every call re-arms the TTL, so
  -- it is read as empty, as in the counters.
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
  return {key = key, limit = limit, window = window, cost = cost, need = need, now = now,
    debt = debt, held = state.held, allowed = need <= limit and debt <= cap - need * window}
end

local function settle(st, admitted, min_ttl)
  local limit, window, debt = st.limit, st.window, st.debt
  if admitted then
    debt = debt + st.cost * window
  end
  local retry_after = 0
  if not st.allowed then
    if st.need > limit then
      retry_after = window -- never admitted: "no sooner than one window"
    else
      retry_after = ceil_div(debt - (limit - st.need) * window, limit)
    end
  end
  local reset_after = ceil_div(debt, limit)
  if reset_after > 0 then
    redis.call('HSET', st.key, 'alg', 'gcra', 'last', st.now, 'debt', debt, 'per', limit)
    redis.call('PEXPIRE', st.key, math.max(reset_after, min_ttl))
  elseif st.held then
    redis.call('DEL', st.key)
  end
  return math.max(limit - ceil_div(debt, window), 0), reset_after, retry_after
end

return all_or_nothing(load, settle)
