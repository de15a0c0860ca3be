-- count: KEYS streak, events, holds; ARGV now, rule, split, window,
-- hold_ttl, need, max. Returns `count_slot` (prelude.lua).
return count_slot(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], tonumber(ARGV[4]),
  now_ms(ARGV[1]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
