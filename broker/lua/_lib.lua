--[[
_lib.lua: helpers shared by several scripts. Not a script of its own:
broker/scripts.py inlines it where a script has the line `--@include _lib.lua`.

The queue-level scripts share one KEYS layout, read by queue_keys():
  KEYS[1] job key prefix  "{p}:job:" (job hashes are this prefix + token; same hash tag)
  KEYS[2] waiting         zset  new, not reserved; score created_ms, member <seq:016d><token>
  KEYS[3] active          zset  new or pending; same score and member
  KEYS[4] reserved        zset  token -> reservation end (ms)
  KEYS[5] leases          zset  token -> lease end (ms)
  KEYS[6] stats           hash  counters
  KEYS[7] wakeup          list  pushed when a job becomes claimable
  KEYS[8] seq             string insertion counter (add_job, import_job)
  KEYS[9] client prefix   "{p}:client:" (a client's zset is this prefix + address:
                                members its open jobs, score 0, and slots held while
                                its captcha is checked, score = hold end in ms)
  KEYS[10] durations      hash  claim-to-complete histogram, fields per resolution:
                                <W>x<H>:le:<ms> (one bucket of record_duration, or
                                'inf'; not cumulative), <W>x<H>:count, <W>x<H>:sum_ms
]]

local function queue_keys()
  return {
    job_prefix = KEYS[1], waiting = KEYS[2], active = KEYS[3], reserved = KEYS[4],
    leases = KEYS[5], stats = KEYS[6], wakeup = KEYS[7], seq = KEYS[8],
    client_prefix = KEYS[9], durations = KEYS[10],
  }
end

-- One clock for every replica and worker: the Redis server's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function token_of(member)
  return string.sub(member, 17)
end

-- Lets one idle worker blocked on BLPOP know there is work; the list stays short.
local function wake(K)
  redis.call('LPUSH', K.wakeup, '1')
  redis.call('LTRIM', K.wakeup, 0, 15)
end

-- A client's zset ("{p}:client:<address>") lives while the client has an open job
-- (score 0), else until its last held slot (score = hold end, ms) ends.
local function client_expiry(ck)
  if redis.call('ZCOUNT', ck, 0, 0) > 0 then
    redis.call('PERSIST', ck)
    return
  end
  local last = redis.call('ZRANGE', ck, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', ck, math.floor(tonumber(last[2])))
  end
end

-- One claim-to-complete observation (ms) in the histogram of its resolution.
local function record_duration(K, resolution, took_ms)
  -- upper bounds in ms; api/metrics.py holds the same list (a test compares them)
  local bounds = {1000, 2500, 5000, 10000, 20000, 30000, 60000, 120000, 300000, 600000}
  local bucket = 'inf'
  for _, bound in ipairs(bounds) do
    if took_ms <= bound then
      bucket = bound
      break
    end
  end
  redis.call('HINCRBY', K.durations, resolution .. ':le:' .. bucket, 1)
  redis.call('HINCRBY', K.durations, resolution .. ':count', 1)
  redis.call('HINCRBY', K.durations, resolution .. ':sum_ms', took_ms)
end

-- Ends a job in a terminal state: off every index, kept for retention_ms.
local function finish(K, token, member, state, now, retention_ms)
  local jk = K.job_prefix .. token
  local done = redis.call('HMGET', jk, 'client', 'started_ms', 'width', 'height')
  if done[1] then
    -- the client's open-jobs count drops; its address is not kept with the finished job
    local ck = K.client_prefix .. done[1]
    redis.call('ZREM', ck, token)
    client_expiry(ck)
    redis.call('HDEL', jk, 'client')
  end
  if state == 'complete' and done[2] and done[3] then
    record_duration(K, done[3] .. 'x' .. done[4], now - tonumber(done[2]))
  end
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.active, member)
  redis.call('ZREM', K.reserved, token)
  redis.call('ZREM', K.leases, token)
  redis.call('HSET', jk, 'state', state, 'finished_ms', now, 'lease_until', 0)
  redis.call('PEXPIRE', jk, retention_ms)
  redis.call('HINCRBY', K.stats, state, 1)
end

-- A claim that ended without completion (lease expired, render failed):
-- the attempt counts, and the job goes back to the head of the queue (its
-- creation time is kept) or, past max_attempts, to failed.
local function give_up_attempt(K, token, now, max_attempts, retention_ms, reason)
  local jk = K.job_prefix .. token
  local fields = redis.call('HMGET', jk, 'member', 'created_ms')
  local member, created = fields[1], fields[2]
  redis.call('ZREM', K.leases, token)
  if not member then
    return 'gone'
  end
  local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'last_error', reason)
  if attempts >= max_attempts then
    finish(K, token, member, 'failed', now, retention_ms)
    return 'failed'
  end
  redis.call('HSET', jk, 'state', 'new', 'lease_until', 0, 'progress', 0)
  redis.call('ZADD', K.waiting, created, member)
  redis.call('HINCRBY', K.stats, 'requeued', 1)
  wake(K)
  return 'new'
end

-- Brings back jobs of dead workers and unused reservations. Bounded per call so
-- one call never blocks Redis for long; callers run it often.
local function sweep(K, now, max_attempts, retention_ms, limit)
  local requeued, failed = 0, 0
  local expired = redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, limit)
  for _, token in ipairs(expired) do
    local outcome = give_up_attempt(K, token, now, max_attempts, retention_ms, 'lease expired')
    if outcome == 'new' then requeued = requeued + 1 end
    if outcome == 'failed' then failed = failed + 1 end
  end
  local unreserved = redis.call('ZRANGEBYSCORE', K.reserved, '-inf', now, 'LIMIT', 0, limit)
  for _, token in ipairs(unreserved) do
    redis.call('ZREM', K.reserved, token)
    local fields = redis.call('HMGET', K.job_prefix .. token, 'member', 'created_ms', 'state')
    if fields[1] and fields[3] == 'new' then
      redis.call('ZADD', K.waiting, fields[2], fields[1])
    end
  end
  return requeued, failed, #unreserved
end

-- Moves a new job to pending under a lease; returns the claim's fence,
-- the fencing token every later call of this claim must present.
local function start_lease(K, token, member, now, lease_ms, worker)
  local jk = K.job_prefix .. token
  local fence = redis.call('HINCRBY', jk, 'fence', 1)
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.reserved, token)
  redis.call('ZADD', K.leases, now + lease_ms, token)
  redis.call('HSET', jk, 'state', 'pending', 'started_ms', now,
    'lease_until', now + lease_ms, 'progress', 0, 'worker', worker)
  return fence
end

-- The fence of every call a claim makes after claiming: the job must exist, be
-- pending, and still belong to this claim. Returns an error code, or nil.
local function claim_error(job_key, fence)
  local f = redis.call('HMGET', job_key, 'state', 'fence')
  if not f[1] then
    return 'NOT_FOUND'
  end
  if f[1] ~= 'pending' then
    return 'BAD_TRANSITION'
  end
  if fence ~= f[2] then
    return 'STALE_CLAIM'
  end
  return nil
end
