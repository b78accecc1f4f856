-- Book client-side limits kept as sliding windows, atomically; return the wait in ms.
-- KEYS[1] the hash: one field per limit holding its window's log, "<tail start> <end 1>
-- <amount 1> <end 2> <amount 2> ..." (groups of bookings, times in ms). ARGV[1] the longest
-- wait the caller accepts (ms; '' = any): a longer one books nothing. ARGV[2] '' (the
-- server's TIME, so clients on machines with drifting clocks agree) or a time in ms (tests).
-- Then per limit four values: name, capacity, period (ms), amount. This is
-- aipk.state.window_slot and window_book line by line (WINDOW_GROUPS = 32). Redis >= 6.
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local max_wait = tonumber(ARGV[1])
local logs = {}
local slot = now
for i = 3, #ARGV, 4 do
  local capacity = tonumber(ARGV[i + 1])
  local period = tonumber(ARGV[i + 2])
  local amount = math.min(tonumber(ARGV[i + 3]), capacity)
  local log = {}
  local stored = redis.call('HGET', KEYS[1], ARGV[i])
  if stored then
    for x in string.gmatch(stored, '%S+') do log[#log + 1] = tonumber(x) end
  end
  -- window_slot: drop the groups past the window, then find the earliest slot with room
  local n = #log
  local first = 2
  while first <= n and log[first] + period <= now do first = first + 2 end
  if first > 2 then
    local kept = {log[1]}
    for j = first, n do kept[#kept + 1] = log[j] end
    log = kept
    n = #log
  end
  local at = now
  if n > 1 and log[n - 1] > at then at = log[n - 1] end
  local total = 0
  for j = 3, n, 2 do total = total + log[j] end
  local j = 2
  while j <= n do
    local e = log[j]
    if e + period <= at then
      total = total - log[j + 1]
    elseif total + amount > capacity then
      at = e + period
      total = total - log[j + 1]
    else
      break
    end
    j = j + 2
  end
  if at > slot then slot = at end
  logs[#logs + 1] = log
end
local wait = slot - now
if max_wait ~= nil and wait > max_wait then
  return tostring(wait)
end
local ttl = 1
local k = 0
for i = 3, #ARGV, 4 do
  k = k + 1
  local log = logs[k]
  local period = tonumber(ARGV[i + 2])
  local amount = math.min(tonumber(ARGV[i + 3]), tonumber(ARGV[i + 1]))
  -- window_book
  local n = #log
  if n > 1 and slot - log[1] < period / 32 then
    log[n - 1] = slot
    log[n] = log[n] + amount
  elseif n > 1 then
    log[1] = slot
    log[n + 1] = slot
    log[n + 2] = amount
  else
    log = {slot, slot, amount}
  end
  local parts = {}
  for j = 1, #log do parts[j] = string.format('%.17g', log[j]) end
  redis.call('HSET', KEYS[1], ARGV[i], table.concat(parts, ' '))
  -- once its last group no longer counts the window holds nothing: let it expire then
  ttl = math.max(ttl, math.ceil(log[#log - 1] + period - now) + 1000)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return tostring(wait)
