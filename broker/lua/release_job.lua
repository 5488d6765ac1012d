--[[
release_job.lua: a worker gives a claimed job back (render or upload failed,
or it is shutting down). The attempt counts; the job returns to the head of
the queue with its creation time, or becomes failed at max_attempts. Fenced.

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup)
ARGV:
  [1] token
  [2] fence             the claim's fencing token (returned by the claim)
  [3] max_attempts      integer
  [4] retention_ms      integer ms
  [5] reason            short text stored as last_error
Returns:
  {'OK', new_state}     new_state is 'new' or 'failed'
  {'NOT_FOUND'} | {'BAD_TRANSITION'} (not pending) | {'STALE_CLAIM'}
]]
--@include _lib.lua

local K = queue_keys()
local token = ARGV[1]
local refused = claim_error(K.job_prefix .. token, ARGV[2])
if refused then
  return {refused}
end
local outcome = give_up_attempt(K, token, now_ms(), tonumber(ARGV[3]), tonumber(ARGV[4]),
  ARGV[5])
return {'OK', outcome}
