--[[
claim_job.lua: the direct (Redis) worker's claim. Oldest claimable new job ->
pending under a lease, in one step: two workers never get the same job.
Runs the bounded sweep of _lib.lua first.

KEYS:
  [1] job_prefix        "{p}:job:"; a job's hash is job_prefix .. token, for the
                        token at the head of waiting and those the sweep finds in
                        leases and reserved
  [2] waiting           zset  new, not reserved; score created_ms, member <seq:016d><token>
  [3] active            zset  new or pending (a job the sweep fails leaves it)
  [4] reserved          zset  token -> reservation end (ms)
  [5] leases            zset  token -> lease end (ms)
  [6] stats             hash  lifetime counters (requeued, failed)
  [7] wakeup            list  pushed when the sweep makes a job claimable
  [8] images            hash  images per unfinished state
  [9] client_prefix     "{p}:client:"; a failed job's client zset is client_prefix ..
                        the address in the job's `client` field
  [10] image_gc         zset  token -> when its images are due for deletion (finish())
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

local K = {job_prefix = KEYS[1], waiting = KEYS[2], active = KEYS[3], reserved = KEYS[4],
  leases = KEYS[5], stats = KEYS[6], wakeup = KEYS[7], images = KEYS[8],
  client_prefix = KEYS[9], image_gc = KEYS[10]}
local now = now_ms()
sweep(K, now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local head = redis.call('ZRANGE', K.waiting, 0, 0)
if #head == 0 then
  return {'OK'}
end
local member = head[1]
local token = token_of(member)
local jk = K.job_prefix .. token
local f = redis.call('HMGET', jk, 'number', 'width', 'height', 'prompt', 'created_ms')
local lease_ms = tonumber(ARGV[1])
local fence = start_lease(K, jk, token, member, tonumber(f[1]), now, lease_ms, ARGV[5])
return {'OK', token, tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), f[4], fence,
  now + lease_ms, tonumber(f[5])}
