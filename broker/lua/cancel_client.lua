--[[
cancel_client.lua: `sdq admin cancel-client KEY`: cancels every open job of one
client (the key the abuse limits and the fair queue use: an address, an IPv6
network), as cancel_job.lua cancels one: new ones leave the queue, pending ones
get `cancel_requested` and their workers stop; their live previews go. Tokens of
the client's zset whose job hash is gone are dropped with every index entry. The
client's finish tag is forgotten: it has nothing queued. Audited.

KEYS:
  [1] job_prefix        "{p}:job:"; the client's jobs' hashes are job_prefix .. token,
                        for the tokens of its zset
  [2] waiting           zset  new, not reserved, FIFO
  [3] fair              zset  new, not reserved, queued fairly
  [4] active            zset  new or pending
  [5] reserved          zset  token -> reservation end (ms)
  [6] leases            zset  token -> lease end (ms)
  [7] running           zset  pending token -> started_ms
  [8] stats             hash  lifetime counters (this script counts `cancelled`)
  [9] images            hash  images per unfinished state and resolution
  [10] open             hash  token -> record of each open job
  [11] clients          zset  client key -> images of its open jobs
  [12] client_prefix    "{p}:client:"; each job's client zset is client_prefix .. the
                        address in its `client` field (this client's, KEYS[17])
  [13] vfinish          zset  client key -> its last virtual finish tag
  [14] audit            list  operator actions
  [15] image_gc         zset  token -> when its images are due for deletion (finish())
  [16] preview_prefix   "{p}:preview:"; a cancelled job's live preview is
                        preview_prefix .. token (deleted)
  [17] client           zset  "{p}:client:<key>": the client's open jobs (score 0)
ARGV:
  [1] client            the client's key
  [2] retention_ms      integer ms: how long the cancelled jobs are kept
  [3] by                who (user@host), for the audit list
Returns:
  {'OK', cancelled, dropped}  jobs cancelled, and tokens dropped (their hash was gone)
]]
--@include _lib.lua

local K = {job_prefix = KEYS[1], waiting = KEYS[2], fair = KEYS[3], active = KEYS[4],
  reserved = KEYS[5], leases = KEYS[6], running = KEYS[7], stats = KEYS[8], images = KEYS[9],
  open = KEYS[10], clients = KEYS[11], client_prefix = KEYS[12], vfinish = KEYS[13],
  audit = KEYS[14], image_gc = KEYS[15], preview_prefix = KEYS[16], client = KEYS[17]}
local now = now_ms()
local cancelled, dropped = 0, 0
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K.client, 0, 0)) do
  local jk = K.job_prefix .. token
  local f = redis.call('HMGET', jk, 'state', 'member')
  if not f[2] then
    drop_dangling(K, token, nil)
    redis.call('ZREM', K.client, token)
    dropped = dropped + 1
  elseif f[1] == 'new' or f[1] == 'pending' then
    if f[1] == 'pending' then
      redis.call('HSET', jk, 'cancel_requested', now)
    end
    finish(K, jk, token, f[2], 'cancelled', now, tonumber(ARGV[2]))
    redis.call('DEL', K.preview_prefix .. token)
    cancelled = cancelled + 1
  else
    redis.call('ZREM', K.client, token)
  end
end
recount_client(K, K.client, ARGV[1])
client_expiry(K.client)
redis.call('ZREM', K.vfinish, ARGV[1])
audit(K, now, 'cancel-client', ARGV[1], ARGV[3], cancelled .. ' cancelled, ' .. dropped ..
  ' dropped')
return {'OK', cancelled, dropped}
