--[[
requeue_expired.lua: the periodic sweep. Any replica may run it at any time
(it is atomic and idempotent); the API runs it every few seconds so that jobs of
dead workers come back even when nobody polls /getNextJob.

KEYS:
  [1] job_prefix        "{p}:job:"; a job's hash is job_prefix .. token, for the
                        tokens the sweep finds in leases and reserved
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
  [1] max_attempts      integer
  [2] retention_ms      integer ms
  [3] sweep_limit       integer; most leases and reservations handled per call
Returns:
  {'OK', requeued, failed, unreserved}
]]
--@include _lib.lua

local K = {job_prefix = KEYS[1], waiting = KEYS[2], active = KEYS[3], reserved = KEYS[4],
  leases = KEYS[5], stats = KEYS[6], wakeup = KEYS[7], images = KEYS[8],
  client_prefix = KEYS[9], image_gc = KEYS[10]}
local requeued, failed, unreserved = sweep(K, now_ms(), tonumber(ARGV[1]),
  tonumber(ARGV[2]), tonumber(ARGV[3]))
return {'OK', requeued, failed, unreserved}
