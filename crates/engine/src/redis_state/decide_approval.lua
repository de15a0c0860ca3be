-- Decides the approval at KEYS[1] as ARGV[1] if it exists (its TTL is its
-- expiry) and has no decision yet: 1 for the one caller that did, else 0.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
return redis.call('HSETNX', KEYS[1], 'decision', ARGV[1])
