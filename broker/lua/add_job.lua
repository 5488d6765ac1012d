--[[
add_job.lua: puts a new job at the tail of the queue (state new).

KEYS: the queue layout of _lib.lua (1 job prefix .. 10 durations; uses 8 seq, 9 client prefix)
ARGV:
  [1] token             32 lower-case hex characters
  [2] prompt            transliterated, printable ASCII
  [3] number            images, 1..16
  [4] width             pixels
  [5] height            pixels
  [6] created_ms        '' = now (the Redis clock); an integer keeps an imported time
  [7] client            the client's address key ('' = not counted); the job joins
                        the client's open jobs until it is finished
  [8] max_open          integer; a client may hold at most this many open jobs
                        (a slot held for this token by hold_client_slot counts as
                        its own); 0 = no cap
Returns:
  {'OK', created_ms}    the job exists, state new
  {'TOKEN_EXISTS'}      a job with this token already exists; nothing changed
  {'TOO_MANY_OPEN'}     the client is at max_open; nothing changed
]]
--@include _lib.lua

local K = queue_keys()
local token = ARGV[1]
local jk = K.job_prefix .. token
if redis.call('EXISTS', jk) == 1 then
  return {'TOKEN_EXISTS'}
end
local now = now_ms()
local client = ARGV[7] or ''
if client ~= '' then
  local ck = K.client_prefix .. client
  redis.call('ZREMRANGEBYSCORE', ck, '(0', now)
  local max_open = tonumber(ARGV[8])
  if max_open > 0 and not redis.call('ZSCORE', ck, token)
      and redis.call('ZCARD', ck) >= max_open then
    return {'TOO_MANY_OPEN'}
  end
  redis.call('ZADD', ck, 0, token)
  redis.call('PERSIST', ck)
end
local created = now
if ARGV[6] ~= '' then
  created = tonumber(ARGV[6])
end
local seq = redis.call('INCR', K.seq)
local member = string.format('%016d', seq) .. token
redis.call('HSET', jk,
  'token', token, 'prompt', ARGV[2], 'number', ARGV[3], 'width', ARGV[4],
  'height', ARGV[5], 'state', 'new', 'created_ms', created, 'member', member,
  'attempts', 0, 'fence', 0, 'progress', 0, 'lease_until', 0)
if client ~= '' then
  redis.call('HSET', jk, 'client', client)
end
redis.call('ZADD', K.waiting, created, member)
redis.call('ZADD', K.active, created, member)
redis.call('HINCRBY', K.stats, 'added', 1)
wake(K)
return {'OK', created}
