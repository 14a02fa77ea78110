-- Looks a cached entry up and reads the current versions of the requested tags, in one call.
--
-- KEYS[1]      the entry (a hash: v value, c/f/s created/fresh/stale in µs, t:<tag> versions)
-- KEYS[2..n]   version keys of the requested tags
-- ARGV[1]      version-key prefix of the tenant (entry tags' version keys are built from it;
--              they share the tenant's hash tag, so they live in the same cluster slot)
-- ARGV[2]      TTL in ms for version keys this call creates
--
-- A requested tag without a version key gets one at a fresh value: the server's clock in µs,
-- which is larger than any version the tag had before (versions only grow by INCR, far slower
-- than the clock). So a version key that was evicted or expired and comes back can never match
-- a version stored in an old entry.
--
-- Returns {versions} when there is no entry, else {versions, value, c, f, s, current, stored}
-- where current is 1 when every tag the entry was stored with still has the version it was
-- stored with (a missing version key counts as changed: eviction can never resurrect a stale
-- entry), and stored lists the entry's tags and versions: tag, version, tag, version, ….
local versions = {}
local fresh_version = nil
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    if not fresh_version then
      local t = redis.call('TIME')
      fresh_version = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
    end
    v = fresh_version
    redis.call('SET', KEYS[i], v, 'PX', ARGV[2])
  end
  versions[#versions + 1] = v
end
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return {versions}
end
local value, created, fresh, stale = nil, nil, nil, nil
local current = 1
local stored_tags = {}
for i = 1, #fields, 2 do
  local name, stored = fields[i], fields[i + 1]
  if name == 'v' then
    value = stored
  elseif name == 'c' then
    created = stored
  elseif name == 'f' then
    fresh = stored
  elseif name == 's' then
    stale = stored
  elseif string.sub(name, 1, 2) == 't:' then
    local tag = string.sub(name, 3)
    stored_tags[#stored_tags + 1] = tag
    stored_tags[#stored_tags + 1] = stored
    if current == 1 and redis.call('GET', ARGV[1] .. tag) ~= stored then
      current = 0
    end
  end
end
return {versions, value, created, fresh, stale, current, stored_tags}
