--[[
next_job.lua: /getNextJob. Names the oldest claimable new job and, when a
reservation time is set, withholds it from other callers for that time. The
job's state stays new (the legacy backend sets it pending itself).

Before looking, it runs the bounded sweep of _lib.lua (expired leases back to
new or failed, expired reservations back to waiting), so a queue that is only
polled still recovers the jobs of dead workers.

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup)
ARGV:
  [1] reserve_ms        integer ms; 0 = pure peek, as the original
  [2] max_attempts      integer; a lease expiry that reaches it fails the job
  [3] retention_ms      integer ms; how long a failed job is kept
  [4] sweep_limit       integer; most leases/reservations handled in this call
Returns:
  {'OK', token, number, width, height, prompt}
  {'OK'}                no claimable job
]]
--@include _lib.lua

local K = queue_keys()
local now = now_ms()
sweep(K, now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local head = redis.call('ZRANGE', K.waiting, 0, 0)
if #head == 0 then
  return {'OK'}
end
local member = head[1]
local token = token_of(member)
local reserve_ms = tonumber(ARGV[1])
if reserve_ms > 0 then
  redis.call('ZREM', K.waiting, member)
  redis.call('ZADD', K.reserved, now + reserve_ms, token)
end
local f = redis.call('HMGET', K.job_prefix .. token, 'number', 'width', 'height', 'prompt')
return {'OK', token, tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), f[4]}
