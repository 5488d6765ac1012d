--[[
set_state.lua: /setJobStatus. The check and the change are one atomic step,
so of many racing callers exactly one sees OK.

Allowed: new -> pending (starts a lease sized to the work), pending -> complete.

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup)
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
  {'NOT_FOUND'} | {'BAD_TRANSITION'} | {'STALE_CLAIM'}
]]
--@include _lib.lua

local K = queue_keys()
local token = ARGV[1]
local jk = K.job_prefix .. token
local f = redis.call('HMGET', jk, 'state', 'member', 'number', 'width', 'height', 'fence')
local state, member = f[1], f[2]
if not state then
  return {'NOT_FOUND'}
end
local now = now_ms()
local target = ARGV[2]
if target == 'pending' and state == 'new' then
  local pixels = tonumber(f[3]) * tonumber(f[4]) * tonumber(f[5])
  local lease_ms = tonumber(ARGV[3]) + math.ceil(tonumber(ARGV[4]) * pixels / 1000000)
  local fence = start_lease(K, token, member, now, lease_ms, ARGV[7])
  return {'OK', fence, now + lease_ms}
end
if target == 'complete' and state == 'pending' then
  if ARGV[5] ~= '' and ARGV[5] ~= f[6] then
    return {'STALE_CLAIM'}
  end
  finish(K, token, member, 'complete', now, tonumber(ARGV[6]))
  return {'OK', tonumber(f[6]), 0}
end
return {'BAD_TRANSITION'}
