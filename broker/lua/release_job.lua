--[[
release_job.lua: a worker gives a claimed job back (render or upload failed,
or it is shutting down). The attempt counts; the job returns to its place in the
queue (creation time or start tag kept), or becomes failed at max_attempts. Fenced.
A job a worker claimed ahead of time and gives back before it started on it
(`counted` '0': it was stopped meanwhile) returns the same way, uncounted.

KEYS:
  [1] job               hash  "{p}:job:<token>": the claimed job
  [2] job_prefix        "{p}:job:"; (a job's hash is job_prefix .. token: the shared
                        give-up step drops a job whose hash is gone, which the fence
                        check has ruled out here)
  [3] waiting           zset  new, not reserved, FIFO (a FIFO job returns to it)
  [4] fair              zset  new, not reserved, queued fairly (a fair job returns to it)
  [5] active            zset  new or pending (a failed job leaves it)
  [6] reserved          zset  token -> reservation end (ms)
  [7] leases            zset  token -> lease end (ms)
  [8] running           zset  pending token -> started_ms
  [9] stats             hash  lifetime counters (requeued, failed)
  [10] images           hash  images per unfinished state and resolution
  [11] open             hash  token -> record of each open job
  [12] clients          zset  client key -> images of its open jobs
  [13] client_prefix    "{p}:client:"; a failed job's client zset is client_prefix ..
                        the address in the job's `client` field
  [14] wakeup           list  pushed when the job is claimable again
  [15] image_gc         zset  token -> when its images are due for deletion (finish())
  [16] preview          string "{p}:preview:<token>": the claim's live preview, deleted
ARGV:
  [1] token
  [2] fence             the claim's fencing token (returned by the claim)
  [3] max_attempts      integer
  [4] retention_ms      integer ms
  [5] reason            short text stored as last_error
  [6] counted           '1': the attempt counts; '0': it never started, it does not
Returns:
  {'OK', new_state}     new_state is 'new' or 'failed'
  {'NOT_FOUND'}         no job with this token
  {'BAD_TRANSITION'}    the job is not pending
  {'STALE_CLAIM'}       another claim holds the job now
]]
--@include _lib.lua

local K = {job = KEYS[1], job_prefix = KEYS[2], waiting = KEYS[3], fair = KEYS[4],
  active = KEYS[5], reserved = KEYS[6], leases = KEYS[7], running = KEYS[8], stats = KEYS[9],
  images = KEYS[10], open = KEYS[11], clients = KEYS[12], client_prefix = KEYS[13],
  wakeup = KEYS[14], image_gc = KEYS[15], preview = KEYS[16]}
local refused = claim_error(K.job, ARGV[2])
if refused then
  return {refused}
end
local outcome
if ARGV[6] == '0' then
  -- claimed ahead, never started: back to its place in the queue, uncounted
  local f = redis.call('HMGET', K.job, 'member', 'created_ms', 'number', 'width', 'height',
    'vstart')
  redis.call('ZREM', K.leases, ARGV[1])
  redis.call('ZREM', K.running, ARGV[1])
  redis.call('HSET', K.job, 'state', 'new', 'lease_until', 0, 'progress', 0)
  move_images(K, tonumber(f[3]), f[4] .. 'x' .. f[5], 'pending', 'new')
  enqueue(K, f[1], f[2], f[6])
  wake(K)
  outcome = 'new'
else
  outcome = give_up_attempt(K, K.job, ARGV[1], now_ms(), tonumber(ARGV[3]),
    tonumber(ARGV[4]), ARGV[5])
end
redis.call('DEL', K.preview)
return {'OK', outcome}
