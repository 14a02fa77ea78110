-- GCRA: a port of analytics_core::resilience::rate_limit::gcra_decide, one atomic decision.
--
-- KEYS[1]   the limiter key (its value: the theoretical arrival time, µs since the epoch)
-- ARGV[1]   now in µs since the epoch, or '' to use the server's clock (so instances agree)
-- ARGV[2]   period in µs; ARGV[3] limit; ARGV[4] burst
--
-- Returns {allowed (1/0), remaining, reset_after µs, retry_after µs (-1 when allowed)}.
--
-- Lua numbers are doubles: every value here stays below 2^53 (the store checks the policy), is
-- divided with an exact floor (idiv), and is formatted with %d before Redis stores it (a plain
-- number would be written with 14 significant digits).
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local period, limit, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local interval = idiv(period, limit)
if interval < 1 then
  interval = 1
end
local capacity = interval * burst
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local next_tat = tat + interval
local allow_at = next_tat - capacity
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local remaining = idiv(now - allow_at, interval)
-- Forgotten once the arrival time has passed: a fresh state decides the same from then on.
local ttl_ms = math.max(1, idiv(next_tat - now + 999, 1000))
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', string.format('%d', ttl_ms))
return {1, remaining, next_tat - now, -1}
