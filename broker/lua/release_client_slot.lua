--[[
release_client_slot.lua: gives back a slot held by hold_client_slot for a
request that did not add its job (its captcha failed). An open job (score 0)
under the same token is never touched.

KEYS:
  [1] client            zset  "{p}:client:<address>" (see hold_client_slot.lua)
ARGV:
  [1] token
Returns:
  {'OK', released}      1 when a held slot was given back, else 0
]]
--@include _lib.lua

local K = {client = KEYS[1]}
local score = redis.call('ZSCORE', K.client, ARGV[1])
if not score or tonumber(score) == 0 then
  return {'OK', 0}
end
redis.call('ZREM', K.client, ARGV[1])
client_expiry(K.client)
return {'OK', 1}
