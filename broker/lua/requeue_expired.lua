--[[
requeue_expired.lua: the periodic sweep. Any replica may run it at any time
(it is atomic and idempotent); the API runs it every few seconds so that jobs of
dead workers come back even when nobody polls /getNextJob.

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup)
ARGV:
  [1] max_attempts      integer
  [2] retention_ms      integer ms
  [3] sweep_limit       integer; most leases and reservations handled per call
Returns:
  {'OK', requeued, failed, unreserved}
]]
--@include _lib.lua

local K = queue_keys()
local requeued, failed, unreserved = sweep(K, now_ms(), tonumber(ARGV[1]),
  tonumber(ARGV[2]), tonumber(ARGV[3]))
return {'OK', requeued, failed, unreserved}
