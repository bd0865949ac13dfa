-- prelude.lua: helpers put before every script's own text by script_text() in cachebolt/_redis.py
-- (a script runs alone: EVALSHA cannot load another file).
--
-- WRONGTYPE        the reply for a key holding another type, or data no script of ours writes
-- integer(text)    a number as our scripts write it (a counter, a field, a score): decimal
--                  digits below 2^53, exact in a double; else nil. Lua's tonumber would take
--                  "1e18", "inf", "nan", "0x10" and " 5 ", and doubles round above 2^53, so
--                  data planted by another client never becomes a count, a wait or a fence.
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

