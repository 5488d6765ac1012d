--[[
queue_stats.lua: the v2 API's queue overview in one step: jobs per live state,
lifetime counters, live workers, measured render times, and the completion
rate. The rate needs history, so each call may also append one sample of the
`complete` counter to the throughput zset (at most one per sample_every_ms;
samples older than window_ms are dropped, so the key stays tiny). That sample
is the only write; no job changes.

KEYS:
  [1] waiting           zset  new, not reserved
  [2] reserved          zset  new, handed out by /getNextJob
  [3] leases            zset  pending
  [4] stats             hash  lifetime counters (added, complete, failed, ...)
  [5] workers           zset  member worker id, score last seen (ms)
  [6] render_ms         hash  fields in record_renders.lua
  [7] throughput        zset  member "<ms>:<complete counter>", score ms
ARGV:
  [1] live_ms           integer ms: a worker seen this recently counts as live
  [2] sample_every_ms   integer ms: least time between two samples
  [3] window_ms         integer ms: samples older than this are dropped
Returns:
  {'OK', now_ms, new, pending, workers_seen, stats, render_ms, since_ms, since_complete}
      stats, render_ms: the hashes as flat field, value lists
      since_ms, since_complete: the oldest sample in the window (the rate is
      (complete now - since_complete) over (now - since_ms)); -1, -1 when none
]]
--@include _lib.lua

local now = now_ms()
local complete = tonumber(redis.call('HGET', KEYS[4], 'complete') or 0)
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[3]))
local oldest = redis.call('ZRANGE', KEYS[7], 0, 0, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[7], -1, -1, 'WITHSCORES')
if #newest == 0 or tonumber(newest[2]) <= now - tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[7], now, now .. ':' .. complete)
  redis.call('PEXPIRE', KEYS[7], 2 * tonumber(ARGV[3]))
end
local since_ms, since_complete = -1, -1
if #oldest > 0 then
  since_ms = tonumber(oldest[2])
  since_complete = tonumber(string.match(oldest[1], ':(%d+)$'))
end
local new = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
return {'OK', now, new, redis.call('ZCARD', KEYS[3]),
  redis.call('ZCOUNT', KEYS[5], now - tonumber(ARGV[1]), '+inf'),
  redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[6]), since_ms, since_complete}
