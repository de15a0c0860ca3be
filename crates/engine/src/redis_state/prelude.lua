-- Shared by warden's state scripts (crates/engine/src/redis_state.rs).
-- Keys: a row's streak hash (field: rule id, value `COUNT:SPLIT`); a
-- window's events (sorted set, member `HOLD:FIRST:WEIGHT`, scored by the
-- event's latest time); a slot's holds (sorted set, member `HOLD:WEIGHT`,
-- scored by when it was taken). Times are milliseconds of store time.

-- Store time: the server's clock (one clock for every replica), unless
-- the caller gives one (tests move time by hand).
local function now_ms(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- The weight live holds take; holds older than the TTL (a replica died
-- between deciding and forwarding) are dropped.
local function held(key, now, ttl)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ttl)
  local sum = 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    sum = sum + tonumber(string.match(m, ':(%d+)$'))
  end
  return sum
end

-- A window's events, oldest first, after dropping those that left it
-- (an event leaves `window` after its latest time).
local function events(key, now, window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local out = {}
  local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    local id, first, weight = string.match(flat[i], '^(%d+):(%d+):(%d+)$')
    out[#out + 1] = {
      member = flat[i],
      id = id,
      first = tonumber(first),
      last = tonumber(flat[i + 1]),
      weight = tonumber(weight),
    }
  end
  return out
end

-- The streak a row's field `v` (`COUNT:SPLIT`, or nil) holds under
-- `split`, else 0.
local function streak_in(v, split)
  if not v then
    return 0
  end
  local n, s = string.match(v, '^(%d+):(.*)$')
  if s == split then
    return tonumber(n)
  end
  return 0
end

-- The streak of `rule` in a row if it runs under `split`, else 0.
local function streak(key, rule, split)
  return streak_in(redis.call('HGET', key, rule), split)
end

-- What a rule committed in a slot (its streak, or its window's weights),
-- the weight held there, and the window's events (nil for a cap).
local function used(streak_key, events_key, holds_key, rule, split, window, now, ttl)
  local committed = 0
  local evs = nil
  if window == 0 then
    committed = streak(streak_key, rule, split)
  else
    evs = events(events_key, now, window)
    for _, e in ipairs(evs) do
      committed = committed + e.weight
    end
  end
  return committed, held(holds_key, now, ttl), evs
end

-- One slot's count (count.lua, count_reserve.lua): {committed, held} and,
-- when `need` does not fit a window, its events as (ms until each leaves,
-- weight) pairs.
local function count_slot(streak_key, events_key, holds_key, rule, split, window, now, ttl, need, max)
  local committed, h, evs = used(streak_key, events_key, holds_key, rule, split, window, now, ttl)
  local out = { committed, h }
  if evs and committed + h + need > max then
    for _, e in ipairs(evs) do
      local left = window - math.max(now - e.last, 0)
      out[#out + 1] = math.max(left, 0)
      out[#out + 1] = e.weight
    end
  end
  return out
end

-- Takes a hold (reserve.lua, count_reserve.lua). Its keys are the last of
-- KEYS, from kb + 1: per slot streak, events, holds; then the user's set
-- of owned keys. ARGV from ab + 1: the hold id, the most owned keys a
-- user may have, the words for that bound, then per slot rule, split,
-- window, weight, max, unchecked, owned member ('' for a key no caller
-- can multiply), how long that key lives, and which count of `counted`
-- read this very slot in the same script (its 1-based place, '0' for
-- none; the caller matches them by keys, rule and window).
-- Checks every slot, then takes all of them: {'held'}, {'full', rule},
-- or {'untracked', words} when the call would pass the user's bound.
local function reserve_slots(kb, ab, now, ttl, counted)
  local id = ARGV[ab + 1]
  local max_owned = tonumber(ARGV[ab + 2])
  local per = 9
  local n = (#KEYS - kb - 1) / 3
  local owner = KEYS[#KEYS]
  local function k(i, j)
    return KEYS[kb + i * 3 + j]
  end
  for i = 0, n - 1 do
    local a = ab + 4 + i * per
    if ARGV[a + 5] == '0' then
      local c, h
      local read = counted and counted[tonumber(ARGV[a + 8])]
      if read then
        -- Read by this script a moment ago, nothing written since.
        c, h = read[1], read[2]
      else
        c, h = used(k(i, 1), k(i, 2), k(i, 3),
          ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), now, ttl)
      end
      if c + h + tonumber(ARGV[a + 3]) > tonumber(ARGV[a + 4]) then
        return { 'full', ARGV[a] }
      end
    end
  end
  -- Keys a caller can multiply by declaring names (a session, an agent, a
  -- model or tool value) count towards the user's bound while they live.
  -- Only such a key needs the set pruned and read; a hold without one
  -- leaves it for the next that has one.
  local fresh, seen = 0, {}
  for i = 0, n - 1 do
    local m = ARGV[ab + 4 + i * per + 6]
    if m ~= '' and not seen[m] then
      if next(seen) == nil then
        redis.call('ZREMRANGEBYSCORE', owner, '-inf', now)
      end
      seen[m] = true
      if not redis.call('ZSCORE', owner, m) then
        fresh = fresh + 1
      end
    end
  end
  if fresh > 0 and redis.call('ZCARD', owner) + fresh > max_owned then
    return { 'untracked', ARGV[ab + 3] }
  end
  local longest = 0
  for i = 0, n - 1 do
    local a = ab + 4 + i * per
    redis.call('ZADD', k(i, 3), now, id .. ':' .. ARGV[a + 3])
    redis.call('PEXPIRE', k(i, 3), ttl)
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
end
