--[[
take_due_images.lua: hands the owner of a local image folder the tokens whose
images are due for deletion (finish() schedules them: a complete job's at its
retention end, a cancelled or failed job's at once) and removes them from the
zset in the same step, so of several owners sharing one folder exactly one
deletes each token's folder.

KEYS:
  [1] image_gc          zset  token -> when its images are due for deletion (ms)
ARGV:
  [1] limit             integer: at most this many tokens per call
Returns:
  {'OK', tokens}        the due tokens taken (a list; empty when none is due)
]]
--@include _lib.lua

local K = {image_gc = KEYS[1]}
local due = redis.call('ZRANGEBYSCORE', K.image_gc, '-inf', now_ms(), 'LIMIT', 0,
  tonumber(ARGV[1]))
if #due > 0 then
  redis.call('ZREM', K.image_gc, unpack(due))
end
return {'OK', due}
