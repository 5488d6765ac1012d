--[[
get_preview.lua: the live preview of a pending job (GET /v2/jobs/<token>/preview).
Read-only. Only the preview the job's current claim wrote is returned, and only
while the job is pending: an earlier attempt's, or a finished job's, never is.

KEYS:
  [1] job               hash  "{p}:job:<token>": the job
  [2] preview           string "{p}:preview:<token>": "<fence>:<base64 JPEG>"
ARGV: none
Returns:
  {'OK', base64}        the preview
  {'OK'}                none now (not pending, none sent yet, or expired)
  {'NOT_FOUND'}         no job with this token
]]
--@include _lib.lua

local K = {job = KEYS[1], preview = KEYS[2]}
local f = redis.call('HMGET', K.job, 'state', 'fence')
if not f[1] then
  return {'NOT_FOUND'}
end
if f[1] ~= 'pending' then
  return {'OK'}
end
local value = redis.call('GET', K.preview)
if not value then
  return {'OK'}
end
local separator = string.find(value, ':', 1, true)
if not separator or string.sub(value, 1, separator - 1) ~= f[2] then
  return {'OK'}
end
return {'OK', string.sub(value, separator + 1)}
