--[[
release_stream.lua: gives back the place of an event stream that ended.

KEYS:
  [1] streams           zset  "{p}:streams:<address>" (see hold_stream.lua)
ARGV:
  [1] stream            the stream's id
Returns:
  {'OK', released}      1 when the stream held a place, else 0
]]
--@include _lib.lua

local K = {streams = KEYS[1]}
return {'OK', redis.call('ZREM', K.streams, ARGV[1])}
