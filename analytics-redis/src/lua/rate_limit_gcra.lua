-- GCRA: a port of analytics_core::resilience::rate_limit::gcra_decide, one atomic decision.
--
-- KEYS[1]   the limiter key (its value: the theoretical arrival time, µs since the epoch)
-- ARGV[1]   now in µs since the epoch, or '' to use the server's clock (so instances agree)
-- ARGV[2]   period in µs; ARGV[3] limit; ARGV[4] burst
--
-- Returns {allowed (1/0), remaining, reset_after µs, retry_after µs (-1 when allowed)}.
-- Every value stays below 2^53 (the store checks the policy); idiv, fmt and now_micros come from
-- prelude.lua.
local now = now_micros()
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
-- Forgettable once the arrival time has passed: a fresh state decides the same from then on.
redis.call('SET', KEYS[1], fmt(next_tat), 'PX', ttl_ms(next_tat - now))
return {1, remaining, next_tat - now, -1}
