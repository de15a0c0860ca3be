-- One use of the grant at KEYS[1] (a hash: id, and uses when counted; its
-- TTL is its expiry). Returns the grant's id, or nil when there is none or
-- its uses are spent. One script, so parallel calls on any replica take
-- the last use once.
local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  return nil
end
local uses = redis.call('HGET', KEYS[1], 'uses')
if uses then
  uses = tonumber(uses)
  if uses <= 0 then
    redis.call('DEL', KEYS[1])
    return nil
  elseif uses == 1 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HINCRBY', KEYS[1], 'uses', -1)
  end
end
return id
