-- rate_limit_sliding_counter.lua: two-bucket sliding-window estimate (Cloudflare style) on one
-- key, or on several at once, all or nothing: a copy of SlidingCounter in
-- rust/src/store/rate_limit/algorithm.rs (same allowed / remaining / reset_after / retry_after,
-- computed exactly in integers) and of Store::rate_limit_many
-- (rust/src/store/rate_limit/multi_key.rs). n = #KEYS; with one key, the layout of the other
-- single-key scripts.
--
-- KEYS[i]       the state of key i: a hash at "<prefix>ratelimit:<key>" with fields
--               alg="sliding_counter", start (ms, current bucket), width (ms), prev, curr
--               (units), last (ms)
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
-- estimate = prev * (window - elapsed) / window + curr; a call is allowed when
-- estimate + max(cost, 1) <= limit. Lua numbers are doubles: exact while limit * window_ms
-- < 2^53 (e.g. a limit of a million over 100 days). A key expires when both buckets are over,
-- and is deleted at once when it holds nothing. Cluster mode: several keys must hash to one slot
-- (one hash tag).

-- floor(a / b) for integers a >= 0, b > 0, exact below 2^53 (a double quotient may round up).
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function load(key, limit, window, cost, now)
  local state, err =
    hash_state(key, 'sliding_counter', {'start', 'width', 'prev', 'curr', 'last'})
  if not state then
    return nil, err
  end
  local start, width, prev, curr, last = unpack(state)
  -- A server clock stepped back: by at most a window, `now` is held at `last` until the clock
  -- catches up (nothing is admitted twice). State more than a window ahead was written under a
  -- clock that has since stepped back further; holding `now` there would deny for as long as the
  -- step, and every call would re-arm the TTL, so it is read as empty. A steady clock never
  -- leaves `last` ahead of `now`.
  if last > now + window then
    start, width, prev, curr, last = 0, 0, 0, 0, 0
  elseif now < last then
    now = last
  end

  -- Roll the buckets forward; a changed window folds prev into curr (the estimate never drops).
  if width ~= 0 then
    local elapsed = now - start
    if elapsed >= width * 2 then
      prev, curr = 0, 0
    elseif elapsed >= width then
      prev, curr = curr, 0
    end
    if width ~= window then
      curr, prev = curr + prev, 0
    end
  end
  start = now - now % window
  local elapsed = now - start
  local prev_part = prev * (window - elapsed)

  local need = math.max(cost, 1)
  return {key = key, limit = limit, window = window, cost = cost, need = need, now = now,
    start = start, elapsed = elapsed, prev = prev, curr = curr, prev_part = prev_part,
    held = state.held, allowed = need <= limit and curr <= limit - need
      and prev_part <= (limit - need - curr) * window}
end

local function settle(st, admitted, min_ttl)
  local limit, window, need, elapsed = st.limit, st.window, st.need, st.elapsed
  local prev, curr = st.prev, st.curr
  if admitted then
    curr = curr + st.cost
  end
  local used = curr + idiv(st.prev_part + window - 1, window)

  local retry_after = 0
  if not st.allowed then
    if need > limit then
      retry_after = window -- never admitted: "no sooner than one window"
    else
      local found = false
      -- 1: later in this bucket, as prev's weight drops.
      if curr <= limit - need and prev > 0 then
        local room = idiv((limit - need - curr) * window, prev)
        local at = math.max(window - room, elapsed + 1)
        if at < window then
          retry_after, found = at - elapsed, true
        end
      end
      if not found then
        local to_next = window - elapsed
        if curr == 0 then
          retry_after = to_next
        else
          -- 2: in the next bucket, where curr becomes prev; 3: after both buckets.
          local at = math.max(window - idiv((limit - need) * window, curr), 0)
          if at < window then
            retry_after = to_next + at
          else
            retry_after = to_next + window
          end
        end
      end
    end
  end

  local now, expires_at = st.now, st.now
  if curr > 0 then
    expires_at = st.start + 2 * window
  elseif prev > 0 then
    expires_at = st.start + window
  end
  if expires_at > now then
    redis.call('HSET', st.key, 'alg', 'sliding_counter', 'start', st.start, 'width', window,
      'prev', prev, 'curr', curr, 'last', now)
    redis.call('PEXPIRE', st.key, math.max(expires_at - now, min_ttl))
  elseif st.held then
    redis.call('DEL', st.key)
  end
  return math.max(limit - used, 0), expires_at - now, retry_after
end

return all_or_nothing(load, settle)
