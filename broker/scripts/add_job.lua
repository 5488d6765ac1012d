--[[
add_job.lua: puts a new job at the tail of the queue (state new).

KEYS: the queue layout of _lib.lua (1 job prefix .. 7 wakeup), then
  KEYS[8] seq           string insertion counter
ARGV:
  [1] token             32 lower-case hex characters
  [2] prompt            transliterated, printable ASCII
  [3] number            images, 1..16
  [4] width             pixels
  [5] height            pixels
  [6] created_ms        '' = now (the Redis clock); an integer keeps an imported time
Returns:
  {'OK', created_ms}    the job exists, state new
  {'TOKEN_EXISTS'}      a job with this token already exists; nothing changed
]]
--@include _lib.lua

local K = queue_keys()
local token = ARGV[1]
local jk = K.job_prefix .. token
if redis.call('EXISTS', jk) == 1 then
  return {'TOKEN_EXISTS'}
end
local created = now_ms()
if ARGV[6] ~= '' then
  created = tonumber(ARGV[6])
end
local seq = redis.call('INCR', KEYS[8])
local member = string.format('%016d', seq) .. token
redis.call('HSET', jk,
  'token', token, 'prompt', ARGV[2], 'number', ARGV[3], 'width', ARGV[4],
  'height', ARGV[5], 'state', 'new', 'created_ms', created, 'member', member,
  'attempts', 0, 'claims', 0, 'progress', 0, 'lease_until', 0)
redis.call('ZADD', K.waiting, created, member)
redis.call('ZADD', K.active, created, member)
redis.call('HINCRBY', K.stats, 'added', 1)
wake(K)
return {'OK', created}
