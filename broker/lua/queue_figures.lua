--[[
queue_figures.lua: every figure of the whole queue, read in one step: jobs per
live state, the oldest waiting and open jobs, images per unfinished state,
lifetime counters, live workers, measured render times, the claim-to-complete
histogram, the completion rate, and each live worker's own figures (GPU-busy
ratio, images per second, seconds per image: record_renders.lua). /metrics, the
v2 API's queue overview, Queue.counts() and sdq admin status all read this one
script.

The rate needs history: with sample_every_ms > 0, a call also appends one
sample of the `complete` counter to the throughput zset (at most one per
sample_every_ms; samples older than window_ms are dropped, so the key stays
tiny). No job changes. With 0 it only reads, but for one case: the images per
state and resolution are running sums that every script keeps from the moment the
`resolutions` field is in the images hash; a queue without it (one filled before
the sums existed, or one where a job whose hash was gone had no {p}:open record)
is counted once, job by job over active, and marked (the open images per client
too); members of active whose job hash is gone are dropped on the way
(drop_dangling of _lib.lua).

KEYS:
  [1] job_prefix        "{p}:job:"; a job's hash is job_prefix .. token, for the tokens
                        of the members of active and of the head of fair
  [2] waiting           zset  new, not reserved, FIFO; score created_ms
  [3] fair              zset  new, not reserved, queued fairly; score the start tag
  [4] active            zset  new or pending; score created_ms
  [5] reserved          zset  new, handed out by /getNextJob
  [6] leases            zset  pending
  [7] running           zset  pending token -> started_ms
  [8] stats             hash  lifetime counters (added, complete, failed, ...)
  [9] images            hash  images per unfinished state and resolution
  [10] open             hash  token -> record of each open job
  [11] clients          zset  client key -> images of its open jobs
  [12] client_prefix    "{p}:client:"; a dropped job's client zset is client_prefix ..
                        the address in its record (while counting, see above)
  [13] workers          zset  member worker id, score last seen (ms)
  [14] render_ms        hash  fields in record_renders.lua
  [15] durations        hash  claim-to-complete histogram (fields in _lib.lua)
  [16] throughput       zset  member "<ms>:<complete counter>", score ms
  [17] control          hash  `paused` (ms) while the queue is paused
  [18] worker_stats     hash  worker id -> its last report's figures (record_renders.lua)
ARGV:
  [1] live_ms           integer ms: a worker seen this recently counts as live
  [2] sample_every_ms   integer ms: least time between two samples; 0 = take none
  [3] window_ms         integer ms: samples older than this are ignored (and dropped)
Returns:
  {'OK', now_ms, waiting, reserved, pending, oldest_waiting_ms, oldest_open_ms,
   new_images, pending_images, workers_seen, stats, render_ms, durations,
   since_ms, since_complete, paused_ms, worker_figures}
      waiting, reserved, pending: jobs (new = waiting + reserved); waiting counts
      both waiting sets (FIFO and fair)
      oldest_waiting_ms: created_ms of the next job to serve (claim_job's pick);
      oldest_open_ms: of the oldest job in active; -1 when empty
      stats, render_ms, durations: the hashes as flat field, value lists
      since_ms, since_complete: the oldest sample in the window (the rate is
      (complete now - since_complete) over (now - since_ms)); -1, -1 when none
      paused_ms: when the queue was paused (sdq admin pause); -1 when it is not
      worker_figures: flat list worker id, figures text, ... of the live workers
]]
--@include _lib.lua

local K = {job_prefix = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], stats = KEYS[8], images = KEYS[9],
  open = KEYS[10], clients = KEYS[11], client_prefix = KEYS[12], workers = KEYS[13],
  render_ms = KEYS[14], durations = KEYS[15], throughput = KEYS[16], control = KEYS[17],
  worker_stats = KEYS[18]}
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

-- the creation time of the job claim_job would take (next_head of _lib.lua)
local function next_created()
  local created = head_score(K.waiting)
  local fair = redis.call('ZRANGE', K.fair, 0, 0)[1]
  if fair then
    local c = tonumber(redis.call('HGET', K.job_prefix .. token_of(fair), 'created_ms'))
    if c and (created < 0 or c < created) then
      created = c
    end
  end
  return created
end

-- The sums counted job by job over active, dangling members dropped (once, see above).
local function count_images()
  local sums = {new = 0, pending = 0}
  local per_res, per_client, dangling = {}, {}, {}
  for _, member in ipairs(redis.call('ZRANGE', K.active, 0, -1)) do
    local job = redis.call('HMGET', K.job_prefix .. token_of(member), 'state', 'number',
      'width', 'height', 'member', 'client')
    if not job[5] then
      dangling[#dangling + 1] = member
    elseif sums[job[1]] then
      local n = tonumber(job[2])
      local field = job[1] .. ':' .. job[3] .. 'x' .. job[4]
      sums[job[1]] = sums[job[1]] + n
      per_res[field] = (per_res[field] or 0) + n
      if job[6] then
        per_client[job[6]] = (per_client[job[6]] or 0) + n
      end
    end
  end
  for _, member in ipairs(dangling) do
    drop_dangling(K, token_of(member), member)
  end
  for _, field in ipairs(redis.call('HKEYS', K.images)) do
    redis.call('HDEL', K.images, field)
  end
  for field, n in pairs(per_res) do
    redis.call('HSET', K.images, field, n)
  end
  redis.call('DEL', K.clients)
  for client, n in pairs(per_client) do
    redis.call('ZADD', K.clients, n, client)
  end
  redis.call('HSET', K.images, 'new', sums.new, 'pending', sums.pending, 'resolutions', now)
  return {sums.new, sums.pending}
end

local images = redis.call('HMGET', K.images, 'new', 'pending', 'resolutions')
if not images[3] then
  images = count_images()
end
local paused = redis.call('HGET', K.control, 'paused')
-- each live worker's own figures (GPU-busy ratio, images/s, s per image)
local worker_figures = {}
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', K.workers, now - tonumber(ARGV[1]), '+inf')) do
  local text = redis.call('HGET', K.worker_stats, worker)
  if text then
    worker_figures[#worker_figures + 1] = worker
    worker_figures[#worker_figures + 1] = text
  end
end
return {'OK', now, redis.call('ZCARD', K.waiting) + redis.call('ZCARD', K.fair),
  redis.call('ZCARD', K.reserved), redis.call('ZCARD', K.leases), next_created(),
  head_score(K.active), tonumber(images[1] or 0), tonumber(images[2] or 0),
  redis.call('ZCOUNT', K.workers, now - tonumber(ARGV[1]), '+inf'),
  redis.call('HGETALL', K.stats), redis.call('HGETALL', K.render_ms),
  redis.call('HGETALL', K.durations), since_ms, since_complete, tonumber(paused or -1),
  worker_figures}
