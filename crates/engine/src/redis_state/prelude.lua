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

-- The streak of `rule` in a row if it runs under `split`, else 0.
local function streak(key, rule, split)
  local v = redis.call('HGET', key, rule)
  if not v then
    return 0
  end
  local n, s = string.match(v, '^(%d+):(.*)$')
  if s == split then
    return tonumber(n)
  end
  return 0
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
