--[[
cancel_job.lua: the v2 API's DELETE, and `sdq admin cancel`. The job's token is
the capability, so whoever holds it may withdraw the job while it is not finished.

  new        leaves the queue at once: state cancelled (terminal), off every
             index, kept for retention_ms like a complete job; queued fairly and
             its client's last job, the client's finish tag goes back to its start
  pending    the same, and the job hash gets `cancel_requested` = now (ms): the
             worker that renders it sees the flag between pipeline calls (and
             its next lease renewal or completion is refused: the job is no
             longer pending), so it stops and never completes the job
  cancelled  nothing changes (a repeated DELETE is harmless)
  complete, failed   BAD_TRANSITION: there is nothing left to cancel

KEYS:
  [1] job               hash  "{p}:job:<token>": the job to cancel
  [2] waiting           zset  new, not reserved, FIFO (member <seq:016d><token>)
  [3] fair              zset  new, not reserved, queued fairly
  [4] active            zset  new or pending
  [5] reserved          zset  token -> reservation end (ms)
  [6] leases            zset  token -> lease end (ms)
  [7] running           zset  pending token -> started_ms
  [8] stats             hash  lifetime counters (this script counts `cancelled`)
  [9] images            hash  images per unfinished state (this job's leave)
  [10] open             hash  token -> record of each open job (this job's goes)
  [11] clients          zset  client key -> images of its open jobs
  [12] client_prefix    "{p}:client:"; the job's client zset is client_prefix .. the
                        address in the job's `client` field (its open job is dropped)
  [13] vfinish          zset  client key -> its last virtual finish tag
  [14] audit            list  operator actions (written only when ARGV[3] is not '')
  [15] image_gc         zset  token -> when its images are due for deletion (finish())
  [16] preview          string "{p}:preview:<token>": the live preview, deleted
ARGV:
  [1] token
  [2] retention_ms      integer ms: how long the cancelled job is kept
  [3] by                '' (the v2 API: not audited), or who cancels (sdq admin): the
                        action goes to the audit list
Returns:
  {'OK', previous_state}  'new', 'pending' or 'cancelled'
  {'NOT_FOUND'}         no job with this token
  {'BAD_TRANSITION'}    the job is complete or failed
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], stats = KEYS[8], images = KEYS[9],
  open = KEYS[10], clients = KEYS[11], client_prefix = KEYS[12], vfinish = KEYS[13],
  audit = KEYS[14], image_gc = KEYS[15], preview = KEYS[16]}
local token = ARGV[1]
local f = redis.call('HMGET', K.job, 'state', 'member', 'vstart', 'vcost', 'client')
local state, member = f[1], f[2]
if not state or not member then
  return {'NOT_FOUND'}
end
local now = now_ms()
local function audited(outcome)
  if ARGV[3] ~= '' then
    audit(K, now, 'cancel', token, ARGV[3], outcome)
  end
end
if state == 'cancelled' then
  audited('already cancelled')
  return {'OK', state}
end
if state ~= 'new' and state ~= 'pending' then
  audited('refused: ' .. state)
  return {'BAD_TRANSITION'}
end
if state == 'pending' then
  redis.call('HSET', K.job, 'cancel_requested', now)
end
if state == 'new' and f[3] then
  local tag = f[5] or '-'
  if tonumber(redis.call('ZSCORE', K.vfinish, tag)) == tonumber(f[3]) + tonumber(f[4]) then
    redis.call('ZADD', K.vfinish, f[3], tag)
  end
end
finish(K, K.job, token, member, 'cancelled', now, tonumber(ARGV[2]))
redis.call('DEL', K.preview)  -- a finished job has no live preview
audited('cancelled (was ' .. state .. ')')
return {'OK', state}
