--[[
set_state.lua: /setJobStatus. The check and the change are one atomic step,
so of many racing callers exactly one sees OK.

Allowed: new -> pending (starts a lease sized to the work), pending -> complete
(counted in the claim-to-complete histogram of the job's resolution).

KEYS:
  [1] job               hash  "{p}:job:<token>": the job
  [2] waiting           zset  new, not reserved (member <seq:016d><token>)
  [3] active            zset  new or pending
  [4] reserved          zset  token -> reservation end (ms)
  [5] leases            zset  token -> lease end (ms)
  [6] stats             hash  lifetime counters (this script counts `complete`)
  [7] durations         hash  claim-to-complete histogram (fields in _lib.lua)
  [8] images            hash  images per unfinished state
  [9] client_prefix     "{p}:client:"; a complete job's client zset is client_prefix ..
                        the address in the job's `client` field
  [10] image_gc         zset  token -> when its images are due for deletion (finish())
  [11] preview          string "{p}:preview:<token>": the live preview, deleted on complete
ARGV:
  [1] token
  [2] target            'pending' or 'complete'
  [3] lease_base_ms     integer ms: the lease of a claim without heartbeat ...
  [4] lease_per_mp_ms   integer ms: ... plus this per image per megapixel
  [5] fence             '' = unfenced (legacy); else the claim's fence, which must match
  [6] retention_ms      integer ms: how long a complete job is kept
  [7] worker            free text naming the claimant (for /metrics and logs)
Returns:
  {'OK', fence, lease_until_ms}  lease_until_ms is 0 after complete
  {'NOT_FOUND'}         no job with this token
  {'BAD_TRANSITION'}    neither new -> pending nor pending -> complete
  {'STALE_CLAIM'}       complete with a fence that is not the job's current one
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], active = KEYS[3], reserved = KEYS[4],
  leases = KEYS[5], stats = KEYS[6], durations = KEYS[7], images = KEYS[8],
  client_prefix = KEYS[9], image_gc = KEYS[10], preview = KEYS[11]}
local token = ARGV[1]
local f = redis.call('HMGET', K.job, 'state', 'member', 'number', 'width', 'height', 'fence',
  'started_ms')
local state, member = f[1], f[2]
if not state then
  return {'NOT_FOUND'}
end
local now = now_ms()
local target = ARGV[2]
if target == 'pending' and state == 'new' then
  local number = tonumber(f[3])
  local pixels = number * tonumber(f[4]) * tonumber(f[5])
  local lease_ms = tonumber(ARGV[3]) + math.ceil(tonumber(ARGV[4]) * pixels / 1000000)
  local fence = start_lease(K, K.job, token, member, number, now, lease_ms, ARGV[7])
  return {'OK', fence, now + lease_ms}
end
if target == 'complete' and state == 'pending' then
  if ARGV[5] ~= '' and ARGV[5] ~= f[6] then
    return {'STALE_CLAIM'}
  end
  if f[7] then
    record_duration(K, f[4] .. 'x' .. f[5], now - tonumber(f[7]))
  end
  finish(K, K.job, token, member, 'complete', now, tonumber(ARGV[6]))
  redis.call('DEL', K.preview)
  return {'OK', tonumber(f[6]), 0}
end
return {'BAD_TRANSITION'}
