--[[
retry_job.lua: `sdq admin retry TOKEN`: a failed job goes back to new, at its old
place (its creation time, or its start tag when it was queued fairly: the head of
the queue, since it has waited already), with its attempts counted from 0 again.
Its retention ends: it is open again, and its images are no longer due for
deletion (finish() scheduled a failed job's leftovers). A finished job keeps no
client address, so a retried job counts against no client's cap. Audited.

KEYS:
  [1] job               hash  "{p}:job:<token>": the job to retry
  [2] waiting           zset  new, not reserved, FIFO (a FIFO job returns to it)
  [3] fair              zset  new, not reserved, queued fairly (a fair job returns to it)
  [4] active            zset  new or pending; score created_ms
  [5] stats             hash  lifetime counters (this script counts `retried`)
  [6] wakeup            list  pushed: the job is claimable
  [7] images            hash  images per unfinished state and resolution
  [8] open              hash  token -> record of each open job
  [9] audit             list  operator actions
  [10] image_gc         zset  token -> when its images are due for deletion (its entry goes)
ARGV:
  [1] token
  [2] by                who retries (user@host), for the audit list
Returns:
  {'OK'}                the job is new again
  {'NOT_FOUND'}         no job with this token
  {'BAD_TRANSITION'}    the job is not failed; nothing changed
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  stats = KEYS[5], wakeup = KEYS[6], images = KEYS[7], open = KEYS[8], audit = KEYS[9],
  image_gc = KEYS[10]}
local token = ARGV[1]
local f = redis.call('HMGET', K.job, 'state', 'member', 'created_ms', 'number', 'width',
  'height', 'vstart')
local now = now_ms()
if not f[1] or not f[2] then
  audit(K, now, 'retry', token, ARGV[2], 'refused: not found')
  return {'NOT_FOUND'}
end
if f[1] ~= 'failed' then
  audit(K, now, 'retry', token, ARGV[2], 'refused: ' .. f[1])
  return {'BAD_TRANSITION'}
end
local res = f[5] .. 'x' .. f[6]
redis.call('PERSIST', K.job)
redis.call('HSET', K.job, 'state', 'new', 'attempts', 0, 'progress', 0, 'lease_until', 0)
redis.call('HDEL', K.job, 'finished_ms', 'cancel_requested')
redis.call('ZREM', K.image_gc, token)
enqueue(K, f[2], f[3], f[7])
redis.call('ZADD', K.active, f[3], f[2])
record_open(K, token, f[2], f[4], res, '')
move_images(K, tonumber(f[4]), res, nil, 'new')
redis.call('HINCRBY', K.stats, 'retried', 1)
wake(K)
audit(K, now, 'retry', token, ARGV[2], 'new again')
return {'OK'}
