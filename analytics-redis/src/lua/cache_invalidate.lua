-- Invalidates tags: increments each tag's version (keeping its TTL).
--
-- KEYS[1..n]   version keys
--
-- A missing version key is left missing: every entry carrying it already reads as invalidated,
-- and the next lookup creates it at a fresh value no entry was stored with.
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCR', KEYS[i])
  end
end
return #KEYS
