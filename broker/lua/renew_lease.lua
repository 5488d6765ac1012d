--[[
renew_lease.lua: a worker's heartbeat. Extends the lease of its claim and
records progress. Fenced: only the current claim may renew.

KEYS:
  [1] job               hash  "{p}:job:<token>": the claimed job
  [2] leases            zset  token -> lease end (ms)
ARGV:
  [1] token
  [2] fence             the claim's fencing token (returned by the claim)
  [3] lease_ms          integer ms from now
  [4] progress          images stored so far; '' = unchanged
Returns:
  {'OK', lease_until_ms}
  {'NOT_FOUND'}         no job with this token
  {'BAD_TRANSITION'}    the job is not pending
  {'STALE_CLAIM'}       another claim holds the job now
]]
--@include _lib.lua

local K = {job = KEYS[1], leases = KEYS[2]}
local refused = claim_error(K.job, ARGV[2])
if refused then
  return {refused}
end
local until_ms = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', K.leases, until_ms, ARGV[1])
redis.call('HSET', K.job, 'lease_until', until_ms)
if ARGV[4] ~= '' then
  redis.call('HSET', K.job, 'progress', ARGV[4])
end
return {'OK', until_ms}
