--[[
record_renders.lua: a worker's report: per-image render time by resolution (for
ETAs) and that the worker is alive. Touches no job; any worker may call it.

KEYS:
  [1] render_ms         hash  "{p}:render_ms", fields per resolution <W>x<H>:
                              <W>x<H>:images   images rendered (sum)
                              <W>x<H>:ms       their render time in ms (sum)
                              <W>x<H>:ewma_ms  per-image ms, weighted to recent reports
  [2] workers           zset  "{p}:workers", member worker id, score last seen (ms)
  [3] worker_busy       hash  "{p}:worker_busy": <id>:ms render time this worker
                              reported (sum), <id>:since when it was first seen (ms);
                              sdq admin status shows ms / (last seen - since)
ARGV:
  [1] worker            the worker's id
  [2] presence          'live' (seen now) or 'gone' (graceful exit: removed)
  [3] forget_after_ms   integer ms; members not seen for this long are removed
  [4..] triples         resolution '<W>x<H>', images (integer > 0), ms (integer >= 0)
Returns:
  {'OK', now_ms}
]]
--@include _lib.lua

local K = {render_ms = KEYS[1], workers = KEYS[2], worker_busy = KEYS[3]}
local now = now_ms()
local worker = ARGV[1]
local busy_ms = 0
for i = 4, #ARGV - 2, 3 do
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
    busy_ms = busy_ms + ms
  end
end
if ARGV[2] == 'gone' then
  redis.call('ZREM', K.workers, worker)
  redis.call('HDEL', K.worker_busy, worker .. ':ms', worker .. ':since')
else
  redis.call('ZADD', K.workers, now, worker)
  redis.call('HSETNX', K.worker_busy, worker .. ':since', now)
  redis.call('HINCRBY', K.worker_busy, worker .. ':ms', busy_ms)
end
local forgotten = now - tonumber(ARGV[3])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', K.workers, '-inf', forgotten)) do
  redis.call('HDEL', K.worker_busy, gone .. ':ms', gone .. ':since')
end
redis.call('ZREMRANGEBYSCORE', K.workers, '-inf', forgotten)
return {'OK', now}
