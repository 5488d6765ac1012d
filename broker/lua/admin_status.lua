--[[
admin_status.lua: what `sdq admin status` shows beyond the queue's figures
(queue_figures.lua): whether the queue is paused, the clients with the most open
images, the workers with their own figures and current job, and the last operator
actions. Read-only; O(top + workers + pending jobs + entries).

KEYS:
  [1] control           hash  `paused` (ms), `paused_by`
  [2] clients           zset  client key -> images of its open jobs
  [3] client_prefix     "{p}:client:"; a client's zset is client_prefix .. a client
                        key of `clients` (its open jobs are counted)
  [4] workers           zset  worker id -> last seen (ms)
  [5] worker_stats      hash  worker id -> its last report's figures (record_renders.lua)
  [6] leases            zset  pending token -> lease end (ms)
  [7] job_prefix        "{p}:job:"; a pending job's hash is job_prefix .. token, for
                        the tokens of leases
  [8] audit             list  operator actions, newest first
ARGV:
  [1] top               integer: how many clients
  [2] entries           integer: how many audit entries
Returns:
  {'OK', now_ms, paused_ms, paused_by, talkers, workers, worker_stats, jobs, actions}
      paused_ms: -1 when running; paused_by: '' then
      talkers: flat client, open images, open jobs, ... (most images first)
      workers: flat worker id, last seen ms, ... (most recent first)
      worker_stats: the worker_stats hash as a flat worker id, figures text list
      jobs: flat token, worker, started_ms, number, <W>x<H>, ... of the pending jobs
      actions: audit entries "<ms>\t<action>\t<target>\t<by>\t<outcome>"
]]
--@include _lib.lua

local K = {control = KEYS[1], clients = KEYS[2], client_prefix = KEYS[3], workers = KEYS[4],
  worker_stats = KEYS[5], leases = KEYS[6], job_prefix = KEYS[7], audit = KEYS[8]}
local paused = redis.call('HMGET', K.control, 'paused', 'paused_by')
local top = tonumber(ARGV[1])
local talkers = {}
local ranked = redis.call('ZREVRANGE', K.clients, 0, top - 1, 'WITHSCORES')
for i = 1, #ranked, 2 do
  local client = ranked[i]
  talkers[#talkers + 1] = client
  talkers[#talkers + 1] = tonumber(ranked[i + 1])
  talkers[#talkers + 1] = redis.call('ZCOUNT', K.client_prefix .. client, 0, 0)
end
local jobs = {}
for _, token in ipairs(redis.call('ZRANGE', K.leases, 0, -1)) do
  local f = redis.call('HMGET', K.job_prefix .. token, 'worker', 'started_ms', 'number',
    'width', 'height')
  if f[1] then
    jobs[#jobs + 1] = token
    jobs[#jobs + 1] = f[1]
    jobs[#jobs + 1] = tonumber(f[2] or 0)
    jobs[#jobs + 1] = tonumber(f[3] or 0)
    jobs[#jobs + 1] = (f[4] or '?') .. 'x' .. (f[5] or '?')
  end
end
return {'OK', now_ms(), tonumber(paused[1] or -1), paused[2] or '', talkers,
  redis.call('ZREVRANGE', K.workers, 0, -1, 'WITHSCORES'), redis.call('HGETALL', K.worker_stats),
  jobs, redis.call('LRANGE', K.audit, 0, tonumber(ARGV[2]) - 1)}
