--[[
next_job.lua: /getNextJob. Names the next job to serve and, when a reservation
time is set, withholds it from other callers for that time. The job's state stays
new (the legacy backend sets it pending itself). While the queue is paused
(sdq admin pause) it names none. A head whose job hash is gone is dropped.

Before looking, it runs the bounded sweep of _lib.lua (expired leases back to
new or failed, expired reservations back to their waiting set), so a queue that
is only polled still recovers the jobs of dead workers.

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
  [15] vtime            string  the fair queue's virtual time (a reserved job moves it)
  [16] vfinish          zset  client key -> last virtual finish tag (pruned)
  [17] control          hash  `paused` while the queue is paused
ARGV:
  [1] reserve_ms        integer ms; 0 = pure peek, as the original
  [2] max_attempts      integer; a lease expiry that reaches it fails the job
  [3] retention_ms      integer ms; how long a failed job is kept
  [4] sweep_limit       integer; most leases/reservations (and dangling heads) per call
Returns:
  {'OK', token, number, width, height, prompt}
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
local reserve_ms = tonumber(ARGV[1])
if reserve_ms > 0 then
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.fair, member)
  redis.call('ZADD', K.reserved, now + reserve_ms, token)
  advance_vtime(K, f[7])
end
return {'OK', token, tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), f[5]}
