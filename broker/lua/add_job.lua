--[[
add_job.lua: puts a new job at the tail of the queue (state new).

KEYS:
  [1] job               hash  "{p}:job:<token>": the new job
  [2] waiting           zset  new, not reserved; score created_ms, member <seq:016d><token>
  [3] active            zset  new or pending; same score and member
  [4] stats             hash  lifetime counters (this script counts `added`)
  [5] wakeup            list  pushed for an idle worker blocked on BLPOP
  [6] seq               string  insertion counter (ties in created_ms keep FIFO order)
  [7] images            hash  images per unfinished state (this job's join `new`)
  [8] client            zset  "{p}:client:<address>", given only when ARGV[7] is not
                              '': the client's open jobs (score 0) and held slots
                              (score = hold end, ms)
ARGV:
  [1] token             32 lower-case hex characters
  [2] prompt            transliterated, printable ASCII
  [3] number            images, 1..16
  [4] width             pixels
  [5] height            pixels
  [6] created_ms        '' = now (the Redis clock); an integer keeps an imported time
  [7] client            the client's address ('' = not counted, and no KEYS[8]); the
                        job joins the client's open jobs until it is finished
  [8] max_open          integer; a client may hold at most this many open jobs
                        (a slot held for this token by hold_client_slot counts as
                        its own); 0 = no cap
Returns:
  {'OK', created_ms}    the job exists, state new
  {'TOKEN_EXISTS'}      a job with this token already exists; nothing changed
  {'TOO_MANY_OPEN'}     the client is at max_open; nothing changed
]]
--@include _lib.lua

local K = {job = KEYS[1], waiting = KEYS[2], active = KEYS[3], stats = KEYS[4],
  wakeup = KEYS[5], seq = KEYS[6], images = KEYS[7], client = KEYS[8]}
local token = ARGV[1]
if redis.call('EXISTS', K.job) == 1 then
  return {'TOKEN_EXISTS'}
end
local now = now_ms()
local client = ARGV[7]
if client ~= '' then
  redis.call('ZREMRANGEBYSCORE', K.client, '(0', now)
  local max_open = tonumber(ARGV[8])
  if max_open > 0 and not redis.call('ZSCORE', K.client, token)
      and redis.call('ZCARD', K.client) >= max_open then
    return {'TOO_MANY_OPEN'}
  end
  redis.call('ZADD', K.client, 0, token)
  redis.call('PERSIST', K.client)
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
redis.call('ZADD', K.waiting, created, member)
redis.call('ZADD', K.active, created, member)
redis.call('HINCRBY', K.stats, 'added', 1)
move_images(K, tonumber(ARGV[3]), nil, 'new')
wake(K)
return {'OK', created}
