-- Sliding-window counter: a port of analytics_core::resilience::rate_limit::window_decide, one
-- atomic decision.
--
-- KEYS[1]   the limiter key (a hash: i window index, c current count, p previous count)
-- ARGV[1]   now in µs since the epoch, or '' to use the server's clock
-- ARGV[2]   window in µs; ARGV[3] limit
--
-- Returns {allowed (1/0), remaining, reset_after µs, retry_after µs (-1 when allowed)}.
-- Exact while (2 × limit + 1) × window < 2^53 µs (the store checks the policy); idiv, fmt and
-- now_micros come from prelude.lua.
local now = now_micros()
local w, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local index = idiv(now, w)
local elapsed = now - index * w
local state = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local current, previous = 0, 0
if state[1] then
  local stored = tonumber(state[1])
  if stored == index then
    current, previous = tonumber(state[2]), tonumber(state[3])
  elseif stored == index - 1 then
    previous = tonumber(state[2])
  end
end
local used = previous * (w - elapsed) + current * w
if used + w <= limit * w then
  local remaining = idiv(limit * w - used - w, w)
  redis.call('HSET', KEYS[1], 'i', fmt(index), 'c', fmt(current + 1), 'p', fmt(previous))
  -- Forgettable two windows on: its counts no longer weigh on any decision.
  redis.call('PEXPIRE', KEYS[1], ttl_ms((index + 2) * w - now))
  return {1, remaining, w - elapsed, -1}
end
-- The earliest instant the request fits: later in this window as the previous window's weight
-- decays, or in the next one (where this window's count becomes the previous).
local retry_at = nil
if limit > current and previous > 0 then
  local e = math.max(0, w - idiv((limit - current - 1) * w, previous))
  if e < w then
    retry_at = index * w + e
  end
end
if not retry_at then
  local e = 0
  if current > 0 then
    e = math.max(0, w - idiv((limit - 1) * w, current))
  end
  retry_at = (index + 1) * w + e
end
return {0, 0, w - elapsed, math.max(1, retry_at - now)}
