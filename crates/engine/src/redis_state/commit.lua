-- commit: KEYS the hold's done marker, then each row's streak hash, each
-- window's events, each slot's holds. ARGV: now, the hold id, confirmed
-- ('1' or '0'), idle_ttl, marker_ttl; the number of rows, then per row
-- its number of caps and each cap's rule and split; the number of
-- windows, then per window its window, weight, coalesce, max and summed
-- ('1' or '0'); then the hold's members, one per holds key. Flat
-- arguments rather than one JSON plan, so the script decodes no JSON.
-- Returns 1, or 0 when this hold was committed already (a retry whose
-- first reply was lost must not count the call twice).
-- Only a window needs the time: a commit of caps alone asks for none.
local now = nil
local id = ARGV[2]
local confirmed = ARGV[3] == '1'
local idle_ttl = tonumber(ARGV[4])
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', tonumber(ARGV[5])) then
  return 0
end
local a = 6
local function take()
  a = a + 1
  return ARGV[a - 1]
end
local k = 2
for _ = 1, tonumber(take()) do
  local key = KEYS[k]
  k = k + 1
  -- Streaks of caps this call does not count for end; a confirmed call
  -- ends them all and starts none. Matched caps lengthen or restart.
  local keep = {}
  for _ = 1, tonumber(take()) do
    local rule = take()
    local split = take()
    if not confirmed then
      keep[rule] = split
    end
  end
  -- The row read once: its fields and their streaks.
  local row = redis.call('HGETALL', key)
  local current = {}
  for i = 1, #row, 2 do
    current[row[i]] = row[i + 1]
    if keep[row[i]] == nil then
      redis.call('HDEL', key, row[i])
    end
  end
  local any = false
  for rule, split in pairs(keep) do
    local n = streak_in(current[rule], split)
    redis.call('HSET', key, rule, fmt(n + 1) .. ':' .. split)
    any = true
  end
  if any then
    redis.call('PEXPIRE', key, idle_ttl)
  end
end
for _ = 1, tonumber(take()) do
  local key = KEYS[k]
  k = k + 1
  -- One at a time: Lua leaves the order of a constructor's fields open.
  local w = {}
  w.window = tonumber(take())
  w.weight = tonumber(take())
  w.coalesce = tonumber(take())
  w.max = tonumber(take())
  w.summed = take() == '1'
  now = now or now_ms(ARGV[1])
  local evs = events(key, now, w.window)
  local last = evs[#evs]
  if last and w.coalesce > 0 and now - last.first < w.coalesce then
    -- A budget's amounts within the coalescing interval of the newest
    -- event join it, timed by the latest (it frees late, never early).
    redis.call('ZREM', key, last.member)
    last.weight = last.weight + w.weight
    last.member = last.id .. ':' .. fmt(last.first) .. ':' .. fmt(last.weight)
    redis.call('ZADD', key, now, last.member)
  else
    local e = { member = id .. ':' .. fmt(now) .. ':' .. fmt(w.weight), weight = w.weight }
    redis.call('ZADD', key, now, e.member)
    evs[#evs + 1] = e
  end
  -- Once the newer events refuse every call, the oldest no longer
  -- decides anything.
  local total = 0
  for _, e in ipairs(evs) do
    total = total + e.weight
  end
  local i = 1
  while #evs - i >= 1 do
    local newer = total - evs[i].weight
    local decides
    if w.summed then
      decides = newer > w.max
    else
      decides = newer >= math.max(w.max, 1)
    end
    if not decides then
      break
    end
    total = newer
    redis.call('ZREM', key, evs[i].member)
    i = i + 1
  end
  redis.call('PEXPIRE', key, w.window)
end
for i = a, #ARGV do
  redis.call('ZREM', KEYS[k], ARGV[i])
  k = k + 1
end
return 1
