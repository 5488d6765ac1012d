--[[
hold_client_slot.lua: reserves one of a client's open-job slots for a token
before its captcha is verified, so that a request the per-client caps would
refuse never spends a captcha. add_job turns the held slot into the open job
(and checks both caps again, atomically with the add); release_client_slot gives
it back when the captcha fails; a slot whose request died in between frees itself
when the hold ends. At a cap the client's open jobs are counted again first, so a
job whose hash is gone never holds its slot for good.

KEYS:
  [1] clients           zset  client key -> images of its open jobs
  [2] job_prefix        "{p}:job:"; the client's jobs' hashes are job_prefix .. token,
                        for the tokens of its zset (counted again at a cap)
  [3] client            zset  "{p}:client:<address>": open jobs (score 0) and
                              held slots (score = hold end, ms)
ARGV:
  [1] token             the token the new job will have
  [2] max_open          integer: the most open jobs (held slots included); 0 = no cap
  [3] hold_ms           integer ms: how long the slot stays held
  [4] number            the new job's images
  [5] max_images        integer: the most images in the client's open jobs; 0 = no cap
  [6] client            the client's key (the address KEYS[3] is named after)
Returns:
  {'OK'}                the slot is held until now + hold_ms
  {'TOO_MANY_OPEN'}     the client is at max_open; nothing changed
  {'TOO_MANY_IMAGES'}   the job would pass max_images; nothing changed
]]
--@include _lib.lua

local K = {clients = KEYS[1], job_prefix = KEYS[2], client = KEYS[3]}
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', K.client, '(0', now)
local refused = refusal(K, K.client, ARGV[6], ARGV[1],
  tonumber(ARGV[4]), tonumber(ARGV[2]), tonumber(ARGV[5]), false)
if refused then
  return {refused}
end
redis.call('ZADD', K.client, now + tonumber(ARGV[3]), ARGV[1])
client_expiry(K.client)
return {'OK'}
