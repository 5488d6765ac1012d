--[[
get_status.lua: what /getJobStatus shows, read in one step. Read-only.

QueueLength of a job queued first come first served (no start tag): the jobs
created strictly earlier that are new or pending (one ZCOUNT), whatever this job's
own state. Of a job queued fairly (SDQ_SCHEDULING=fair): the unfinished jobs served
before it, pending ones included (fair_place in _lib.lua, O(log n)); with every job
from another client that is the same number.

KEYS:
  [1] job               hash  "{p}:job:<token>"
  [2] active            zset  new and pending jobs, score created_ms
  [3] fair              zset  new, not reserved, queued fairly; score the start tag
  [4] waiting           zset  new, not reserved, FIFO
  [5] reserved          zset  token -> reservation end (ms)
  [6] leases            zset  pending jobs
  [7] running           zset  pending token -> started_ms
ARGV: none
Returns:
  {'OK', state, created_ms, now_ms, queue_length, attempts, progress, number, width, height}
  {'NOT_FOUND'}         no job with this token
]]
--@include _lib.lua

local K = {job = KEYS[1], active = KEYS[2], fair = KEYS[3], waiting = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7]}
local f = redis.call('HMGET', K.job, 'state', 'created_ms', 'attempts', 'progress',
  'number', 'width', 'height', 'vstart', 'member', 'started_ms')
if not f[1] or not f[2] then
  return {'NOT_FOUND'}
end
local qlen
if f[8] then
  qlen = math.max(0, (fair_place(K, token_of(f[9]), f[1], f[9], f[10])))
else
  qlen = redis.call('ZCOUNT', K.active, '-inf', '(' .. f[2])
end
return {'OK', f[1], tonumber(f[2]), now_ms(), qlen, tonumber(f[3]), tonumber(f[4]),
  tonumber(f[5]), tonumber(f[6]), tonumber(f[7])}
