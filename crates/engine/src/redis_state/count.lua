-- count: KEYS streak, events, holds; ARGV now, rule, split, window,
-- hold_ttl, need, max. Returns {committed, held} and, when `need` does
-- not fit a window, its events as (ms until each leaves, weight) pairs.
local now = now_ms(ARGV[1])
local window = tonumber(ARGV[4])
local committed, h, evs =
  used(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], window, now, tonumber(ARGV[5]))
local out = { committed, h }
if evs and committed + h + tonumber(ARGV[6]) > tonumber(ARGV[7]) then
  for _, e in ipairs(evs) do
    local left = window - math.max(now - e.last, 0)
    out[#out + 1] = math.max(left, 0)
    out[#out + 1] = e.weight
  end
end
return out
