--[[
job_details.lua: everything the v2 API shows of one job, read in one step
(state, progress, place in the queue, the work ahead of it, live workers and
measured render times, for the ETA). Read-only, and O(log n) whatever the queue's
depth: the place is exact (ZRANK, ZCOUNT), the work ahead is read as counts and
running sums, never job by job (broker/details.py estimates it from them).

KEYS:
  [1] job               hash  "{p}:job:<token>": the job shown
  [2] active            zset  new and pending jobs (score created_ms, FIFO member)
  [3] fair              zset  new, not reserved, queued fairly; score the start tag
  [4] waiting           zset  new, not reserved, FIFO
  [5] reserved          zset  new, handed out: token -> reservation end (ms)
  [6] leases            zset  pending jobs (one per busy worker)
  [7] running           zset  pending token -> started_ms
  [8] workers           zset  "{p}:workers", member worker id, score last seen (ms)
  [9] render_ms         hash  "{p}:render_ms" (fields in record_renders.lua)
  [10] images           hash  images per unfinished state and resolution (_lib.lua)
  [11] control          hash  `paused` (ms) while the queue is paused
ARGV:
  [1] live_ms           integer ms: a worker seen this recently counts as live
Returns:
  {'OK', now_ms, state, created_ms, attempts, progress, number, width, height,
   prompt, started_ms, finished_ms, cancel_requested_ms, last_error,
   position, workers_seen, pending_jobs, new_jobs, pending_ahead, new_ahead,
   images, render_ms, paused_ms, fraction, preview_ms}
      started_ms, finished_ms, cancel_requested_ms, last_error: '' when unset
      position: jobs (new or pending) served before this one: FIFO, those created
                earlier (ZRANK of active); queued fairly, fair_place of _lib.lua;
                -1 when the job is neither new nor pending
      pending_jobs, new_jobs: jobs pending, and new (waiting or handed out), now
      pending_ahead, new_ahead: how many of the `position` jobs are pending, new
      images: the images hash as a flat field, value list (sums per state and
              per state:resolution; `resolutions` absent while they are to be
              counted again)
      render_ms: the hash as a flat field, value list
      paused_ms: when the queue was paused; -1 when it is not
      fraction, preview_ms: the current claim's step progress (0..1 of the whole
      job) and when it last sent a preview (renew_lease.lua); '' when none
  {'NOT_FOUND'}         no job with this token
]]
--@include _lib.lua

local K = {job = KEYS[1], active = KEYS[2], fair = KEYS[3], waiting = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], workers = KEYS[8],
  render_ms = KEYS[9], images = KEYS[10], control = KEYS[11]}
local f = redis.call('HMGET', K.job, 'state', 'created_ms', 'attempts', 'progress',
  'number', 'width', 'height', 'prompt', 'started_ms', 'finished_ms', 'cancel_requested',
  'last_error', 'member', 'vstart', 'fence', 'fraction', 'preview_ms')
if not f[1] or not f[13] then
  return {'NOT_FOUND'}
end
local now = now_ms()
local state, member = f[1], f[13]
local pending_jobs = redis.call('ZCARD', K.leases)
local reserved = redis.call('ZCARD', K.reserved)
local new_jobs = reserved + redis.call('ZCARD', K.waiting) + redis.call('ZCARD', K.fair)
local position, pending_ahead, new_ahead = -1, 0, 0
if state == 'new' or state == 'pending' then
  if f[14] then
    position, pending_ahead, new_ahead = fair_place(K, token_of(member), state, member, f[9])
  else
    position = redis.call('ZRANK', K.active, member) or -1
    if state == 'new' and position > 0 then
      -- FIFO: handed-out jobs are the oldest; the rest ahead are waiting or pending
      local rank = redis.call('ZRANK', K.waiting, member)
      new_ahead = math.min(position, (rank or 0) + reserved)
      pending_ahead = math.min(pending_jobs, position - new_ahead)
      new_ahead = position - pending_ahead
    end
  end
end
-- the current claim's step progress and preview time ("<fence>:<value>", written by
-- renew_lease.lua): another claim's never show
local fraction, preview_ms = '', ''
if state == 'pending' and f[15] then
  local own = f[15] .. ':'
  if f[16] and string.sub(f[16], 1, #own) == own then fraction = string.sub(f[16], #own + 1) end
  if f[17] and string.sub(f[17], 1, #own) == own then preview_ms = string.sub(f[17], #own + 1) end
end
local paused = redis.call('HGET', K.control, 'paused')
return {'OK', now, state, tonumber(f[2]), tonumber(f[3] or 0), tonumber(f[4] or 0),
  tonumber(f[5]), tonumber(f[6]), tonumber(f[7]), f[8] or '', f[9] or '', f[10] or '',
  f[11] or '', f[12] or '', position,
  redis.call('ZCOUNT', K.workers, now - tonumber(ARGV[1]), '+inf'),
  pending_jobs, new_jobs, pending_ahead, new_ahead,
  redis.call('HGETALL', K.images), redis.call('HGETALL', K.render_ms),
  tonumber(paused or -1), fraction, preview_ms}
