--[[
next_job.lua: /getNextJob. Names the oldest claimable new job and, when a
reservation time is set, withholds it from other callers for that time. The
job's state stays new (the legacy backend sets it pending itself).

Before looking, it runs the bounded sweep of _lib.lua (expired leases back to
new or failed, expired reservations back to waiting), so a queue that is only
polled still recovers the jobs of dead workers.

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
  [1] reserve_ms        integer ms; 0 = pure peek, as the original
  [2] max_attempts      integer; a lease expiry that reaches it fails the job
  [3] retention_ms      integer ms; how long a failed job is kept
  [4] sweep_limit       integer; most leases/reservations handled in this call
Returns:
  {'OK', token, number, width, height, prompt}
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
local reserve_ms = tonumber(ARGV[1])
if reserve_ms > 0 then
  redis.call('ZREM', K.waiting, member)
  redis.call('ZADD', K.reserved, now + reserve_ms, token)
end
local f = redis.call('HMGET', K.job_prefix .. token, 'number', 'width', 'height', 'prompt')
return {'OK', token, tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), f[4]}
