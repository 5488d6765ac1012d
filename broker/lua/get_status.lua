--[[
get_status.lua: what /getJobStatus shows, read in one step. Read-only.

KEYS:
  [1] job               hash  "{p}:job:<token>"
  [2] active            zset  new and pending jobs, score created_ms
ARGV: none
Returns:
  {'OK', state, created_ms, now_ms, queue_length, attempts, progress, number, width, height}
      queue_length: jobs created strictly earlier than this one that are new or
      pending (O(log n): one ZCOUNT), whatever this job's own state
  {'NOT_FOUND'}         no job with this token
]]
--@include _lib.lua

local K = {job = KEYS[1], active = KEYS[2]}
local f = redis.call('HMGET', K.job, 'state', 'created_ms', 'attempts', 'progress',
  'number', 'width', 'height')
if not f[1] then
  return {'NOT_FOUND'}
end
local qlen = redis.call('ZCOUNT', K.active, '-inf', '(' .. f[2])
return {'OK', f[1], tonumber(f[2]), now_ms(), qlen, tonumber(f[3]), tonumber(f[4]),
  tonumber(f[5]), tonumber(f[6]), tonumber(f[7])}
