--[[
renew_lease.lua: a worker's heartbeat. Extends the lease of its claim and
records progress. Fenced: only the current claim may renew.

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup)
ARGV:
  [1] token
  [2] fence             the claim's fencing token (returned by the claim)
  [3] lease_ms          integer ms from now
  [4] progress          images stored so far; '' = unchanged
Returns:
  {'OK', lease_until_ms}
  {'NOT_FOUND'} | {'BAD_TRANSITION'} (not pending) | {'STALE_CLAIM'}
]]
--@include _lib.lua

local K = queue_keys()
local token = ARGV[1]
local jk = K.job_prefix .. token
local refused = claim_error(jk, ARGV[2])
if refused then
  return {refused}
end
local until_ms = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', K.leases, until_ms, token)
redis.call('HSET', jk, 'lease_until', until_ms)
if ARGV[4] ~= '' then
  redis.call('HSET', jk, 'progress', ARGV[4])
end
return {'OK', until_ms}
