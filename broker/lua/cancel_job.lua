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

KEYS: the queue layout of _lib.lua (queue_keys(): job prefix, indexes, stats, ...)
ARGV:
  [1] token
  [2] retention_ms      integer ms: how long the cancelled job is kept
Returns:
  {'OK', previous_state}  'new', 'pending' or 'cancelled'
  {'NOT_FOUND'} | {'BAD_TRANSITION'}
]]
--@include _lib.lua

local K = queue_keys()
local token = ARGV[1]
local jk = K.job_prefix .. token
local f = redis.call('HMGET', jk, 'state', 'member')
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
  redis.call('HSET', jk, 'cancel_requested', now)
end
finish(K, token, member, 'cancelled', now, tonumber(ARGV[2]))
return {'OK', state}
