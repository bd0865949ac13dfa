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
