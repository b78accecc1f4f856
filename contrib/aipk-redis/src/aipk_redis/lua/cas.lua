-- Compare-and-set one value: write ARGV[2] (delete when empty) if the key still holds ARGV[1]
-- ('' = absent). Returns {1} on success, {0, current} otherwise (so a retry needs no GET).
-- ARGV[3] TTL in ms (> 0). Redis >= 6 (PX on SET).
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then
  return {0, current}
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return {1}
