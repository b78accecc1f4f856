-- Book (or refund) token buckets kept in one hash, atomically; return the longest wait in ms.
-- KEYS[1] the hash. ARGV[1] sign (1 = reserve, -1 = refund), then per bucket four values:
-- name, capacity, period (ms), amount. Fields "<name>:l" (level) and "<name>:t" (stamp, ms).
-- Time is the server's (TIME), so clients on machines with drifting clocks agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local sign = tonumber(ARGV[1])
local wait = 0
local ttl = 1
for i = 2, #ARGV, 4 do
  local name = ARGV[i]
  local capacity = tonumber(ARGV[i + 1])
  local period = tonumber(ARGV[i + 2])
  local amount = tonumber(ARGV[i + 3]) * sign
  local rate = capacity / period
  local stored = redis.call('HMGET', KEYS[1], name .. ':l', name .. ':t')
  local level = tonumber(stored[1])
  local stamp = tonumber(stored[2])
  if level == nil or stamp == nil then
    level = capacity
    stamp = now
  elseif now > stamp then
    level = math.min(capacity, level + (now - stamp) * rate)
    stamp = now
  end
  if amount < 0 then
    level = math.min(capacity, level - amount)
  else
    level = level - amount
    if level < 0 then
      wait = math.max(wait, -level / rate)
    end
  end
  redis.call('HSET', KEYS[1], name .. ':l', tostring(level), name .. ':t', tostring(stamp))
  -- once full again the bucket holds nothing a new one would not: let it expire then
  ttl = math.max(ttl, math.ceil((capacity - level) / rate) + 1000)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return tostring(wait)
