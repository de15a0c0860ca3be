-- reserve: per slot, KEYS streak, events, holds; ARGV now, hold_ttl,
-- hold id, then per slot rule, split, window, weight, max, unchecked.
-- Checks every slot, then takes all of them: {'held'}, or {'full', rule}.
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local id = ARGV[3]
local n = #KEYS / 3
for i = 0, n - 1 do
  local a = 4 + i * 6
  if ARGV[a + 5] == '0' then
    local c, h = used(KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3],
      ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), now, ttl)
    if c + h + tonumber(ARGV[a + 3]) > tonumber(ARGV[a + 4]) then
      return { 'full', ARGV[a] }
    end
  end
end
for i = 0, n - 1 do
  local a = 4 + i * 6
  redis.call('ZADD', KEYS[i * 3 + 3], now, id .. ':' .. ARGV[a + 3])
  redis.call('PEXPIRE', KEYS[i * 3 + 3], ttl)
end
return { 'held' }
