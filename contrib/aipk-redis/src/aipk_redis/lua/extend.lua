-- Extend a lease lock to ARGV[2] ms from now, only if this owner (ARGV[1]) still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
