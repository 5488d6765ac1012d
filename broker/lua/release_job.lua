--[[
release_job.lua: a worker gives a claimed job back (render or upload failed,
or it is shutting down). The attempt counts; the job returns to the head of
the queue with its creation time, or becomes failed at max_attempts. Fenced.
A job a worker claimed ahead of time and gives back before it started on it
(`counted` '0': it was stopped meanwhile) returns the same way, uncounted.

KEYS:
  [1] job               hash  "{p}:job:<token>": the claimed job
  [2] waiting           zset  new, not reserved (the job returns to it)
  [3] active            zset  new or pending (a failed job leaves it)
  [4] reserved          zset  token -> reservation end (ms)
  [5] leases            zset  token -> lease end (ms)
  [6] stats             hash  lifetime counters (requeued, failed)
  [7] wakeup            list  pushed when the job is claimable again
  [8] images            hash  images per unfinished state
  [9] client_prefix     "{p}:client:"; a failed job's client zset is client_prefix ..
                        the address in the job's `client` field
  [10] image_gc         zset  token -> when its images are due for deletion (finish())
  [11] preview          string "{p}:preview:<token>": the claim's live preview, deleted
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

local K = {job = KEYS[1], waiting = KEYS[2], active = KEYS[3], reserved = KEYS[4],
  leases = KEYS[5], stats = KEYS[6], wakeup = KEYS[7], images = KEYS[8],
  client_prefix = KEYS[9], image_gc = KEYS[10], preview = KEYS[11]}
local refused = claim_error(K.job, ARGV[2])
if refused then
  return {refused}
end
local outcome
if ARGV[6] == '0' then
  -- [worker lane] claimed ahead, never started: back to the head of the queue, uncounted
  local f = redis.call('HMGET', K.job, 'member', 'created_ms', 'number')
  redis.call('ZREM', K.leases, ARGV[1])
  redis.call('HSET', K.job, 'state', 'new', 'lease_until', 0, 'progress', 0)
  move_images(K, tonumber(f[3]), 'pending', 'new')
  redis.call('ZADD', K.waiting, f[2], f[1])
  wake(K)
  outcome = 'new'
else
  outcome = give_up_attempt(K, K.job, ARGV[1], now_ms(), tonumber(ARGV[3]),
    tonumber(ARGV[4]), ARGV[5])
end
redis.call('DEL', K.preview)
return {'OK', outcome}
