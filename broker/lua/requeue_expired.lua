--[[
requeue_expired.lua: the periodic sweep. Any replica may run it at any time
(it is atomic and idempotent); the API runs it every few seconds so that jobs of
dead workers come back even when nobody polls /getNextJob, and calls it again at
once while a batch comes back full. Entries of leases and reserved whose job hash
is gone are dropped (every index, the sums, the client's slot).

KEYS:
  [1] job_prefix        "{p}:job:"; a job's hash is job_prefix .. token, for the
                        tokens the sweep finds in leases and reserved
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
ARGV:
  [1] max_attempts      integer
  [2] retention_ms      integer ms
  [3] sweep_limit       integer; most leases and most reservations handled per call
Returns:
  {'OK', requeued, failed, unreserved, dropped, full, counted}
      requeued, failed: expired leases back to new, and out of attempts
      unreserved: reservations ended; dropped: entries whose job hash was gone
      full: 1 when a batch of leases or of reservations reached sweep_limit (call
            again); counted: 0 when the image sums are to be counted again, job by
            job (a dropped job had no record): the next figures read does it
]]
--@include _lib.lua

local K = {job_prefix = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], stats = KEYS[8], images = KEYS[9],
  open = KEYS[10], clients = KEYS[11], client_prefix = KEYS[12], wakeup = KEYS[13],
  image_gc = KEYS[14]}
local requeued, failed, unreserved, dropped, full = sweep(K, now_ms(), tonumber(ARGV[1]),
  tonumber(ARGV[2]), tonumber(ARGV[3]))
return {'OK', requeued, failed, unreserved, dropped, full,
  redis.call('HEXISTS', K.images, 'resolutions')}
