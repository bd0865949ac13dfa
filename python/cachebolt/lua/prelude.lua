-- prelude.lua: helpers put before every script's own text by script_text() in cachebolt/_redis.py
-- (a script runs alone: EVALSHA cannot load another file).
--
-- WRONGTYPE        the reply for a key holding another type, or data no script of ours writes
-- integer(text)    a number as our scripts write it (a counter, a field, a score): decimal
--                  digits below 2^53, exact in a double; else nil. Lua's tonumber would take
--                  "1e18", "inf", "nan", "0x10" and " 5 ", and doubles round above 2^53, so
--                  data planted by another client never becomes a count, a wait or a fence.
-- clock(arg)       now in ms and the least TTL (ms) of what the script writes: the server's
--                  TIME and 0 when arg is "" (normal use); under a test's clock, arg and 60000,
--                  so keys outlive windows of a clock that is not the server's.
-- hash_state(key, alg, fields)
--                  the state of rate-limit algorithm `alg` (fixed_window, sliding_counter, gcra)
--                  in the hash at `key`: `fields` read as integers (all 0 when the key is
--                  missing; `.held` tells), or nil and an error reply, before anything is written:
--                  another type at the key (WRONGTYPE), another algorithm's state (named in the
--                  reply), or state no script of ours writes (WRONGTYPE: stored text never
--                  reaches the caller, and no sum or wait is computed from it).
-- all_or_nothing(load, settle)
--                  the body of a rate-limit script on n = #KEYS keys, ARGV = {limit_1,
--                  window_ms_1, ..., limit_n, window_ms_n, cost, now_ms} (one key: the layout of
--                  every single-key script). load(key, limit, window_ms, cost, now) reads one
--                  key and decides it alone, writing nothing: a table with `allowed`, or nil and
--                  an error reply, returned at once. Then settle(state, admitted, min_ttl), per
--                  key, records `cost` only if every key allowed (admitted), writes the key and
--                  returns its remaining, reset_after_ms and retry_after_ms. Returns {allowed_1,
--                  remaining_1, reset_after_ms_1, retry_after_ms_1, allowed_2, ...}.
local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'

local function integer(text)
  if text and #text <= 16 and string.match(text, '^%d+$') then
    local n = tonumber(text)
    if n < 9007199254740992 then
      return n
    end
  end
  return nil
end

local function clock(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg), 60000
  end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000), 0
end

local HASH_ALGORITHMS = {fixed_window = true, sliding_counter = true, gcra = true}

local function hash_state(key, alg, fields)
  -- Another type at the key raises WRONGTYPE in HMGET.
  local stored = redis.call('HMGET', key, 'alg', unpack(fields))
  local state = {held = stored[1] ~= false} -- a missing field reads as false
  if stored[1] ~= alg then
    if HASH_ALGORITHMS[stored[1]] then
      return nil, redis.error_reply(
        'WRONGTYPE rate limit uses algorithm "' .. stored[1] .. '", not "' .. alg .. '"')
    end
    if state.held or redis.call('EXISTS', key) == 1 then
      return nil, redis.error_reply(WRONGTYPE)
    end
  end
  for i = 1, #fields do
    state[i] = 0
    if state.held then
      state[i] = integer(stored[i + 1])
      if not state[i] then
        return nil, redis.error_reply(WRONGTYPE)
      end
    end
  end
  return state
end

local function all_or_nothing(load, settle)
  local n = #KEYS
  local cost = tonumber(ARGV[2 * n + 1])
  local now, min_ttl = clock(ARGV[2 * n + 2])
  local states, admitted = {}, true
  for i = 1, n do
    local state, err = load(KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]), cost, now)
    if not state then
      return err
    end
    states[i] = state
    admitted = admitted and state.allowed
  end
  local out = {}
  for i = 1, n do
    local remaining, reset_after, retry_after = settle(states[i], admitted, min_ttl)
    out[#out + 1] = states[i].allowed and 1 or 0
    out[#out + 1] = remaining
    out[#out + 1] = reset_after
    out[#out + 1] = retry_after
  end
  return out
end
