--[[
wait_estimate.lua: how far back a new job of this client would be queued, for the
API's admission check (SDQ_MAX_WAIT_S): the counts and sums broker/details.py turns
into the work ahead, as job_details.lua reads them for a queued job. Read-only and
O(log n). FIFO: every open job is ahead. Fair: the pending and handed-out jobs, the
FIFO jobs waiting, and the fair jobs whose start tag is at most the new job's
(max(vtime, the client's last finish tag)).

KEYS:
  [1] waiting           zset  new, not reserved, FIFO
  [2] fair              zset  new, not reserved, queued fairly; score the start tag
  [3] reserved          zset  new, handed out
  [4] leases            zset  pending
  [5] images            hash  images per unfinished state and resolution
  [6] vtime             string  the fair queue's virtual time
  [7] vfinish           zset  client key -> its last virtual finish tag
  [8] workers           zset  worker id -> last seen (ms)
  [9] render_ms         hash  fields in record_renders.lua
ARGV:
  [1] client            the client's key ('' counts as '-', as add_job does)
  [2] scheduling        'fifo' or 'fair'
  [3] live_ms           integer ms: a worker seen this recently counts as live
Returns:
  {'OK', now_ms, workers_seen, pending_jobs, new_jobs, new_ahead, images, render_ms}
      new_ahead: new jobs that would be served before the new one (every pending
      job is); images, render_ms: the hashes as flat field, value lists
]]
--@include _lib.lua

local K = {waiting = KEYS[1], fair = KEYS[2], reserved = KEYS[3], leases = KEYS[4],
  images = KEYS[5], vtime = KEYS[6], vfinish = KEYS[7], workers = KEYS[8],
  render_ms = KEYS[9]}
local now = now_ms()
local fifo_new = redis.call('ZCARD', K.waiting) + redis.call('ZCARD', K.reserved)
local fair_new = redis.call('ZCARD', K.fair)
local ahead = fifo_new + fair_new
if ARGV[2] == 'fair' then
  local tag = ARGV[1] ~= '' and ARGV[1] or '-'
  local start = tonumber(redis.call('GET', K.vtime) or 0)
  local last = tonumber(redis.call('ZSCORE', K.vfinish, tag))
  if last and last > start then
    start = last
  end
  ahead = fifo_new + redis.call('ZCOUNT', K.fair, '-inf', start)
end
return {'OK', now, redis.call('ZCOUNT', K.workers, now - tonumber(ARGV[3]), '+inf'),
  redis.call('ZCARD', K.leases), fifo_new + fair_new, ahead, redis.call('HGETALL', K.images),
  redis.call('HGETALL', K.render_ms)}
