--[[
job_details.lua: everything the v2 API shows of one job, read in one step
(state, progress, place in the queue, the work ahead of it, live workers and
measured render times, for the ETA). Read-only.

KEYS:
  [1] job               hash  "{p}:job:<token>": the job shown
  [2] active            zset  new and pending jobs (score created_ms, FIFO member)
  [3] leases            zset  pending jobs (one per busy worker)
  [4] workers           zset  "{p}:workers", member worker id, score last seen (ms)
  [5] render_ms         hash  "{p}:render_ms" (fields in record_renders.lua)
  [6] job_prefix        "{p}:job:"; a job ahead's hash is job_prefix .. token, for
                        the tokens of the members of active ahead of this job
ARGV:
  [1] live_ms           integer ms: a worker seen this recently counts as live
  [2] ahead_limit       integer: at most this many jobs ahead are read (the rest
                        are extrapolated by the caller); bounds the script's cost
Returns:
  {'OK', now_ms, state, created_ms, attempts, progress, number, width, height,
   prompt, started_ms, finished_ms, cancel_requested_ms, last_error,
   position, workers_seen, busy_workers, ahead_read, ahead, render_ms}
      started_ms, finished_ms, cancel_requested_ms, last_error: '' when unset
      position: jobs (new or pending) ahead of this one in FIFO order; -1 when
                the job is neither new nor pending
      ahead: flat list <W>x<H>, images still to render, ... summed over the
             ahead_read oldest jobs ahead
      render_ms: the hash as a flat field, value list
      fraction, preview_ms: the current claim's step progress (0..1 of the whole
      job) and when it last sent a preview (renew_lease.lua); '' when none
  {'NOT_FOUND'}         no job with this token
]]
--@include _lib.lua

local K = {job = KEYS[1], active = KEYS[2], leases = KEYS[3], workers = KEYS[4],
  render_ms = KEYS[5], job_prefix = KEYS[6]}
local f = redis.call('HMGET', K.job, 'state', 'created_ms', 'attempts', 'progress',
  'number', 'width', 'height', 'prompt', 'started_ms', 'finished_ms', 'cancel_requested',
  'last_error', 'member')
if not f[1] then
  return {'NOT_FOUND'}
end
local now = now_ms()
local position = -1
local ahead, ahead_read = {}, 0
if f[13] then
  local rank = redis.call('ZRANK', K.active, f[13])
  if rank then
    position = rank
    local count = math.min(rank, tonumber(ARGV[2]))
    if count > 0 then
      local sums, order = {}, {}
      for _, member in ipairs(redis.call('ZRANGE', K.active, 0, count - 1)) do
        local j = redis.call('HMGET', K.job_prefix .. token_of(member), 'number', 'width', 'height',
          'progress')
        if j[1] then
          local res = j[2] .. 'x' .. j[3]
          if not sums[res] then
            sums[res] = 0
            order[#order + 1] = res
          end
          sums[res] = sums[res] + math.max(0, tonumber(j[1]) - tonumber(j[4] or 0))
          ahead_read = ahead_read + 1
        end
      end
      for _, res in ipairs(order) do
        ahead[#ahead + 1] = res
        ahead[#ahead + 1] = sums[res]
      end
    end
  end
end
-- [worker lane] the current claim's step progress and preview time ("<fence>:<value>",
-- written by renew_lease.lua): another claim's never show
local live = redis.call('HMGET', K.job, 'fence', 'fraction', 'preview_ms')
local fraction, preview_ms = '', ''
if f[1] == 'pending' and live[1] then
  local own = live[1] .. ':'
  if live[2] and string.sub(live[2], 1, #own) == own then fraction = string.sub(live[2], #own + 1) end
  if live[3] and string.sub(live[3], 1, #own) == own then preview_ms = string.sub(live[3], #own + 1) end
end
local seen = redis.call('ZCOUNT', K.workers, now - tonumber(ARGV[1]), '+inf')
local busy = redis.call('ZCARD', K.leases)
return {'OK', now, f[1], tonumber(f[2]), tonumber(f[3] or 0), tonumber(f[4] or 0),
  tonumber(f[5]), tonumber(f[6]), tonumber(f[7]), f[8] or '', f[9] or '', f[10] or '',
  f[11] or '', f[12] or '', position, seen, busy, ahead_read, ahead,
  redis.call('HGETALL', K.render_ms), fraction, preview_ms}
