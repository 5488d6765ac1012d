--[[
_lib.lua: helpers shared by several scripts. Not a script of its own:
broker/lua/__init__.py inlines it where a script has the line `--@include _lib.lua`.

Helpers read no KEYS and no ARGV. A script builds its table K from its own KEYS
(K.<name> = KEYS[i], named as its header names them) and passes K to the helpers
it calls; the `K:` line above each helper lists the fields it needs, those of
the helpers it calls included. Two fields are key prefixes, never keys:
  K.job_prefix     "{p}:job:"; a job's hash is job_prefix .. token, for tokens a
                   helper finds in an ordered set (sweep, the head of the queue)
  K.client_prefix  "{p}:client:"; a client's zset is client_prefix .. the address
                   stored in a job's `client` field or its {p}:open record (finish)
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
-- pending, and new:<W>x<H>, pending:<W>x<H> per resolution): a job of `number`
-- images at resolution `res` leaves state `from` and enters state `to` (nil, or a
-- terminal state, for none). Every script that moves a job in or out of new or
-- pending calls this, so the figures and the ETAs are O(1) reads.
-- K: images
local function move_images(K, number, res, from, to)
  if from == 'new' or from == 'pending' then
    redis.call('HINCRBY', K.images, from, -number)
    redis.call('HINCRBY', K.images, from .. ':' .. res, -number)
  end
  if to == 'new' or to == 'pending' then
    redis.call('HINCRBY', K.images, to, number)
    redis.call('HINCRBY', K.images, to .. ':' .. res, number)
  end
end

-- An open job's record in {p}:open, kept while it is new or pending: what a script
-- needs to drop its index entries should its hash be gone (drop_dangling).
-- K: open
local function record_open(K, token, member, number, res, client)
  if client == nil or client == '' then
    client = '-'
  end
  redis.call('HSET', K.open, token, member .. ' ' .. number .. ' ' .. res .. ' ' .. client)
end

-- Puts a new job in the waiting set it was queued in: a fairly queued job (one with a
-- virtual start tag) in fair, any other in waiting, by creation time.
-- K: waiting, fair
local function enqueue(K, member, created, vstart)
  if vstart then
    redis.call('ZADD', K.fair, vstart, member)
  else
    redis.call('ZADD', K.waiting, created, member)
  end
end

-- The fair queue's virtual time moves to the start tag of the job taken into service;
-- clients whose last finish tag it has reached are forgotten (their next job starts at
-- the virtual time anyway). FIFO jobs (no tag) leave it as it is.
-- K: vtime, vfinish
local function advance_vtime(K, vstart)
  if not vstart then
    return
  end
  local start = tonumber(vstart)
  if start > tonumber(redis.call('GET', K.vtime) or 0) then
    redis.call('SET', K.vtime, vstart)
    redis.call('ZREMRANGEBYSCORE', K.vfinish, '-inf', start)
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

-- A job of `number` images is no longer one of the client's open jobs (zset ck):
-- its slot is free and its images leave the client's sum in {p}:clients. Only a
-- token the zset still held counts, so calling it twice changes nothing.
-- K: clients
local function close_for_client(K, ck, client, token, number)
  if redis.call('ZREM', ck, token) == 1 then
    if tonumber(redis.call('ZINCRBY', K.clients, -number, client)) <= 0 then
      redis.call('ZREM', K.clients, client)
    end
  end
  client_expiry(ck)
end

-- Counts a client's open images again from its open jobs (zset ck), dropping the
-- tokens whose job is gone or finished: a slot an index or a lost hash held is freed.
-- Called only at a cap, so it costs O(the client's open jobs) only then. The jobs'
-- hashes are K.job_prefix .. token, for the tokens of the client's zset.
-- K: clients, job_prefix
local function recount_client(K, ck, client)
  local images = 0
  for _, t in ipairs(redis.call('ZRANGEBYSCORE', ck, 0, 0)) do
    local job = redis.call('HMGET', K.job_prefix .. t, 'member', 'number', 'state')
    if job[1] and (job[3] == 'new' or job[3] == 'pending') then
      images = images + tonumber(job[2])
    else
      redis.call('ZREM', ck, t)
    end
  end
  if images > 0 then
    redis.call('ZADD', K.clients, images, client)
  else
    redis.call('ZREM', K.clients, client)
  end
end

-- Whether a client (zset ck, holds already expired) may open one more job of
-- `number` images for `token`: nil, or the code that refuses it. A slot held for this
-- token counts as its own when `own_slot` is true. At a cap the client's sums are
-- counted again first (recount_client), so a lost job never holds a slot for good.
-- K: clients, job_prefix
local function refusal(K, ck, client, token, number, max_open, max_images, own_slot)
  for pass = 1, 2 do
    local held = own_slot and redis.call('ZSCORE', ck, token)
    local jobs_full = max_open > 0 and not held and redis.call('ZCARD', ck) >= max_open
    local images_full = max_images > 0 and
      tonumber(redis.call('ZSCORE', K.clients, client) or 0) + number > max_images
    if pass == 2 or not (jobs_full or images_full) then
      if jobs_full then
        return 'TOO_MANY_OPEN'
      end
      if images_full then
        return 'TOO_MANY_IMAGES'
      end
      return nil
    end
    recount_client(K, ck, client)
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

-- One operator action in the audit list (newest first, the last 1,000 kept):
-- "<ms>\t<action>\t<target>\t<by>\t<outcome>".
-- K: audit
local function audit(K, now, action, target, by, outcome)
  redis.call('LPUSH', K.audit, table.concat({now, action, target, by, outcome}, '\t'))
  redis.call('LTRIM', K.audit, 0, 999)
end

-- Ends a job (hash jk) in a terminal state: off every index, kept for retention_ms.
-- K: waiting, fair, active, reserved, leases, running, open, stats, images, clients, client_prefix, image_gc
local function finish(K, jk, token, member, state, now, retention_ms)
  local done = redis.call('HMGET', jk, 'client', 'state', 'number', 'width', 'height')
  if done[1] then
    -- the client's open-jobs count drops; its address is not kept with the finished job
    close_for_client(K, K.client_prefix .. done[1], done[1], token, tonumber(done[3]))
    redis.call('HDEL', jk, 'client')
  end
  move_images(K, tonumber(done[3]), done[4] .. 'x' .. done[5], done[2], state)
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.fair, member)
  redis.call('ZREM', K.active, member)
  redis.call('ZREM', K.reserved, token)
  redis.call('ZREM', K.leases, token)
  redis.call('ZREM', K.running, token)
  redis.call('HDEL', K.open, token)
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

-- An index lists `token` but its job hash (K.job_prefix .. token) is gone, or is a
-- partial hash without a member (eviction, a partial restore, manual cleanup): every
-- index entry of the job is dropped, never a hash created. Its {p}:open record says
-- what it held: the image sums and the client's slot are given back; without one (a
-- job older than the records) the sums are marked to be counted again
-- (queue_figures.lua), which also drops what is left of it in active.
-- K: waiting, fair, active, reserved, leases, running, open, images, clients, client_prefix, job_prefix
local function drop_dangling(K, token, member)
  local state = 'new'
  if redis.call('ZSCORE', K.leases, token) then
    state = 'pending'
  end
  local record = redis.call('HGET', K.open, token)
  if record then
    local m, number, res, client = string.match(record, '^(%S+) (%d+) (%S+) (%S+)$')
    member = m
    move_images(K, tonumber(number), res, state, nil)
    if client ~= '-' then
      close_for_client(K, K.client_prefix .. client, client, token, tonumber(number))
    end
    redis.call('HDEL', K.open, token)
  else
    redis.call('HDEL', K.images, 'resolutions')
  end
  if member then
    redis.call('ZREM', K.waiting, member)
    redis.call('ZREM', K.fair, member)
    redis.call('ZREM', K.active, member)
  end
  redis.call('ZREM', K.reserved, token)
  redis.call('ZREM', K.leases, token)
  redis.call('ZREM', K.running, token)
  redis.call('DEL', K.job_prefix .. token)
end

-- A claim of the job (hash jk) that ended without completion (lease expired,
-- render failed): the attempt counts, and the job goes back to its place in the
-- queue (its creation time or its start tag is kept) or, past max_attempts, to
-- failed. A job whose hash is gone is dropped from every index instead ('gone').
-- K: waiting, fair, active, reserved, leases, running, open, stats, images, clients, client_prefix, image_gc, wakeup, job_prefix
local function give_up_attempt(K, jk, token, now, max_attempts, retention_ms, reason)
  local fields = redis.call('HMGET', jk, 'member', 'created_ms', 'number', 'width', 'height',
    'vstart')
  local member = fields[1]
  if not member then
    drop_dangling(K, token, nil)
    return 'gone'
  end
  redis.call('ZREM', K.leases, token)
  redis.call('ZREM', K.running, token)
  local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'last_error', reason)
  if attempts >= max_attempts then
    finish(K, jk, token, member, 'failed', now, retention_ms)
    return 'failed'
  end
  redis.call('HSET', jk, 'state', 'new', 'lease_until', 0, 'progress', 0)
  move_images(K, tonumber(fields[3]), fields[4] .. 'x' .. fields[5], 'pending', 'new')
  enqueue(K, member, fields[2], fields[6])
  redis.call('HINCRBY', K.stats, 'requeued', 1)
  wake(K)
  return 'new'
end

-- Brings back jobs of dead workers and unused reservations. Bounded per call so
-- one call never blocks Redis for long; callers run it often. The jobs' tokens
-- come from leases and reserved, their hashes are K.job_prefix .. token. Returns
-- requeued, failed, reservations ended, entries dropped (their hash was gone), and
-- whether a batch was full (1: the caller should call again at once).
-- K: waiting, fair, active, reserved, leases, running, open, stats, images, clients, client_prefix, image_gc, wakeup, job_prefix
local function sweep(K, now, max_attempts, retention_ms, limit)
  local requeued, failed, dropped = 0, 0, 0
  local expired = redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, limit)
  for _, token in ipairs(expired) do
    local outcome = give_up_attempt(K, K.job_prefix .. token, token, now, max_attempts,
      retention_ms, 'lease expired')
    if outcome == 'new' then requeued = requeued + 1 end
    if outcome == 'failed' then failed = failed + 1 end
    if outcome == 'gone' then dropped = dropped + 1 end
  end
  local unreserved = redis.call('ZRANGEBYSCORE', K.reserved, '-inf', now, 'LIMIT', 0, limit)
  for _, token in ipairs(unreserved) do
    redis.call('ZREM', K.reserved, token)
    local fields = redis.call('HMGET', K.job_prefix .. token, 'member', 'created_ms', 'state',
      'vstart')
    if not fields[1] then
      drop_dangling(K, token, nil)
      dropped = dropped + 1
    elseif fields[3] == 'new' then
      enqueue(K, fields[1], fields[2], fields[4])
    end
  end
  local full = 0
  if #expired >= limit or #unreserved >= limit then
    full = 1
  end
  return requeued, failed, #unreserved, dropped, full
end

-- The next job to hand out: of the heads of waiting (FIFO) and fair, the one created
-- earlier (so jobs queued under the other scheduling mode drain first, and neither
-- set starves the other). A head whose hash (K.job_prefix .. token) is gone is dropped
-- and the next one looked at, at most `limit` times. Returns member, token and the
-- job's fields {member, number, width, height, prompt, created_ms, vstart}, or nil.
-- K: waiting, fair, active, reserved, leases, running, open, images, clients, client_prefix, job_prefix
local function next_head(K, limit)
  for _ = 1, limit do
    local first = redis.call('ZRANGE', K.waiting, 0, 0, 'WITHSCORES')
    local member = first[1]
    local fair = redis.call('ZRANGE', K.fair, 0, 0)[1]
    if fair then
      local created = redis.call('HGET', K.job_prefix .. token_of(fair), 'created_ms')
      if not member or not created or tonumber(created) < tonumber(first[2]) then
        member = fair
      end
    end
    if not member then
      return nil
    end
    local token = token_of(member)
    local job = redis.call('HMGET', K.job_prefix .. token, 'member', 'number', 'width',
      'height', 'prompt', 'created_ms', 'vstart')
    if job[1] and job[2] then
      return member, token, job
    end
    drop_dangling(K, token, member)
  end
  return nil
end

-- Moves a new job (hash jk, `number` images of resolution `res`) to pending under a
-- lease; returns the claim's fence, the fencing token every later call of this claim
-- must present. A fairly queued job moves the virtual time to its start tag.
-- K: waiting, fair, reserved, leases, running, images, vtime, vfinish
local function start_lease(K, jk, token, member, number, res, vstart, now, lease_ms, worker)
  local fence = redis.call('HINCRBY', jk, 'fence', 1)
  redis.call('ZREM', K.waiting, member)
  redis.call('ZREM', K.fair, member)
  redis.call('ZREM', K.reserved, token)
  redis.call('ZADD', K.leases, now + lease_ms, token)
  redis.call('ZADD', K.running, now, token)
  redis.call('HSET', jk, 'state', 'pending', 'started_ms', now,
    'lease_until', now + lease_ms, 'progress', 0, 'worker', worker)
  move_images(K, number, res, 'new', 'pending')
  advance_vtime(K, vstart)
  return fence
end

-- A job's place in service order, for one queued fairly (it has a start tag): the
-- unfinished jobs served before it. New and waiting: every job in service (pending or
-- handed out), every FIFO job waiting (they drain first) and the fair jobs ahead of it;
-- new and handed out: the pending jobs and those handed out before it; once started
-- (pending, or finished after a start): the pending jobs that started before it.
-- Returns the place, how many of those are pending, and how many are new; -1, 0, 0
-- for a job that finished without starting.
-- K: fair, waiting, reserved, leases, running
local function fair_place(K, token, state, member, started)
  local pending = redis.call('ZCARD', K.leases)
  if state == 'new' then
    local rank = redis.call('ZRANK', K.fair, member)
    local new = 0
    if rank then
      new = redis.call('ZCARD', K.reserved) + redis.call('ZCARD', K.waiting) + rank
    else
      local until_ms = redis.call('ZSCORE', K.reserved, token)
      if until_ms then
        new = redis.call('ZCOUNT', K.reserved, '-inf', '(' .. until_ms)
      end
    end
    return pending + new, pending, new
  end
  if started then
    local before = redis.call('ZCOUNT', K.running, '-inf', '(' .. started)
    return before, before, 0
  end
  return -1, 0, 0
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
