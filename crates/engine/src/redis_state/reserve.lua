-- reserve: KEYS and ARGV as `reserve_slots` (prelude.lua) reads them, from
-- the first; ARGV before them: now, hold_ttl.
return reserve_slots(0, 2, now_ms(ARGV[1]), tonumber(ARGV[2]))
