--[[
_lib.lua: helpers shared by several scripts. Not a script of its own:
broker/lua/__init__.py inlines it where a script has the line `--@include _lib.lua`.

Helpers read no KEYS and no ARGV. A script builds its table K from its own KEYS
(K.<name> = KEYS[i], named as its header names them) and passes K to the helpers
it calls; the `K:` line above each helper lists the fields it needs, those of
the helpers it calls included. Two fields are key prefixes, never keys:
  K.job_prefix     "{p}:job:"; a job's hash is job_prefix .. token, for tokens a
                   helper finds in an ordered set (sweep)
  K.client_prefix  "{p}:client:"; a client's zset is client_prefix .. the address
                   stored in a job's `client` field (finish)
]]

-- One clock for every replica and worker: the Redis server's.
-- K: none
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- K: none
local function token_of(member)
  return string.sub(member, 17)
end

-- Lets one idle worker blocked on BLPOP know there is work; the list stays short.
-- K: wakeup
local function wake(K)
  redis.call('LPUSH', K.wakeup, '1')
  redis.call('LTRIM', K.wakeup, 0, 15)
end

-- The running sums of images per unfinished state ({p}:images, fields new and
-- pending): a job of `number` images leaves state `from` and enters state `to`
-- (nil, or a terminal state, for none). Every script that moves a job in or out
-- of new or pending calls this, so the figures are O(1) reads.
-- K: images
local function move_images(K, number, from, to)
  if from == 'new' or from == 'pending' then
    redis.call('HINCRBY', K.images, from, -number)
  end
  if to == 'new' or to == 'pending' then
    redis.call('HINCRBY', K.images, to, number)
  end
end

-- A client's zset ("{p}:client:<address>") lives while the client has an open job
-- (score 0), else until its last held slot (score = hold end, ms) ends.
-- K: none (ck is the client's zset)
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
-- K: durations
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

-- Ends a job (hash jk) in a terminal state: off every index, kept for retention_ms.
-- K: waiting, active, reserved, leases, stats, images, client_prefix, image_gc
local function finish(K, jk, token, member, state, now, retention_ms)
  local done = redis.call('HMGET', jk, 'client', 'state', 'number')
  if done[1] then
    -- the client's open-jobs count drops; its address is not kept with the finished job
    local ck = K.client_prefix .. done[1]
    redis.call('ZREM', ck, token)
    client_expiry(ck)
    redis.call('HDEL', jk, 'client')
  end
  move_images(K, tonumber(done[3]), done[2], state)
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.active, member)
  redis.call('ZREM', K.reserved, token)
  redis.call('ZREM', K.leases, token)
  redis.call('HSET', jk, 'state', state, 'finished_ms', now, 'lease_until', 0)
  redis.call('PEXPIRE', jk, retention_ms)
  redis.call('HINCRBY', K.stats, state, 1)
  -- [worker lane] the job's images are due for deletion (broker/keys.py image_gc): a
  -- complete job's with the job, a cancelled or failed job's (leftovers only) at once.
  -- Entries due over an hour ago were not taken (no local folder): dropped.
  local due = now
  if state == 'complete' then due = now + retention_ms end
  redis.call('ZADD', K.image_gc, due, token)
  redis.call('ZREMRANGEBYSCORE', K.image_gc, '-inf', now - 3600000)
end

-- A claim of the job (hash jk) that ended without completion (lease expired,
-- render failed): the attempt counts, and the job goes back to the head of the
-- queue (its creation time is kept) or, past max_attempts, to failed.
-- K: waiting, active, reserved, leases, stats, images, client_prefix, image_gc, wakeup
local function give_up_attempt(K, jk, token, now, max_attempts, retention_ms, reason)
  local fields = redis.call('HMGET', jk, 'member', 'created_ms', 'number')
  local member, created = fields[1], fields[2]
  redis.call('ZREM', K.leases, token)
  if not member then
    return 'gone'
  end
  local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'last_error', reason)
  if attempts >= max_attempts then
    finish(K, jk, token, member, 'failed', now, retention_ms)
    return 'failed'
  end
  redis.call('HSET', jk, 'state', 'new', 'lease_until', 0, 'progress', 0)
  move_images(K, tonumber(fields[3]), 'pending', 'new')
  redis.call('ZADD', K.waiting, created, member)
  redis.call('HINCRBY', K.stats, 'requeued', 1)
  wake(K)
  return 'new'
end

-- Brings back jobs of dead workers and unused reservations. Bounded per call so
-- one call never blocks Redis for long; callers run it often. The jobs' tokens
-- come from leases and reserved, their hashes are K.job_prefix .. token.
-- K: waiting, active, reserved, leases, stats, images, client_prefix, image_gc, wakeup, job_prefix
local function sweep(K, now, max_attempts, retention_ms, limit)
  local requeued, failed = 0, 0
  local expired = redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, limit)
  for _, token in ipairs(expired) do
    local outcome = give_up_attempt(K, K.job_prefix .. token, token, now, max_attempts,
      retention_ms, 'lease expired')
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

-- Moves a new job (hash jk, `number` images) to pending under a lease; returns the
-- claim's fence, the fencing token every later call of this claim must present.
-- K: waiting, reserved, leases, images
local function start_lease(K, jk, token, member, number, now, lease_ms, worker)
  local fence = redis.call('HINCRBY', jk, 'fence', 1)
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.reserved, token)
  redis.call('ZADD', K.leases, now + lease_ms, token)
  redis.call('HSET', jk, 'state', 'pending', 'started_ms', now,
    'lease_until', now + lease_ms, 'progress', 0, 'worker', worker)
  move_images(K, number, 'new', 'pending')
  return fence
end

-- The fence of every call a claim makes after claiming: the job (hash jk) must
-- exist, be pending, and still belong to this claim. Returns an error code, or nil.
-- K: none
local function claim_error(jk, fence)
  local f = redis.call('HMGET', jk, 'state', 'fence')
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
