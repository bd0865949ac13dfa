-- rate_limit_fixed_window.lua: fixed-window rate limit on one key, or on several at once, all or
-- nothing: a copy of FixedWindow in rust/src/store/rate_limit/algorithm.rs (same allowed /
-- remaining / reset_after / retry_after) and of Store::rate_limit_many
-- (rust/src/store/rate_limit/multi_key.rs). n = #KEYS; with one key, the layout of the other
-- single-key scripts.
--
-- KEYS[i]       the state of key i: a hash at "<prefix>ratelimit:<key>" with fields
--               alg="fixed_window", start (ms), width (ms), count (units), last (ms)
-- ARGV[2i - 1]  limit of key i: units admitted per window (integer >= 1)
-- ARGV[2i]      window_ms of key i: window length in milliseconds (integer >= 1)
-- ARGV[2n + 1]  cost: units this call takes at every key (integer >= 0; 0 is a peek that records
--               nothing)
-- ARGV[2n + 2]  now_ms: "" to read the server's TIME (normal use); a clock in ms for tests, with
--               which a key lives at least 60 s of real time (the test's clock is not the
--               server's; state that its clock has expired is then read as empty below)
-- Returns {allowed_1, remaining_1, reset_after_ms_1, retry_after_ms_1, allowed_2, ...}: for each
-- key, whether it alone had room (1 or 0), its remaining units and its own waits in ms.
--
-- The call is admitted iff every key has room; only then is `cost` recorded, at every key. A
-- denied call records nothing: each key is written rolled forward to now, which changes no
-- decision, and a key with room reports its quota untouched. A script runs alone on its server,
-- so the check of every key and the recording are one atomic step, across processes.
-- Windows are [k * window_ms, (k + 1) * window_ms) of the clock; `last` keeps time from running
-- backwards (up to a window; see below). A key expires at the end of its window, and is deleted
-- at once when it holds nothing. Cluster mode: several keys must hash to one slot (one hash tag).

local function load(key, limit, window, cost, now)
  local state, err = hash_state(key, 'fixed_window', {'start', 'width', 'count', 'last'})
  if not state then
    return nil, err
  end
  local start, width, count, last = unpack(state)
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
  return {key = key, limit = limit, window = window, cost = cost, need = need, now = now,
    start = start, count = count, held = state.held,
    allowed = need <= limit and count <= limit - need}
end

local function settle(st, admitted, min_ttl)
  local window, now, count = st.window, st.now, st.count
  if admitted then
    count = count + st.cost
  end
  local window_end = st.start + window
  local retry_after = 0
  if not st.allowed then
    if st.need > st.limit then
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
    redis.call('HSET', st.key, 'alg', 'fixed_window', 'start', st.start, 'width', window,
      'count', count, 'last', now)
    redis.call('PEXPIRE', st.key, math.max(expires_at - now, min_ttl))
  elseif st.held then
    redis.call('DEL', st.key)
  end
  return math.max(st.limit - count, 0), expires_at - now, retry_after
end

return all_or_nothing(load, settle)
