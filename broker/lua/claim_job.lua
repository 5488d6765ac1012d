--[[
claim_job.lua: the direct (Redis) worker's claim. The next job to serve -> pending
under a lease, in one step: two workers never get the same job. Runs the bounded
sweep of _lib.lua first. While the queue is paused (sdq admin pause) it hands out
nothing. A head of the queue whose job hash is gone is dropped, never claimed.

KEYS:
  [1] job_prefix        "{p}:job:"; a job's hash is job_prefix .. token, for the
                        tokens at the head of waiting and fair and those the sweep
                        finds in leases and reserved
  [2] waiting           zset  new, not reserved, FIFO; score created_ms, member <seq:016d><token>
  [3] fair              zset  new, not reserved, queued fairly; score the start tag
  [4] active            zset  new or pending (a job the sweep fails leaves it)
  [5] reserved          zset  token -> reservation end (ms)
  [6] leases            zset  token -> lease end (ms)
  [7] running           zset  pending token -> started_ms
  [8] stats             hash  lifetime counters (requeued, failed)
  [9] images            hash  images per unfinished state and resolution
  [10] open             hash  token -> record of each open job
  [11] clients          zset  client key -> images of its open jobs
  [12] client_prefix    "{p}:client:"; a failed or dropped job's client zset is
                        client_prefix .. the address in its `client` field or record
  [13] wakeup           list  pushed when the sweep makes a job claimable
  [14] image_gc         zset  token -> when its images are due for deletion (finish())
  [15] vtime            string  the fair queue's virtual time (moves to the start tag)
  [16] vfinish          zset  client key -> last virtual finish tag (pruned)
  [17] control          hash  `paused` while the queue is paused
ARGV:
  [1] lease_ms          integer ms; the worker renews it while it renders
  [2] max_attempts      integer
  [3] retention_ms      integer ms
  [4] sweep_limit       integer; also the most dangling heads dropped in one call
  [5] worker            the worker's id
Returns:
  {'OK', token, number, width, height, prompt, fence, lease_until_ms, created_ms}
  {'OK'}                no claimable job, or the queue is paused
]]
--@include _lib.lua

local K = {job_prefix = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], stats = KEYS[8], images = KEYS[9],
  open = KEYS[10], clients = KEYS[11], client_prefix = KEYS[12], wakeup = KEYS[13],
  image_gc = KEYS[14], vtime = KEYS[15], vfinish = KEYS[16], control = KEYS[17]}
local now = now_ms()
local limit = tonumber(ARGV[4])
sweep(K, now, tonumber(ARGV[2]), tonumber(ARGV[3]), limit)
if redis.call('HEXISTS', K.control, 'paused') == 1 then
  return {'OK'}
end
local member, token, f = next_head(K, limit)
if not member then
  return {'OK'}
end
local lease_ms = tonumber(ARGV[1])
local fence = start_lease(K, K.job_prefix .. token, token, member, tonumber(f[2]),
  f[3] .. 'x' .. f[4], f[7], now, lease_ms, ARGV[5])
return {'OK', token, tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), f[5], fence,
  now + lease_ms, tonumber(f[6])}
