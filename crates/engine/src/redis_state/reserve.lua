-- reserve: per slot, KEYS streak, events, holds; then the user's set of
-- owned keys. ARGV now, hold_ttl, hold id, the most owned keys a user may
-- have, the words for that bound, then per slot rule, split, window,
-- weight, max, unchecked, owned member ('' for a key no caller can
-- multiply), and how long that key lives.
-- Checks every slot, then takes all of them: {'held'}, {'full', rule},
-- or {'untracked', words} when the call would pass the user's bound.
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local id = ARGV[3]
local max_owned = tonumber(ARGV[4])
local per = 8
local n = (#KEYS - 1) / 3
local owner = KEYS[#KEYS]
for i = 0, n - 1 do
  local a = 6 + i * per
  if ARGV[a + 5] == '0' then
    local c, h = used(KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3],
      ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), now, ttl)
    if c + h + tonumber(ARGV[a + 3]) > tonumber(ARGV[a + 4]) then
      return { 'full', ARGV[a] }
    end
  end
end
-- Keys a caller can multiply by declaring names (a session, an agent, a
-- model or tool value) count towards the user's bound while they live.
redis.call('ZREMRANGEBYSCORE', owner, '-inf', now)
local fresh, seen = 0, {}
for i = 0, n - 1 do
  local m = ARGV[6 + i * per + 6]
  if m ~= '' and not seen[m] then
    seen[m] = true
    if not redis.call('ZSCORE', owner, m) then
      fresh = fresh + 1
    end
  end
end
if fresh > 0 and redis.call('ZCARD', owner) + fresh > max_owned then
  return { 'untracked', ARGV[5] }
end
local longest = 0
for i = 0, n - 1 do
  local a = 6 + i * per
  redis.call('ZADD', KEYS[i * 3 + 3], now, id .. ':' .. ARGV[a + 3])
  redis.call('PEXPIRE', KEYS[i * 3 + 3], ttl)
  local m = ARGV[a + 6]
  if m ~= '' then
    local life = tonumber(ARGV[a + 7])
    local exp = now + life
    local cur = redis.call('ZSCORE', owner, m)
    if not cur or tonumber(cur) < exp then
      redis.call('ZADD', owner, exp, m)
    end
    longest = math.max(longest, life)
  end
end
if longest > 0 and redis.call('PTTL', owner) < longest then
  redis.call('PEXPIRE', owner, longest)
end
return { 'held' }
