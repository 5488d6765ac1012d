--[[
hold_stream.lua: holds (or extends) one of a client's event-stream places, so
that one client cannot open more than a few streams across all the replicas.
A stream holds its place while it lives, extending the hold every few
seconds; a replica that dies takes its holds with it when they end.

KEYS:
  [1] streams           zset  "{p}:streams:<address>": the client's streams,
                              member a stream id, score = hold end (ms)
ARGV:
  [1] stream            the stream's id (random, one per stream)
  [2] max_streams       integer > 0: the most streams one client may hold
  [3] hold_ms           integer ms: how long the place stays held unless extended
Returns:
  {'OK'}                the place is held until now + hold_ms
  {'TOO_MANY_STREAMS'}  the client holds max_streams others; nothing changed
]]
--@include _lib.lua

local K = {streams = KEYS[1]}
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', K.streams, '-inf', now)
if not redis.call('ZSCORE', K.streams, ARGV[1])
    and redis.call('ZCARD', K.streams) >= tonumber(ARGV[2]) then
  return {'TOO_MANY_STREAMS'}
end
redis.call('ZADD', K.streams, now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', K.streams, tonumber(ARGV[3]))
return {'OK'}
