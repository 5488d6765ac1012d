--[[
set_paused.lua: `sdq admin pause` and `resume`. While paused, claim_job and
next_job hand out nothing (their sweep still runs, so leases of dead workers
still come back); adds are accepted and jobs keep their places; job_details and
queue_figures say the queue is paused. Resuming wakes idle workers. Audited.

KEYS:
  [1] control           hash  `paused` (ms) and `paused_by` while paused
  [2] wakeup            list  pushed on resume, once per waiting job (at most 16)
  [3] waiting           zset  new, not reserved, FIFO (counted)
  [4] fair              zset  new, not reserved, queued fairly (counted)
  [5] audit             list  operator actions
ARGV:
  [1] action            'pause' or 'resume'
  [2] by                who (user@host), for the audit list and `paused_by`
Returns:
  {'OK', was}           was: 'paused' or 'running', the state before this call
]]
--@include _lib.lua

local K = {control = KEYS[1], wakeup = KEYS[2], waiting = KEYS[3], fair = KEYS[4],
  audit = KEYS[5]}
local now = now_ms()
local was = 'running'
if redis.call('HEXISTS', K.control, 'paused') == 1 then
  was = 'paused'
end
if ARGV[1] == 'pause' then
  if was == 'running' then
    redis.call('HSET', K.control, 'paused', now, 'paused_by', ARGV[2])
  end
else
  redis.call('HDEL', K.control, 'paused', 'paused_by')
  local waiting = redis.call('ZCARD', K.waiting) + redis.call('ZCARD', K.fair)
  for _ = 1, math.min(16, waiting) do
    wake(K)
  end
end
audit(K, now, ARGV[1], '', ARGV[2], 'was ' .. was)
return {'OK', was}
