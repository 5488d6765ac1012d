--[[
set_state.lua: /setJobStatus. The check and the change are one atomic step,
so of many racing callers exactly one sees OK.

Allowed: new -> pending (starts a lease sized to the work), pending -> complete
(counted in the claim-to-complete histogram of the job's resolution).

KEYS:
  [1] job               hash  "{p}:job:<token>": the job
  [2] waiting           zset  new, not reserved, FIFO (member <seq:016d><token>)
  [3] fair              zset  new, not reserved, queued fairly
  [4] active            zset  new or pending
  [5] reserved          zset  token -> reservation end (ms)
  [6] leases            zset  token -> lease end (ms)
  [7] running           zset  pending token -> started_ms
  [8] stats             hash  lifetime counters (this script counts `complete`)
  [9] images            hash  images per unfinished state and resolution
  [10] open             hash  token -> record of each open job
  [11] clients          zset  client key -> images of its open jobs
  [12] client_prefix    "{p}:client:"; a complete job's client zset is client_prefix ..
                        the address in the job's `client` field
  [13] durations        hash  claim-to-complete histogram (fields in _lib.lua)
  [14] vtime            string  the fair queue's virtual time (moves to the start tag)
  [15] vfinish          zset  client key -> last virtual finish tag (pruned)
  [16] image_gc         zset  token -> when its images are due for deletion (finish())
  [17] preview          string "{p}:preview:<token>": the live preview, deleted on complete
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

local K = {job = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], stats = KEYS[8], images = KEYS[9],
  open = KEYS[10], clients = KEYS[11], client_prefix = KEYS[12], durations = KEYS[13],
  vtime = KEYS[14], vfinish = KEYS[15], image_gc = KEYS[16], preview = KEYS[17]}
local token = ARGV[1]
local f = redis.call('HMGET', K.job, 'state', 'member', 'number', 'width', 'height', 'fence',
  'started_ms', 'vstart')
local state, member = f[1], f[2]
if not state or not member then
  return {'NOT_FOUND'}
end
local now = now_ms()
local target = ARGV[2]
if target == 'pending' and state == 'new' then
  local number = tonumber(f[3])
  local pixels = number * tonumber(f[4]) * tonumber(f[5])
  local lease_ms = tonumber(ARGV[3]) + math.ceil(tonumber(ARGV[4]) * pixels / 1000000)
  local fence = start_lease(K, K.job, token, member, number, f[4] .. 'x' .. f[5], f[8], now,
    lease_ms, ARGV[7])
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
