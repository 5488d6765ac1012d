--[[
claim_job.lua: the direct (Redis) worker's claim. Oldest claimable new job ->
pending under a lease, in one step: two workers never get the same job.
Runs the bounded sweep of _lib.lua first.

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup)
ARGV:
  [1] lease_ms          integer ms; the worker renews it while it renders
  [2] max_attempts      integer
  [3] retention_ms      integer ms
  [4] sweep_limit       integer
  [5] worker            the worker's id
Returns:
  {'OK', token, number, width, height, prompt, fence, lease_until_ms, created_ms}
  {'OK'}                no claimable job
]]
--@include _lib.lua

local K = queue_keys()
local now = now_ms()
sweep(K, now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local head = redis.call('ZRANGE', K.waiting, 0, 0)
if #head == 0 then
  return {'OK'}
end
local member = head[1]
local token = token_of(member)
local lease_ms = tonumber(ARGV[1])
local fence = start_lease(K, token, member, now, lease_ms, ARGV[5])
local f = redis.call('HMGET', K.job_prefix .. token, 'number', 'width', 'height', 'prompt',
  'created_ms')
return {'OK', token, tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), f[4], fence,
  now + lease_ms, tonumber(f[5])}
