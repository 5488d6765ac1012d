--[[
cancel_job.lua: the v2 API's DELETE. The job's token is the capability, so
whoever holds it may withdraw the job while it is not finished.

  new        leaves the queue at once: state cancelled (terminal), off every
             index, kept for retention_ms like a complete job
  pending    the same, and the job hash gets `cancel_requested` = now (ms): the
             worker that renders it sees the flag between pipeline calls (and
             its next lease renewal or completion is refused: the job is no
             longer pending), so it stops and never completes the job
  cancelled  nothing changes (a repeated DELETE is harmless)
  complete, failed   BAD_TRANSITION: there is nothing left to cancel

KEYS:
  [1] job               hash  "{p}:job:<token>": the job to cancel
  [2] waiting           zset  new, not reserved (member <seq:016d><token>)
  [3] active            zset  new or pending
  [4] reserved          zset  token -> reservation end (ms)
  [5] leases            zset  token -> lease end (ms)
  [6] stats             hash  lifetime counters (this script counts `cancelled`)
  [7] images            hash  images per unfinished state (this job's leave)
  [8] client_prefix     "{p}:client:"; the job's client zset is client_prefix .. the
                        address in the job's `client` field (its open job is dropped)
  [9] image_gc          zset  token -> when its images are due for deletion (finish())
  [10] preview          string "{p}:preview:<token>": the live preview, deleted
ARGV:
  [1] token
  [2] retention_ms      integer ms: how long the cancelled job is kept
Returns:
  {'OK', previous_state}  'new', 'pending' or 'cancelled'
  {'NOT_FOUND'}         no job with this token
  {'BAD_TRANSITION'}    the job is complete or failed
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], active = KEYS[3], reserved = KEYS[4],
  leases = KEYS[5], stats = KEYS[6], images = KEYS[7], client_prefix = KEYS[8],
  image_gc = KEYS[9], preview = KEYS[10]}
local token = ARGV[1]
local f = redis.call('HMGET', K.job, 'state', 'member')
local state, member = f[1], f[2]
if not state then
  return {'NOT_FOUND'}
end
if state == 'cancelled' then
  return {'OK', state}
end
if state ~= 'new' and state ~= 'pending' then
  return {'BAD_TRANSITION'}
end
local now = now_ms()
if state == 'pending' then
  redis.call('HSET', K.job, 'cancel_requested', now)
end
finish(K, K.job, token, member, 'cancelled', now, tonumber(ARGV[2]))
redis.call('DEL', K.preview)  -- [worker lane] a finished job has no live preview
return {'OK', state}
