-- Stores a cached entry, replacing any previous one.
--
-- KEYS[1]      the entry
-- ARGV[1]      version-key prefix of the tenant
-- ARGV[2]      the value
-- ARGV[3..5]   created, fresh-until, stale-until (µs)
-- ARGV[6]      the entry's TTL in ms (until its stale deadline)
-- ARGV[7]      the least TTL in ms its tags' version keys must have (they outlive the entry)
-- ARGV[8..]    tag, version, tag, version, …
--
-- A tag whose version key is gone is not recreated: the entry then reads as invalidated, which
-- is right — its versions were read before something (an invalidation or an eviction) changed.
redis.call('DEL', KEYS[1])
local fields = {'v', ARGV[2], 'c', ARGV[3], 'f', ARGV[4], 's', ARGV[5]}
for i = 8, #ARGV, 2 do
  fields[#fields + 1] = 't:' .. ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local least = tonumber(ARGV[7])
for i = 8, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < least then
    redis.call('PEXPIRE', key, ARGV[7])
  end
end
return 1
