--[[
import_job.lua: loads one job of the original (SQLite) service, keeping its
token, creation time, state, prompt, number and size, so that a frontend
polling the old token sees the same State, Age and QueueLength after the
switch. Idempotent: a token that already exists is left untouched.

  new       waiting + active, like add_job (FIFO by created_ms, then by the
            order of import through the seq counter), whatever the scheduling
            mode: the original's queue was first come first served, and its jobs
            are the oldest, so they are served first
  pending   active + a lease sized to the work (as set_state gives a legacy
            backend), starting now: if the old backend still finishes it, its
            /setJobStatus complete succeeds; if it is gone, the sweep brings the
            job back to new at the head of the queue
  complete  only the hash, expiring retention_ms after completed_ms (or after
            now when the original did not record it); one that is already past
            its retention is not written at all

KEYS:
  [1] job               hash  "{p}:job:<token>": the imported job
  [2] waiting           zset  new, not reserved; score created_ms, member <seq:016d><token>
  [3] active            zset  new or pending; same score and member
  [4] leases            zset  token -> lease end (ms)
  [5] running           zset  pending token -> started_ms
  [6] stats             hash  lifetime counters (this script counts `imported`)
  [7] wakeup            list  pushed when a new job is imported
  [8] seq               string  insertion counter
  [9] images            hash  images per unfinished state and resolution
  [10] open             hash  token -> record of each open job
ARGV:
  [1] token             32 lower-case hex characters
  [2] prompt            printable ASCII
  [3] number            images, 1..16
  [4] width             pixels
  [5] height            pixels
  [6] state             'new', 'pending' or 'complete'
  [7] created_ms        integer ms (the original's clock)
  [8] completed_ms      integer ms, or '' when unknown (used for complete only)
  [9] lease_base_ms     integer ms: a pending job's lease ...
  [10] lease_per_mp_ms  integer ms: ... plus this per image per megapixel
  [11] retention_ms     integer ms: how long a complete job is kept
Returns:
  {'OK', 'imported'}    the job now exists in its original state
  {'OK', 'present'}     a job with this token already exists; nothing changed
  {'OK', 'expired'}     a complete job past its retention; nothing written
  {'BAD_STATE'}         ARGV[6] is none of the three states; nothing written
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], active = KEYS[3], leases = KEYS[4],
  running = KEYS[5], stats = KEYS[6], wakeup = KEYS[7], seq = KEYS[8], images = KEYS[9],
  open = KEYS[10]}
local token = ARGV[1]
if redis.call('EXISTS', K.job) == 1 then
  return {'OK', 'present'}
end
local state = ARGV[6]
if state ~= 'new' and state ~= 'pending' and state ~= 'complete' then
  return {'BAD_STATE'}
end
local created = ARGV[7]
local now = now_ms()
local retention = tonumber(ARGV[11])
local expire_at = now + retention
if state == 'complete' and ARGV[8] ~= '' then
  expire_at = math.min(tonumber(ARGV[8]) + retention, expire_at)
  if expire_at <= now then
    return {'OK', 'expired'}
  end
end

local seq = redis.call('INCR', K.seq)
local member = string.format('%016d', seq) .. token
redis.call('HSET', K.job,
  'token', token, 'prompt', ARGV[2], 'number', ARGV[3], 'width', ARGV[4],
  'height', ARGV[5], 'state', state, 'created_ms', created, 'member', member,
  'attempts', 0, 'fence', 0, 'progress', 0, 'lease_until', 0)
if redis.call('HEXISTS', K.images, 'resolutions') == 0 and redis.call('ZCARD', K.active) == 0 then
  redis.call('DEL', K.images)  -- an empty queue's sums are 0: counted, job by job
  redis.call('HSET', K.images, 'resolutions', now)
end
redis.call('HINCRBY', K.stats, 'imported', 1)
local res = ARGV[4] .. 'x' .. ARGV[5]
move_images(K, tonumber(ARGV[3]), res, nil, state)
if state ~= 'complete' then
  record_open(K, token, member, ARGV[3], res, '')
end

if state == 'new' then
  redis.call('ZADD', K.waiting, tonumber(created), member)
  redis.call('ZADD', K.active, tonumber(created), member)
  wake(K)
elseif state == 'pending' then
  local pixels = tonumber(ARGV[3]) * tonumber(ARGV[4]) * tonumber(ARGV[5])
  local lease_ms = tonumber(ARGV[9]) + math.ceil(tonumber(ARGV[10]) * pixels / 1000000)
  redis.call('ZADD', K.active, tonumber(created), member)
  redis.call('ZADD', K.leases, now + lease_ms, token)
  redis.call('ZADD', K.running, now, token)
  redis.call('HSET', K.job, 'fence', 1, 'started_ms', now, 'lease_until', now + lease_ms,
    'worker', 'import')
else
  local finished = now
  if ARGV[8] ~= '' then
    finished = tonumber(ARGV[8])
  end
  redis.call('HSET', K.job, 'fence', 1, 'progress', ARGV[3], 'finished_ms', finished)
  redis.call('PEXPIREAT', K.job, expire_at)
end
return {'OK', 'imported'}
