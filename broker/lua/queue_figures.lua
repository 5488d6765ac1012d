--[[
queue_figures.lua: every figure of the whole queue, read in one step: jobs per
live state, the oldest waiting and open jobs, images per unfinished state,
lifetime counters, live workers, measured render times, the claim-to-complete
histogram, and the completion rate. /metrics, the v2 API's queue overview and
Queue.counts() all read this one script.

The rate needs history: with sample_every_ms > 0, a call also appends one
sample of the `complete` counter to the throughput zset (at most one per
sample_every_ms; samples older than window_ms are dropped, so the key stays
tiny). No job changes. With 0 it only reads, but for one case: the images per
state are running sums that every script keeps from the moment the `counted`
field is in the images hash; a queue without it (one filled before the sums
existed) is counted once, job by job over active, and marked.

KEYS:
  [1] waiting           zset  new, not reserved; score created_ms
  [2] reserved          zset  new, handed out by /getNextJob
  [3] leases            zset  pending
  [4] active            zset  new or pending; score created_ms
  [5] stats             hash  lifetime counters (added, complete, failed, ...)
  [6] images            hash  images per unfinished state (fields new, pending)
  [7] workers           zset  member worker id, score last seen (ms)
  [8] render_ms         hash  fields in record_renders.lua
  [9] durations         hash  claim-to-complete histogram (fields in _lib.lua)
  [10] throughput       zset  member "<ms>:<complete counter>", score ms
  [11] job_prefix       "{p}:job:"; a job's hash is job_prefix .. token, for the tokens
                        of the members of active (only when the images are counted)
  [12] worker_stats     hash  worker id -> its last report's figures (record_renders.lua)
ARGV:
  [1] live_ms           integer ms: a worker seen this recently counts as live
  [2] sample_every_ms   integer ms: least time between two samples; 0 = take none
  [3] window_ms         integer ms: samples older than this are ignored (and dropped)
Returns:
  {'OK', now_ms, waiting, reserved, pending, oldest_waiting_ms, oldest_open_ms,
   new_images, pending_images, workers_seen, stats, render_ms, durations,
   since_ms, since_complete, worker_figures}
      waiting, reserved, pending: jobs (new = waiting + reserved)
      oldest_waiting_ms, oldest_open_ms: created_ms of the head of waiting, of
      active; -1 when empty
      stats, render_ms, durations: the hashes as flat field, value lists
      since_ms, since_complete: the oldest sample in the window (the rate is
      (complete now - since_complete) over (now - since_ms)); -1, -1 when none
      worker_figures: flat list worker id, figures text, ... of the live workers
]]
--@include _lib.lua

local K = {waiting = KEYS[1], reserved = KEYS[2], leases = KEYS[3], active = KEYS[4],
  stats = KEYS[5], images = KEYS[6], workers = KEYS[7], render_ms = KEYS[8],
  durations = KEYS[9], throughput = KEYS[10], job_prefix = KEYS[11],
  worker_stats = KEYS[12]}
local now = now_ms()
local cutoff = now - tonumber(ARGV[3])
local oldest = redis.call('ZRANGEBYSCORE', K.throughput, '(' .. cutoff, '+inf',
  'WITHSCORES', 'LIMIT', 0, 1)
local since_ms, since_complete = -1, -1
if #oldest > 0 then
  since_ms = tonumber(oldest[2])
  since_complete = tonumber(string.match(oldest[1], ':(%d+)$'))
end
local sample_every = tonumber(ARGV[2])
if sample_every > 0 then
  redis.call('ZREMRANGEBYSCORE', K.throughput, '-inf', cutoff)
  local newest = redis.call('ZRANGE', K.throughput, -1, -1, 'WITHSCORES')
  if #newest == 0 or tonumber(newest[2]) <= now - sample_every then
    local complete = tonumber(redis.call('HGET', K.stats, 'complete') or 0)
    redis.call('ZADD', K.throughput, now, now .. ':' .. complete)
    redis.call('PEXPIRE', K.throughput, 2 * tonumber(ARGV[3]))
  end
end

local function head_score(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return -1
  end
  return tonumber(head[2])
end

local images = redis.call('HMGET', K.images, 'new', 'pending', 'counted')
if not images[3] then
  local sums = {new = 0, pending = 0}
  for _, member in ipairs(redis.call('ZRANGE', K.active, 0, -1)) do
    local job = redis.call('HMGET', K.job_prefix .. token_of(member), 'state', 'number')
    if sums[job[1]] then
      sums[job[1]] = sums[job[1]] + tonumber(job[2])
    end
  end
  redis.call('HSET', K.images, 'new', sums.new, 'pending', sums.pending, 'counted', now)
  images = {sums.new, sums.pending}
end
-- [worker lane] each live worker's own figures (GPU-busy ratio, images/s, s per image)
local worker_figures = {}
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', K.workers, now - tonumber(ARGV[1]), '+inf')) do
  local text = redis.call('HGET', K.worker_stats, worker)
  if text then
    worker_figures[#worker_figures + 1] = worker
    worker_figures[#worker_figures + 1] = text
  end
end
return {'OK', now, redis.call('ZCARD', K.waiting), redis.call('ZCARD', K.reserved),
  redis.call('ZCARD', K.leases), head_score(K.waiting), head_score(K.active),
  tonumber(images[1] or 0), tonumber(images[2] or 0),
  redis.call('ZCOUNT', K.workers, now - tonumber(ARGV[1]), '+inf'),
  redis.call('HGETALL', K.stats), redis.call('HGETALL', K.render_ms),
  redis.call('HGETALL', K.durations), since_ms, since_complete, worker_figures}
