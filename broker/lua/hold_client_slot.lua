--[[
hold_client_slot.lua: reserves one of a client's open-job slots for a token
before its captcha is verified, so that a request the open-jobs cap would
refuse never spends a captcha. add_job turns the held slot into the open job;
release_client_slot gives it back when the captcha fails; a slot whose request
died in between frees itself when the hold ends.

KEYS:
  [1] client            zset  "{p}:client:<address>": open jobs (score 0) and
                              held slots (score = hold end, ms)
ARGV:
  [1] token             the token the new job will have
  [2] max_open          integer > 0: the most open jobs (held slots included)
  [3] hold_ms           integer ms: how long the slot stays held
Returns:
  {'OK'}                the slot is held until now + hold_ms
  {'TOO_MANY_OPEN'}     the client is at max_open; nothing changed
]]
--@include _lib.lua

local K = {client = KEYS[1]}
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', K.client, '(0', now)
if redis.call('ZCARD', K.client) >= tonumber(ARGV[2]) then
  return {'TOO_MANY_OPEN'}
end
redis.call('ZADD', K.client, now + tonumber(ARGV[3]), ARGV[1])
client_expiry(K.client)
return {'OK'}
