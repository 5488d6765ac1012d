--[[
record_renders.lua: a worker's report: per-image render time by resolution (for
ETAs), that the worker is alive, and its own recent figures (GPU-busy ratio,
images per second, seconds per image by resolution: /metrics). Touches no job;
any worker may call it.

KEYS:
  [1] render_ms         hash  "{p}:render_ms", fields per resolution <W>x<H>:
                              <W>x<H>:images   images rendered (sum)
                              <W>x<H>:ms       their render time in ms (sum)
                              <W>x<H>:ewma_ms  per-image ms, weighted to recent reports
  [2] workers           zset  "{p}:workers", member worker id, score last seen (ms)
  [3] worker_stats      hash  worker id -> its last report's figures as text
                              (broker/renders.py WorkerFigures): /metrics, and
                              sdq admin status (admin_status.lua)
ARGV:
  [1] worker            the worker's id
  [2] presence          'live' (seen now) or 'gone' (graceful exit: removed)
  [3] forget_after_ms   integer ms; members not seen for this long are removed
  [4] figures           the worker's figures, "busy=0.98 ips=1.9 768x576=0.52"; '' = none
  [5..] triples         resolution '<W>x<H>', images (integer > 0), ms (integer >= 0)
Returns:
  {'OK', now_ms}
]]
--@include _lib.lua

local K = {render_ms = KEYS[1], workers = KEYS[2], worker_stats = KEYS[3]}
local now = now_ms()
for i = 5, #ARGV - 2, 3 do
  local res, images, ms = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if images and ms and images > 0 then
    local per_image = ms / images
    local old = tonumber(redis.call('HGET', K.render_ms, res .. ':ewma_ms'))
    local ewma = per_image
    if old then
      ewma = old + 0.3 * (per_image - old)
    end
    redis.call('HINCRBY', K.render_ms, res .. ':images', images)
    redis.call('HINCRBY', K.render_ms, res .. ':ms', ms)
    redis.call('HSET', K.render_ms, res .. ':ewma_ms', math.floor(ewma + 0.5))
  end
end
if ARGV[2] == 'gone' then
  redis.call('ZREM', K.workers, ARGV[1])
  redis.call('HDEL', K.worker_stats, ARGV[1])
else
  redis.call('ZADD', K.workers, now, ARGV[1])
  if ARGV[4] ~= '' then
    redis.call('HSET', K.worker_stats, ARGV[1], ARGV[4])
  end
end
-- workers not seen for forget_after_ms leave, with their figures (at most 100 a call)
local cutoff = now - tonumber(ARGV[3])
local forgotten = redis.call('ZRANGEBYSCORE', K.workers, '-inf', cutoff, 'LIMIT', 0, 100)
for _, gone in ipairs(forgotten) do
  redis.call('ZREM', K.workers, gone)
  redis.call('HDEL', K.worker_stats, gone)
end
return {'OK', now}
