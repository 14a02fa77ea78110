-- Shared by the rate-limit scripts (joined in front of each at compile time).
--
-- Lua numbers are doubles: the scripts keep every value below 2^53, floor every division
-- exactly with idiv, and format numbers with fmt (%d) before Redis stores them (a plain number
-- would be written with 14 significant digits).
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end
local function fmt(x)
  return string.format('%d', x)
end
-- ARGV[1]: now in µs since the epoch, or '' for the server's clock (so instances agree).
local function now_micros()
  local now = tonumber(ARGV[1])
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now
end
-- How long a limiter key lives at least, in ms. State is kept longer than it matters (an arrival
-- time in the past, a window two windows old, decide like no state at all), so a longer life
-- changes no decision — and a caller's clock running apart from Redis's (virtual time in tests)
-- can then never expire state that still matters.
local function ttl_ms(micros)
  return fmt(math.max(60000, idiv(micros + 999, 1000)))
end
