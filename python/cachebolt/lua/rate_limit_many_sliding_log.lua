-- rate_limit_many_sliding_log.lua: the exact sliding log of rate_limit_sliding_log.lua on several
-- keys at once, all or nothing: a copy of Store::rate_limit_many
-- (rust/src/store/rate_limit/multi_key.rs).
--
-- KEYS[i]       the log of key i: a sorted set at "<prefix>ratelimit:<key>", in the member format
--               of rate_limit_sliding_log.lua (both scripts read and write the same logs)
-- ARGV[2i - 1]  limit of key i: units admitted per window (integer >= 1); n = #KEYS
-- ARGV[2i]      window_ms of key i: its window in milliseconds (integer >= 1)
-- ARGV[2n + 1]  cost: units this call takes at every key (integer >= 0; 0 is a peek)
-- ARGV[2n + 2]  now_ms: "" to read the server's TIME (normal use); a clock in ms for tests, with
--               which a key lives at least 60 s of real time (as in rate_limit_sliding_log.lua)
-- Returns {allowed_1, remaining_1, reset_after_ms_1, retry_after_ms_1, allowed_2, ...}: for each
-- key, whether it alone had room (1 or 0), its remaining units, and its own waits in ms.
--
-- The call is admitted iff every key has room; only then is `cost` recorded, at every key. A
-- denied call records nothing anywhere (a key with room reports its quota untouched); like any
-- call it may drop entries that have left their window and rewrite a newest member's note,
-- which changes no decision. A script runs alone on its server, so the check of every key and
-- the recording are one atomic step, across processes. Each key keeps its own clock clamp (time
-- never runs behind its newest hit) and its own TTL (its newest hit leaving its window).
-- Cluster mode: every key must hash to one slot; callers put them under one hash tag.
local cost = tonumber(ARGV[2 * #KEYS + 1])
local now, testing = ARGV[2 * #KEYS + 2], false
if now == nil or now == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now, testing = tonumber(now), true
end

local match, format = string.match, string.format
local need = math.max(cost, 1)

-- The state of one log, read as rate_limit_sliding_log.lua reads it (used units, the newest
-- entry's cum and time, the oldest entry held, whether the newest's note is stale). Returns nil
-- for a log that is not ours (the caller answers WRONGTYPE); another type at the key raises
-- WRONGTYPE at the first ZRANGE, before anything of this call is written.
local function load(log, limit, window)
  local st = {log = log, limit = limit, window = window, now = now, used = 0, top_cum = 0,
    renote = false}
  local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  local top = newest[1]
  if top then
    local top_ts = integer(newest[2])
    if not top_ts then
      return nil
    end
    if top_ts > st.now then
      st.now = top_ts
    end
    local edge = st.now - window
    if top_ts > edge then
      st.top, st.top_ts = top, top_ts
      local cum, span, held, first = match(top, '^(%d+):%d+:(%d+):(%d+):(%d+)$')
      if cum then
        st.top_cum, span = integer(cum), integer(span)
        st.used, st.first_cost = integer(held), integer(first)
        if not (st.top_cum and span and st.used and st.first_cost) then
          return nil
        end
        st.first_ts = top_ts - span
      else
        st.top_cum = integer(match(top, '^(%d+):%d+$'))
        if not st.top_cum then
          return nil
        end
      end
      if not st.first_ts or st.first_ts <= edge then
        redis.call('ZREMRANGEBYSCORE', log, '-inf', edge)
        local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
        local oldest_cum, oldest_cost = match(oldest[1], '^(%d+):(%d+)')
        oldest_cum, st.first_ts, st.first_cost =
          integer(oldest_cum), integer(oldest[2]), integer(oldest_cost)
        if not (oldest_cum and st.first_ts and st.first_cost) or oldest_cum > st.top_cum then
          return nil
        end
        st.used = st.top_cum - oldest_cum + st.first_cost
        st.renote = true
      end
    else
      -- The newest hit has left the window, so every hit has: the log is empty.
      redis.call('DEL', log)
    end
  end
  st.allowed = need <= limit and st.used + need <= limit
  return st
end

local states, admitted = {}, true
for i = 1, #KEYS do
  local st = load(KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]))
  if not st then
    return redis.error_reply(WRONGTYPE)
  end
  states[i] = st
  admitted = admitted and st.allowed
end

local out = {}
for i = 1, #KEYS do
  local st = states[i]
  local log, limit, window, t = st.log, st.limit, st.window, st.now
  if admitted and cost > 0 then
    st.top_cum, st.used = st.top_cum + cost, st.used + cost
    if not st.top_ts then
      st.first_ts, st.first_cost = t, cost
    end
    redis.call('ZADD', log, t, format('%016d:%d:%d:%d:%d', st.top_cum, cost, t - st.first_ts,
      st.used, st.first_cost))
    redis.call('PEXPIRE', log, testing and math.max(window, 60000) or window)
    st.top_ts = t
  elseif st.renote then
    -- New note first: a ZREM of the only member would delete the key, and the ZADD would then
    -- create it again without its TTL (an immortal key).
    local units = match(st.top, '^%d+:(%d+)')
    local note = format('%016d:%s:%d:%d:%d', st.top_cum, units, st.top_ts - st.first_ts,
      st.used, st.first_cost)
    if note ~= st.top then
      redis.call('ZADD', log, st.top_ts, note)
      redis.call('ZREM', log, st.top)
    end
  end

  local retry_after = 0
  if not st.allowed then
    if need > limit then
      retry_after = window -- never admitted: "no sooner than one window"
    else
      -- The entry whose expiry frees enough units, as in rate_limit_sliding_log.lua.
      local excess = st.used + need - limit
      local ts = st.first_ts
      if excess > st.first_cost then
        local target = format('[%016d', st.top_cum - st.used + excess)
        local member = redis.call('ZRANGEBYLEX', log, target, '+', 'LIMIT', 0, 1)[1]
        ts = member and integer(redis.call('ZSCORE', log, member))
      end
      retry_after = ts and ts + window - t
      if not retry_after or retry_after <= 0 or retry_after > window then
        return redis.error_reply(WRONGTYPE)
      end
    end
  end
  -- Our logs always carry a TTL; a planted one without denies for at most one window from here.
  if not admitted and st.top_ts and redis.call('PTTL', log) == -1 then
    redis.call('PEXPIRE', log, testing and math.max(window, 60000) or window)
  end
  local reset_after = 0
  if st.top_ts then
    reset_after = st.top_ts + window - t
  end
  out[#out + 1] = st.allowed and 1 or 0
  out[#out + 1] = math.max(limit - st.used, 0)
  out[#out + 1] = reset_after
  out[#out + 1] = retry_after
end
return out
