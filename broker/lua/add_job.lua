--[[
add_job.lua: puts a new job in the queue (state new): at the tail of waiting (FIFO),
or, queued fairly, in fair at its virtual start tag (broker/fair.py):
start = max(vtime, the client's last finish tag), finish = start + cost, where cost
is images x width x height.

KEYS:
  [1] job               hash  "{p}:job:<token>": the new job
  [2] waiting           zset  new, not reserved, FIFO; score created_ms, member <seq:016d><token>
  [3] fair              zset  new, not reserved, fair; score the start tag, same member
  [4] active            zset  new or pending; score created_ms, same member
  [5] stats             hash  lifetime counters (this script counts `added`)
  [6] wakeup            list  pushed for an idle worker blocked on BLPOP
  [7] seq               string  insertion counter (ties in created_ms keep FIFO order)
  [8] images            hash  images per unfinished state and resolution (this job's join `new`)
  [9] open              hash  token -> record of each open job (this job's is written)
  [10] clients          zset  client key -> images of its open jobs
  [11] vtime            string  the fair queue's virtual time (read)
  [12] vfinish          zset  client key -> its last virtual finish tag
  [13] job_prefix       "{p}:job:"; at a cap the client's open jobs are counted again:
                        their hashes are job_prefix .. token, for the tokens of its zset
  [14] idem             hash  "{p}:idem:<digest>": the request's Idempotency-Key record
                              (the bare prefix, never touched, when ARGV[11] is '')
  [15] client           zset  "{p}:client:<address>", given only when ARGV[7] is not
                              '': the client's open jobs (score 0) and held slots
                              (score = hold end, ms)
ARGV:
  [1] token             32 lower-case hex characters
  [2] prompt            transliterated, printable ASCII
  [3] number            images, 1..16
  [4] width             pixels
  [5] height            pixels
  [6] created_ms        '' = now (the Redis clock); an integer keeps an imported time
  [7] client            the client's key ('' = not counted, and no KEYS[15]); the
                        job joins the client's open jobs until it is finished
  [8] max_open          integer; a client may hold at most this many open jobs
                        (a slot held for this token by hold_client_slot counts as
                        its own); 0 = no cap
  [9] max_images        integer; at most this many images in a client's open jobs; 0 = no cap
  [10] scheduling       'fifo' or 'fair'; queued fairly, a job without a client key
                        counts as client '-'
  [11] request          '' = no Idempotency-Key; else a fingerprint of the request: the
                        first job under this key is answered again instead of adding one
  [12] idem_ms          integer ms: how long the key's record is kept
Returns:
  {'OK', created_ms, token, replayed}  replayed 0: this job was added (token is
                        ARGV[1]); 1: the key's first job is answered (its token and time)
  {'TOKEN_EXISTS'}      a job with this token already exists; nothing changed
  {'TOO_MANY_OPEN'}     the client is at max_open; nothing changed
  {'TOO_MANY_IMAGES'}   the job would pass the client's max_images; nothing changed
  {'IDEMPOTENCY_MISMATCH'}  the key was used with another request; nothing changed
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  stats = KEYS[5], wakeup = KEYS[6], seq = KEYS[7], images = KEYS[8], open = KEYS[9],
  clients = KEYS[10], vtime = KEYS[11], vfinish = KEYS[12], job_prefix = KEYS[13],
  idem = KEYS[14], client = KEYS[15]}
local token, client, request = ARGV[1], ARGV[7], ARGV[11]
local number, width, height = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
if request ~= '' then
  local first = redis.call('HMGET', K.idem, 'token', 'request', 'created_ms')
  if first[1] then
    if client ~= '' then  -- the slot held for this request is not needed
      local score = redis.call('ZSCORE', K.client, token)
      if score and tonumber(score) > 0 then
        redis.call('ZREM', K.client, token)
        client_expiry(K.client)
      end
    end
    if first[2] ~= request then
      return {'IDEMPOTENCY_MISMATCH'}
    end
    return {'OK', tonumber(first[3]), first[1], 1}
  end
end
if redis.call('EXISTS', K.job) == 1 then
  return {'TOKEN_EXISTS'}
end
if client ~= '' then
  redis.call('ZREMRANGEBYSCORE', K.client, '(0', now)
  local refused = refusal(K, K.client, client, token, number, tonumber(ARGV[8]),
    tonumber(ARGV[9]), true)
  if refused then
    return {refused}
  end
  redis.call('ZADD', K.client, 0, token)
  redis.call('PERSIST', K.client)
  redis.call('ZINCRBY', K.clients, number, client)
end
local created = now
if ARGV[6] ~= '' then
  created = tonumber(ARGV[6])
end
local seq = redis.call('INCR', K.seq)
local member = string.format('%016d', seq) .. token
redis.call('HSET', K.job,
  'token', token, 'prompt', ARGV[2], 'number', ARGV[3], 'width', ARGV[4],
  'height', ARGV[5], 'state', 'new', 'created_ms', created, 'member', member,
  'attempts', 0, 'fence', 0, 'progress', 0, 'lease_until', 0)
if client ~= '' then
  redis.call('HSET', K.job, 'client', client)
end
local vstart = nil
if ARGV[10] == 'fair' then
  local tag = client ~= '' and client or '-'
  local cost = number * width * height
  vstart = tonumber(redis.call('GET', K.vtime) or 0)
  local last = redis.call('ZSCORE', K.vfinish, tag)
  if last and tonumber(last) > vstart then
    vstart = tonumber(last)
  end
  redis.call('ZADD', K.vfinish, vstart + cost, tag)
  redis.call('HSET', K.job, 'vstart', vstart, 'vcost', cost)
end
if redis.call('HEXISTS', K.images, 'resolutions') == 0 and redis.call('ZCARD', K.active) == 0 then
  redis.call('DEL', K.images)  -- an empty queue's sums are 0: counted, job by job
  redis.call('HSET', K.images, 'resolutions', now)
end
enqueue(K, member, created, vstart)
redis.call('ZADD', K.active, created, member)
record_open(K, token, member, number, ARGV[4] .. 'x' .. ARGV[5], client)
redis.call('HINCRBY', K.stats, 'added', 1)
move_images(K, number, ARGV[4] .. 'x' .. ARGV[5], nil, 'new')
if request ~= '' then
  redis.call('HSET', K.idem, 'token', token, 'request', request, 'created_ms', created)
  redis.call('PEXPIRE', K.idem, tonumber(ARGV[12]))
end
wake(K)
return {'OK', created, token, 0}
