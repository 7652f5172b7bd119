-- reactis: the reliable delayed queue, as one Lua script.
--
-- ARGV[1] names the operation; the other arguments depend on it. Every call
-- declares all seven keys of the queue, which share one hash tag so a queue
-- lives in one Redis Cluster slot:
--   KEYS[1] rx:{NAME}:z  sorted set  waiting messages: member = id, score = due ms
--   KEYS[2] rx:{NAME}:m  hash        waiting messages: id -> record (header + payload)
--   KEYS[3] rx:{NAME}:s  stream      ready and in-flight deliveries (consumer group)
--   KEYS[4] rx:{NAME}:d  stream      dead letters (capped with MAXLEN)
--   KEYS[5] rx:{NAME}:w  stream      wake-up hints for blocked consumers (MAXLEN 1)
--   KEYS[6] rx:{NAME}:i  hash        counters and the reclaim cursor
--   KEYS[7] rx:{NAME}:l  hash        leases extended past the visibility timeout:
--                                    delivery token -> lease end ms
--
-- A message is in exactly one place: waiting (z + m), delivered (one entry of
-- s, which carries everything about the delivery), or dead (one entry of d).
-- Moving between them happens inside one script call, so it is atomic.
--
-- Record encoding in m (binary; big-endian integers):
--   0x01 | enqueued ms (6 bytes) | payload
--   0x02 | enqueued ms (6) | failures (4) | crashes (4) | error length (4) |
--          last error | payload
-- The short form keeps a fresh message with a 100-byte payload in one
-- 112-byte allocation.
--
-- Time is the server's (TIME), in milliseconds. Redis 7 replicates script
-- effects, so reading TIME before writing is allowed.

------------------------------------------------------------------ schedule one
-- One message (a timer touch, a single schedule): the hot path, so it runs
-- before anything else in this file. Each call of a script runs its whole
-- top level again, and below it builds every helper and operation as a
-- fresh closure (two dozen allocations, garbage for the collector), which
-- cost as much as the work itself for a single ZADD and HSET. This path
-- uses no helper, builds no table but its reply, and needs no ZMSCORE:
-- ZADD's own reply says whether the id was waiting. The semantics are op_schedule's below
-- for one message (same arguments and reply); keep the two in step.
if ARGV[1] == 'schedule' and #ARGV == 6 then
  local z, id = KEYS[1], ARGV[3]
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local due = tonumber(ARGV[5])
  if ARGV[4] ~= '1' then
    due = now + due
  end
  -- The earliest due time before this write decides the wake hint.
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  local outcome = 0
  if ARGV[2] == '1' then
    if redis.call('ZADD', z, due, id) == 0 then
      outcome = 2 -- it was waiting: replaced
    end
  elseif redis.call('ZADD', z, 'NX', due, id) == 0 then
    return {1, tonumber(redis.call('ZSCORE', z, id))} -- kept the waiting one
  end
  redis.call('HSET', KEYS[2], id, struct.pack('>BI6', 1, now) .. ARGV[6])
  if first[2] == nil or due < tonumber(first[2]) then
    redis.call('XADD', KEYS[5], 'MAXLEN', '1', '*', 'due', string.format('%.0f', due))
  end
  return {outcome, due}
end

------------------------------------------------------------------ ack
-- Consumers ack after every fetch, so this also runs before the helpers
-- and operations below are built (see "schedule one"); it needs none.
-- ARGV: 'ack', group, token... Returns 1 or 0 per token: 0 when the delivery
-- is no longer pending (reclaimed, acked already, or never existed).
--
-- A delivery is pending exactly while its stream entry exists: promotion
-- adds the entry and reads it into the PEL in the same call, and ack,
-- retry, fail and reclaim delete it when they take it out of the PEL. So
-- one XACK for all tokens tells whether all were pending; only when some
-- were not, the entries still there (the ones just acked) tell which.
-- Also run by 'fetch' for the tokens it is given (rx_queue_ack_fetch).
local function ack_tokens(g, toks)
  local S, L, I = KEYS[3], KEYS[7], KEYS[6]
  local n = redis.call('XACK', S, g, unpack(toks))
  local out, done = {}, toks
  if n < #toks then
    done = {}
    for k, t in ipairs(toks) do
      local ok = 0
      if #redis.call('XRANGE', S, t, t) > 0 then
        ok = 1
        done[#done + 1] = t
      end
      out[k] = ok
    end
  else
    for k = 1, #toks do
      out[k] = 1
    end
  end
  if #done > 0 then
    -- XDEL finds each entry by walking its stream node from the start (a
    -- node holds up to 100 entries): for a batch, ~50 steps per entry.
    -- XTRIM MINID drops whole nodes instead. Below the oldest pending
    -- delivery (or, with none pending, up to the last one delivered) every
    -- entry has been delivered (XREADGROUP > delivers in id order; a queue
    -- has one group) and is no longer pending, so it was acked: here, or
    -- before and then deleted already. Trimming there deletes exactly
    -- those acked here that lie below. When a delivery is still pending
    -- (another consumer's), tokens above it may remain: XDEL takes them
    -- (cheaply for the ids the trim took already).
    local p = redis.call('XPENDING', S, g, '-', '+', 1)
    local bound = p[1] and p[1][1]
    if not bound then
      for _, gr in ipairs(redis.call('XINFO', 'GROUPS', S)) do
        local gf = {}
        for j = 1, #gr, 2 do
          gf[gr[j]] = gr[j + 1]
        end
        if gf.name == g then
          local ms, seq = string.match(gf['last-delivered-id'] or '', '^(%d+)-(%d+)$')
          ms, seq = tonumber(ms), tonumber(seq)
          if ms and seq < 2 ^ 53 then
            bound = string.format('%.0f-%.0f', ms, seq + 1)
          end
        end
      end
    end
    if bound then
      redis.call('XTRIM', S, 'MINID', bound)
    end
    if p[1] or not bound then
      redis.call('XDEL', S, unpack(done))
    end
    redis.call('HDEL', L, unpack(done))
    redis.call('HINCRBY', I, 'acked', #done)
  end
  return out
end

if ARGV[1] == 'ack' then
  local toks = {}
  for j = 3, #ARGV do
    toks[#toks + 1] = ARGV[j]
  end
  return ack_tokens(ARGV[2], toks)
end

local Z, M, S, D, W, I, L = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as decimal strings: tostring() would switch to exponents.
-- (redis.call itself formats numbers exactly, so they may go to it as is.)
local function fmt(n)
  return string.format('%.0f', n)
end

local function encode(enq, fails, crashes, err, payload)
  if fails == 0 and crashes == 0 and err == '' then
    return struct.pack('>BI6', 1, enq) .. payload
  end
  return struct.pack('>BI6I4I4I4', 2, enq, fails, crashes, #err) .. err .. payload
end

-- Returns enq, fails, crashes, err, payload; nil for a record it cannot read.
local function decode(v)
  local ver = string.byte(v, 1)
  if ver == 1 and #v >= 7 then
    local enq = struct.unpack('>I6', v, 2)
    return enq, 0, 0, '', string.sub(v, 8)
  elseif ver == 2 and #v >= 19 then
    local enq, fails, crashes, elen = struct.unpack('>I6I4I4I4', v, 2)
    if #v >= 19 + elen then
      return enq, fails, crashes, string.sub(v, 20, 19 + elen), string.sub(v, 20 + elen)
    end
  end
  return nil
end

-- The due time of the earliest waiting message, or nil.
local function earliest()
  local r = redis.call('ZRANGE', Z, 0, 0, 'WITHSCORES')
  if r[2] then
    return tonumber(r[2])
  end
  return nil
end

-- Consumers block until the earliest due time they saw (or a cap). A message
-- that becomes the new earliest wakes them with an entry on the wake stream.
-- The hint carries nothing: the schedule stays the only truth.
local function wake_if_earlier(due, before)
  if before == nil or due < before then
    redis.call('XADD', W, 'MAXLEN', '1', '*', 'due', fmt(due))
  end
end

-- A flat field/value array as a table.
local function fields(a)
  local t = {}
  for j = 1, #a, 2 do
    t[a[j]] = a[j + 1]
  end
  return t
end

-- A delivery entry of the ready stream as a table: id, payload, err and the
-- numbers of its meta field "due enq attempt fail crash".
local function delivery(kv)
  local f = fields(kv)
  local m = {}
  for x in string.gmatch(f.meta or '', '%d+') do
    m[#m + 1] = tonumber(x)
  end
  return {id = f.id, payload = f.payload or '', err = f.err or '', due = m[1], enq = m[2],
    attempt = m[3], fail = m[4] or 0, crash = m[5] or 0}
end

local function bury(id, payload, enq, due, fails, crashes, err, now, dead_max)
  redis.call('XADD', D, 'MAXLEN', fmt(dead_max), '*', 'id', id, 'payload', payload,
    'enq', fmt(enq), 'due', fmt(due), 'attempts', fmt(fails + crashes),
    'fail', fmt(fails), 'crash', fmt(crashes), 'err', err, 'at', fmt(now))
  redis.call('HINCRBY', I, 'dead', 1)
end

-- Puts a message back on the schedule unless the same id is already waiting
-- (a newer schedule of that id supersedes it). Returns true when requeued.
-- nowake: the caller promotes right after (reclaim inside fetch).
local function requeue(id, due, enq, fails, crashes, err, payload, nowake)
  if redis.call('ZSCORE', Z, id) then
    return false
  end
  local before = nil
  if not nowake then
    before = earliest()
  end
  redis.call('ZADD', Z, fmt(due), id)
  redis.call('HSET', M, id, encode(enq, fails, crashes, err, payload))
  if not nowake then
    wake_if_earlier(due, before)
  end
  return true
end

local function is_err(r)
  return type(r) == 'table' and r.err ~= nil
end

------------------------------------------------------------------ schedule
-- ARGV: 'schedule', replace (0|1), then per message: id, at (0 = when is a
-- delay in ms, 1 = when is an epoch ms), when, payload.
-- Returns per message: outcome (0 added, 1 kept the waiting one, 2
-- replaced), due ms (of the waiting one when kept).
local function op_schedule()
  local now = now_ms()
  local replace = ARGV[2] == '1'
  local before = earliest()
  -- Due times go to ZADD as text: a Lua number would be formatted by
  -- redis.call with %.17g, which with ZMSCORE's own reply formatting cost a
  -- tenth of the server's time in a batch. '%d' formats 64-bit integers
  -- where Lua's integer type has 64 bits (checked here: Redis's Lua may be
  -- a 32-bit build); elsewhere '%.0f' does.
  local ifmt = '%.0f'
  if string.format('%d', 2 ^ 40) == '1099511627776' then
    ifmt = '%d'
  end
  -- One ZMSCORE tells which ids are waiting; then bulk ZADD and HSET. Ids
  -- repeated within the call count as waiting from their first occurrence.
  local ids, nids = {}, 0
  for j = 3, #ARGV - 3, 4 do
    nids = nids + 1
    ids[nids] = ARGV[j]
  end
  local scores = redis.call('ZMSCORE', Z, unpack(ids))
  local seen = {}
  local first = nil
  local header = struct.pack('>BI6', 1, now) -- every fresh record of this call
  local out, zs, hs, nz = {}, {}, {}, 0
  local function flush()
    if nz > 0 then
      redis.call('ZADD', Z, unpack(zs, 1, nz))
      redis.call('HSET', M, unpack(hs, 1, nz))
      nz = 0
    end
  end
  for k = 1, nids do
    local id = ids[k]
    local j = 3 + 4 * (k - 1)
    local at, when, payload = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
    local due, dues
    if at == '1' then
      due, dues = tonumber(when), when -- the client sends canonical integers
    else
      due = now + tonumber(when)
    end
    local outcome = 0
    local existing = seen[id] or scores[k]
    if existing then
      outcome = 1
      if replace then
        outcome = 2
      else
        due, dues = tonumber(existing), nil
      end
    end
    if outcome ~= 1 then
      zs[nz + 1] = dues or string.format(ifmt, due)
      zs[nz + 2] = id
      hs[nz + 1] = id
      hs[nz + 2] = header .. payload
      nz = nz + 2
      if first == nil or due < first then
        first = due
      end
      seen[id] = due
      if nz >= 1000 then
        flush()
      end
    end
    out[2 * k - 1] = outcome
    out[2 * k] = due
  end
  flush()
  if first ~= nil then
    wake_if_earlier(first, before)
  end
  return out
end

------------------------------------------------------------------ fetch
-- Crash recovery: a delivery idle for the visibility timeout is taken back
-- from the PEL, and the message goes back on the schedule (due now) as a new
-- delivery, so the old token is stale from then on.
local function reclaim_one(eid, now, g, vt, max_attempts, dead_max)
  local lease = tonumber(redis.call('HGET', L, eid))
  if lease and lease > now then
    -- An extended lease: XAUTOCLAIM reset its idle time, which is fine.
    return
  end
  local e = redis.call('XRANGE', S, eid, eid)
  redis.call('XACK', S, g, eid)
  if lease then
    redis.call('HDEL', L, eid)
  end
  if #e == 0 then
    return
  end
  redis.call('XDEL', S, eid)
  local f = delivery(e[1][2])
  if f.id == nil then
    return
  end
  local fails, crashes = f.fail, f.crash + 1
  local err = 'lease expired: no ack within ' .. fmt(vt) .. ' ms (consumer died or too slow)'
  redis.call('HINCRBY', I, 'crashes', 1)
  local enq = f.enq or now
  if fails + crashes >= max_attempts then
    bury(f.id, f.payload, enq, f.due or now, fails, crashes, err, now, dead_max)
  else
    requeue(f.id, now, enq, fails, crashes, err, f.payload, true)
  end
end

local function reclaim(now, g, me, vt, max_attempts, dead_max, every, cleanup_idle)
  local st = redis.call('HMGET', I, 'reclaim_at', 'cursor', 'cleanup_at')
  if now < (tonumber(st[1]) or 0) then
    return
  end
  local cursor = st[2] or '0-0'
  local r = redis.pcall('XAUTOCLAIM', S, g, me, fmt(vt), cursor, 'COUNT', '100', 'JUSTID')
  if is_err(r) then
    if string.find(r.err, 'NOGROUP', 1, true) then
      return
    end
    error(r)
  end
  -- Redis 7.0 replies cursor, ids, deleted ids; 6.2 cursor, ids. Deleted
  -- entries are dropped from the PEL by 7.0 itself; 6.2 claims them and
  -- reclaim_one acks them.
  for _, eid in ipairs(r[2]) do
    reclaim_one(eid, now, g, vt, max_attempts, dead_max)
  end
  local nextc = r[1]
  local at = now + every
  if nextc ~= '0-0' then
    at = now
  end
  redis.call('HSET', I, 'reclaim_at', fmt(at), 'cursor', nextc)
  -- Consumers that left are removed, but only when they hold nothing.
  if now >= (tonumber(st[3]) or 0) then
    redis.call('HSET', I, 'cleanup_at', fmt(now + 60000))
    local cs = redis.pcall('XINFO', 'CONSUMERS', S, g)
    if not is_err(cs) then
      for _, c in ipairs(cs) do
        local cf = fields(c)
        if cf.name ~= me and tonumber(cf.pending) == 0 and tonumber(cf.idle) > cleanup_idle then
          redis.call('XGROUP', 'DELCONSUMER', S, g, cf.name)
        end
      end
    end
  end
end

-- ARGV: 'fetch', group, consumer, count, visibility ms, max attempts, dead
-- max, reclaim every ms, consumer cleanup idle ms.
-- Reclaims, then promotes up to count due messages into the ready stream.
-- The client pipelines XREADGROUP ... COUNT count STREAMS s > right after
-- this call, in the same round trip: reading there rather than in here
-- saves turning every delivery into Lua tables and back.
-- Then any number of delivery tokens to ack first, as 'ack' does (the
-- previous fetch's, in the same round trip: rx_queue_ack_fetch).
-- Returns: now, next due ms (-1 if none waiting), last wake id, promoted,
-- and with tokens, how many of them were acked.
local function op_fetch()
  local g, me, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local vt, max_attempts, dead_max = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local acked = nil
  if #ARGV > 9 then
    local toks = {}
    for j = 10, #ARGV do
      toks[#toks + 1] = ARGV[j]
    end
    acked = 0
    for _, ok in ipairs(ack_tokens(g, toks)) do
      acked = acked + ok
    end
  end
  local now = now_ms()
  reclaim(now, g, me, vt, max_attempts, dead_max, tonumber(ARGV[8]), tonumber(ARGV[9]))

  -- Promote the due messages, oldest due first, at most n per call.
  local due = redis.call('ZRANGE', Z, '-inf', now, 'BYSCORE', 'LIMIT', 0, n, 'WITHSCORES')
  local promoted = 0
  if #due > 0 then
    local ids = {}
    for j = 1, #due, 2 do
      ids[#ids + 1] = due[j]
    end
    local recs = redis.call('HMGET', M, unpack(ids))
    -- At maxmemory (noeviction) Redis refuses a script's first write when
    -- it may grow memory (XADD), but no write after it. Promotion only
    -- moves messages (the ZREM and HDEL below free what the XADDs take),
    -- and consuming is the only way out of a full server, so the first
    -- write here is one that cannot grow memory: an XACK of no entry. It
    -- also stops on a ready stream of the wrong type before anything moved.
    redis.call('XACK', S, g, '0-1')
    local last_enq, last_enq_s = nil, nil
    for j, id in ipairs(ids) do
      local v = recs[j]
      local d = due[2 * j]
      if v then
        local enq, fails, crashes, err, payload = decode(v)
        if enq then
          -- Four fields: each field costs the XADD and the read that follows,
          -- and so does every number turned into text (hence the caches).
          if enq ~= last_enq then
            last_enq, last_enq_s = enq, fmt(enq)
          end
          local counts = ' 1 0 0'
          if fails ~= 0 or crashes ~= 0 then
            counts = ' ' .. (fails + crashes + 1) .. ' ' .. fails .. ' ' .. crashes
          end
          -- No 'err' field while there is no error (most deliveries): one
          -- field less to add, read and parse; readers take it as empty.
          if err == '' then
            redis.call('XADD', S, '*', 'id', id, 'payload', payload, 'meta',
              d .. ' ' .. last_enq_s .. counts)
          else
            redis.call('XADD', S, '*', 'id', id, 'payload', payload, 'meta',
              d .. ' ' .. last_enq_s .. counts, 'err', err)
          end
          promoted = promoted + 1
        else
          -- Never drop what cannot be read: keep it for a human.
          bury(id, v, now, tonumber(d), 0, 0, 'undecodable record', now, dead_max)
        end
      end
    end
    redis.call('ZREM', Z, unpack(ids))
    redis.call('HDEL', M, unpack(ids))
  end

  local nd = earliest() or -1
  local w = redis.call('XREVRANGE', W, '+', '-', 'COUNT', 1)
  local wid = '0-0'
  if w[1] then
    wid = w[1][1]
  end
  return {now, nd, wid, promoted, acked}
end

-- The other hot call: dispatched here, before the remaining operations are
-- built as closures (which every call of this script would pay for).
if ARGV[1] == 'fetch' then
  return op_fetch()
end

------------------------------------------------------------------ retry / fail
-- ARGV: 'retry', group, token, delay ms (-1: backoff), error text, max
-- attempts, dead max, mode ('retry' or 'fail'), backoff base ms, backoff
-- max ms, jitter factor (0.5..1, from the client: scripts have no good
-- randomness). The backoff is base * 2^(attempt - 1), capped, times jitter. Returns {-1} when stale, {1, due} when back on
-- the schedule, {2} when dead, {3} when superseded by a waiting message of
-- the same id, {0} when the entry was gone.
local function op_retry()
  local g, eid, delay, err = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local max_attempts, dead_max, mode = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
  if redis.call('XACK', S, g, eid) == 0 then
    return {-1}
  end
  local now = now_ms()
  local e = redis.call('XRANGE', S, eid, eid)
  redis.call('XDEL', S, eid)
  redis.call('HDEL', L, eid)
  if #e == 0 then
    return {0}
  end
  local f = delivery(e[1][2])
  if f.id == nil then
    return {0}
  end
  local fails, crashes = f.fail + 1, f.crash
  local enq = f.enq or now
  redis.call('HINCRBY', I, 'failures', 1)
  if mode == 'fail' or fails + crashes >= max_attempts then
    bury(f.id, f.payload, enq, f.due or now, fails, crashes, err, now, dead_max)
    return {2}
  end
  if delay < 0 then
    local base, cap, jitter = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
    delay = base * 2 ^ (fails + crashes - 1)
    if delay > cap then
      delay = cap
    end
    delay = math.floor(delay * jitter)
  end
  local due = now + delay
  if requeue(f.id, due, enq, fails, crashes, err, f.payload) then
    return {1, due}
  end
  return {3}
end

------------------------------------------------------------------ extend
-- ARGV: 'extend', group, consumer, token, lease ms, visibility ms.
-- Returns 1, or 0 when the delivery is no longer pending (stale).
local function op_extend()
  local g, me, eid, ms, vt = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local p = redis.pcall('XPENDING', S, g, eid, eid, 1)
  if is_err(p) then
    -- No stream or no group yet: nothing is pending, so the token is stale.
    if string.find(p.err, 'NOGROUP', 1, true) then
      return 0
    end
    error(p)
  end
  if #p == 0 then
    return 0
  end
  if ms <= vt then
    -- The PEL idle time is the lease: set it so vt is reached in ms.
    redis.call('XCLAIM', S, g, me, 0, eid, 'IDLE', fmt(vt - ms), 'JUSTID')
    redis.call('HDEL', L, eid)
  else
    redis.call('XCLAIM', S, g, me, 0, eid, 'IDLE', 0, 'JUSTID')
    redis.call('HSET', L, eid, fmt(now_ms() + ms))
  end
  return 1
end

------------------------------------------------------------------ manage
-- ARGV: 'cancel', id. Returns 1 if it was waiting (now removed), else 0.
local function op_cancel()
  local id = ARGV[2]
  if redis.call('ZREM', Z, id) == 1 then
    redis.call('HDEL', M, id)
    return 1
  end
  return 0
end

-- ARGV: 'reschedule', id, at (0 delay / 1 epoch ms), when. Returns {1, due}
-- if it was waiting (now moved), else {0}. run_now is a delay of 0.
local function op_reschedule()
  local id, at, when = ARGV[2], ARGV[3], tonumber(ARGV[4])
  if not redis.call('ZSCORE', Z, id) then
    return {0}
  end
  local now = now_ms()
  local due = when
  if at ~= '1' then
    due = now + when
  end
  local before = earliest()
  redis.call('ZADD', Z, 'XX', fmt(due), id)
  wake_if_earlier(due, before)
  return {1, due}
end

------------------------------------------------------------------ dead letters
-- ARGV: 'requeue', start ('-' or an exclusive '(' id), token ('' = every
-- dead letter from start on), limit, delay ms. Requeued messages start
-- afresh (no failures), keep their first-enqueue time and are due after
-- delay. A dead letter whose id is waiting again stays dead (skipped).
-- Returns {requeued, skipped, last id looked at or ''}.
local function op_requeue()
  local start, token, limit, delay = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local es
  if token ~= '' then
    es = redis.call('XRANGE', D, token, token)
  else
    es = redis.call('XRANGE', D, start, '+', 'COUNT', limit)
  end
  local now = now_ms()
  local done, skipped, last = 0, 0, ''
  for _, e in ipairs(es) do
    last = e[1]
    local f = fields(e[2])
    if f.id and requeue(f.id, now + delay, tonumber(f.enq) or now, 0, 0, '', f.payload or '') then
      redis.call('XDEL', D, e[1])
      done = done + 1
    else
      skipped = skipped + 1
    end
  end
  return {done, skipped, last}
end

-- ARGV: 'purge', token ('' = all). Returns how many dead letters went.
local function op_purge()
  local token = ARGV[2]
  if token == '' then
    local n = redis.call('XLEN', D)
    redis.call('DEL', D)
    return n
  end
  return redis.call('XDEL', D, token)
end

-- ARGV: 'leave', group, consumer. Removes the consumer from the group when
-- it holds no deliveries (what it holds must stay claimable). Returns 1 if
-- removed.
local function op_leave()
  local g, me = ARGV[2], ARGV[3]
  local p = redis.pcall('XPENDING', S, g, '-', '+', 1, me)
  if is_err(p) or #p > 0 then
    return 0
  end
  redis.call('XGROUP', 'DELCONSUMER', S, g, me)
  return 1
end

-- ARGV: 'group', group. Creates the consumer group (and the ready stream),
-- starting at the first entry; an existing group is fine. Here rather than
-- a plain XGROUP CREATE, which Redis refuses at maxmemory: consumers must
-- be able to start on a full server, or nothing could ever drain it. The
-- XACK of no entry comes first for that (see op_fetch).
local function op_group()
  local g = ARGV[2]
  redis.call('XACK', S, g, '0-1')
  local r = redis.pcall('XGROUP', 'CREATE', S, g, '0', 'MKSTREAM')
  if is_err(r) and not string.find(r.err, 'BUSYGROUP', 1, true) then
    error(r)
  end
  return 1
end

------------------------------------------------------------------ stats
-- ARGV: 'stats', group. Returns now, scheduled, ready, in flight, dead, lag
-- ms, consumers, next due (-1), acked, failures, crashes, dead total.
local function op_stats()
  local g = ARGV[2]
  local now = now_ms()
  local total = redis.call('ZCARD', Z)
  local overdue = redis.call('ZCOUNT', Z, '-inf', fmt(now))
  local nd = earliest()
  local lag = 0
  if nd and nd <= now then
    lag = now - nd
  end
  local slen = redis.call('XLEN', S)
  local pending, consumers = 0, 0
  local p = redis.pcall('XPENDING', S, g)
  if not is_err(p) then
    pending = tonumber(p[1]) or 0
  end
  local gs = redis.pcall('XINFO', 'GROUPS', S)
  if not is_err(gs) then
    for _, gr in ipairs(gs) do
      local gf = fields(gr)
      if gf.name == g then
        consumers = tonumber(gf.consumers) or 0
      end
    end
  end
  local dead = redis.call('XLEN', D)
  local c = redis.call('HMGET', I, 'acked', 'failures', 'crashes', 'dead')
  return {now, total - overdue, overdue + math.max(slen - pending, 0), pending, dead, lag,
    consumers, nd or -1, tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0,
    tonumber(c[4]) or 0}
end

local ops = {
  schedule = op_schedule, retry = op_retry,
  extend = op_extend, cancel = op_cancel, reschedule = op_reschedule,
  requeue = op_requeue, purge = op_purge, stats = op_stats, leave = op_leave,
  group = op_group,
}

local op = ops[ARGV[1]]
if not op then
  return redis.error_reply('ERR reactis queue script: unknown operation ' .. tostring(ARGV[1]))
end
return op()
