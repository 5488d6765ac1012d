--[[
renew_lease.lua: a worker's heartbeat. Extends the lease of its claim and
records progress: images done, the fraction of the whole job (denoising steps
included) and, at most about once a second, a small preview of the image being
drawn. Fenced: only the current claim may renew, and a claim whose job was
cancelled learns it here (CANCELLED), so its worker stops at the next step.

The fraction and the preview time are stored as "<fence>:<value>" (fields
`fraction`, `preview_ms`) and the preview as "<fence>:<base64>": readers show
them only while they belong to the job's current claim (job_details.lua,
get_preview.lua), so an earlier attempt's never shows. The preview key expires
with the lease (every renewal extends it) and is deleted when the job finishes.

KEYS:
  [1] job               hash  "{p}:job:<token>": the claimed job
  [2] leases            zset  token -> lease end (ms)
  [3] preview           string "{p}:preview:<token>": "<fence>:<base64 JPEG>"
ARGV:
  [1] token
  [2] fence             the claim's fencing token (returned by the claim)
  [3] lease_ms          integer ms from now
  [4] progress          images done so far; '' = unchanged
  [5] fraction          0..1 of the whole job (steps included); '' = unchanged
  [6] preview           base64 of a small JPEG; '' = none this time
Returns:
  {'OK', lease_until_ms}
  {'NOT_FOUND'}         no job with this token
  {'CANCELLED'}         the job was cancelled while this claim held it
  {'BAD_TRANSITION'}    the job is not pending
  {'STALE_CLAIM'}       another claim holds the job now
]]
--@include _lib.lua

local K = {job = KEYS[1], leases = KEYS[2], preview = KEYS[3]}
local fence = ARGV[2]
local f = redis.call('HMGET', K.job, 'state', 'fence')
if f[1] == 'cancelled' and f[2] == fence then
  return {'CANCELLED'}
end
local refused = claim_error(K.job, fence)
if refused then
  return {refused}
end
local now = now_ms()
local lease_ms = tonumber(ARGV[3])
local until_ms = now + lease_ms
redis.call('ZADD', K.leases, until_ms, ARGV[1])
redis.call('HSET', K.job, 'lease_until', until_ms)
if ARGV[4] ~= '' then
  redis.call('HSET', K.job, 'progress', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', K.job, 'fraction', fence .. ':' .. ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('SET', K.preview, fence .. ':' .. ARGV[6], 'PX', lease_ms)
  redis.call('HSET', K.job, 'preview_ms', fence .. ':' .. now)
else
  redis.call('PEXPIRE', K.preview, lease_ms)
end
return {'OK', until_ms}
