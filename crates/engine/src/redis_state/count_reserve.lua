-- count_reserve: what a call's limits have used, then its hold taken if it
-- fits, in one step (one round trip; no other client runs in between, so
-- the counts are those the reservation was checked against).
-- ARGV now, hold_ttl, r (the number of counts), then per count rule,
-- split, window, need, max; then the hold's ARGV as `reserve_slots`
-- (prelude.lua) reads them. KEYS per count streak, events, holds; then
-- the hold's keys.
-- A hold slot that a count read (its last ARGV) is checked against that
-- count's reply instead of reading the same keys again.
-- Returns the reservation's answer, then each count's `count_slot` reply.
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local r = tonumber(ARGV[3])
local out = { false }
-- Each count's {committed, held, ...}, by its 1-based place.
local counted = {}
for i = 0, r - 1 do
  local a = 4 + i * 5
  counted[i + 1] = count_slot(KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3],
    ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), now, ttl, tonumber(ARGV[a + 3]),
    tonumber(ARGV[a + 4]))
  out[i + 2] = counted[i + 1]
end
out[1] = reserve_slots(r * 3, 3 + r * 5, now, ttl, counted)
return out
