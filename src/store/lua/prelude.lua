-- The Lua every script shares. Before it comes the constants redis_lua.c
-- generates from the C definitions (task states PENDING .. REVOKED as their
-- stored text, RESULT_TTL_DEFAULT_MS, REC_FIELDS, DONE_FIELDS, MUT_* kinds,
-- WAKE_IDS_MAX), so no number is typed twice.
--
-- KEYS[1] is "errand:{P}:", the start of every key of the store (so a cluster
-- routes the script to the slot of {P}); ARGV[1] is the caller's origin token
-- and ARGV[2] the wake-up channel's base name; a script's own arguments are
-- read with A(i) / N(i) from 1. docs/store-redis.md has the whole layout.
local B = KEYS[1]
local ORIGIN, CH = ARGV[1], ARGV[2]
local function A(i) return ARGV[i + 2] end
local function N(i) return tonumber(ARGV[i + 2]) end
-- numbers are stored as integer text
local function I(x) return string.format('%.0f', x) end
local function TK(id) return B .. 'task:' .. id end
local function RK(q) return B .. 'q:' .. q end
local function DK(q) return B .. 'delayed:' .. q end
local function NK(n) return B .. 'name:' .. n end
local function KK(k) return B .. 'key:' .. k end
local LEASES, RESULTS, TOMBS = B .. 'leases', B .. 'results', B .. 'tombstones'
local COUNTS, SEQ = B .. 'counts', B .. 'seq'
-- every task's id (score 0, so by id: UUIDv7 ids sort by creation time),
-- for listing; by-name counts as counts by queue (layout version 2)
local IDS, NCOUNTS = B .. 'ids', B .. 'ncounts'
local WORKERS, WEXP = B .. 'workers', B .. 'workers:expiry'

-- optional strings: '-' for NULL, '+text'
local function opt(s)
  if s == nil or string.sub(s, 1, 1) ~= '+' then return nil end
  return string.sub(s, 2)
end

-- counts: field '<state>:<queue>' of the hash counts and '<state>:<task
-- name>' of ncounts, changed once per field at the end of the script
-- (flush_counts, from the epilogue). tn, the task's name, may be nil (a
-- foreign record without one): it is then counted by queue only, on the way
-- in and out alike.
local DELTA, NDELTA = {}, {}
local function count(q, tn, st, d)
  local f = st .. ':' .. q
  DELTA[f] = (DELTA[f] or 0) + d
  if tn then
    f = st .. ':' .. tn
    NDELTA[f] = (NDELTA[f] or 0) + d
  end
end
local function move(q, tn, from, to)
  if from ~= to then count(q, tn, from, -1) count(q, tn, to, 1) end
end
local function flush_counts()
  local h, t = COUNTS, DELTA
  for _ = 1, 2 do
    for f, d in pairs(t) do
      if d ~= 0 and redis.call('HINCRBY', h, f, d) <= 0 then
        redis.call('HDEL', h, f)
      end
    end
    h, t = NCOUNTS, NDELTA
  end
end

-- wake-ups, published once at the end of the script (flush_wakes): work on a
-- queue on CH:q:<queue> (the origin), finished tasks on CH:fin and revokes of
-- running tasks on CH:ctl (the origin, then the ids, each after a newline;
-- "*" for the ids when there are too many to list, or one holds a newline).
-- WQ is a set of queues, WFIN and WCTL lists of ids, each made when first
-- needed: most scripts publish little, and every table a script makes costs
-- time at each call.
local WQ, WFIN, WCTL
local function wake_queue(q)
  WQ = WQ or {}
  WQ[q] = true
end
-- adds id to list l (a new one when nil); returns the list
local function wake_id(l, id)
  l = l or {ORIGIN}
  if string.find(id, '\n', 1, true) then l.odd = true end
  l[#l + 1] = id
  return l
end
-- (one function for both lists: each function a script defines costs time
-- at every call)
local function flush_wakes()
  if WQ then
    for q, _ in pairs(WQ) do redis.call('PUBLISH', CH .. ':q:' .. q, ORIGIN) end
  end
  local l, suffix = WFIN, ':fin'
  for _ = 1, 2 do
    if l then
      local msg
      if l.odd or #l > WAKE_IDS_MAX + 1 then msg = ORIGIN .. '\n*'
      else msg = table.concat(l, '\n') end
      redis.call('PUBLISH', CH .. suffix, msg)
    end
    l, suffix = WCTL, ':ctl'
  end
end

-- a queued task's member in its queue's ready set: eta and enqueue sequence
-- as fixed-width digits, then the id, so ties in priority go by eta, then
-- enqueue order, exactly
local function member(eta, seq, id)
  if eta < 0 then eta = 0 elseif eta > 9999999999999999 then eta = 9999999999999999 end
  return string.format('%016.0f%016.0f', eta, seq) .. id
end
-- a queued task into the ready set when due at now, else the delayed set;
-- returns its ready member (for the task's field qm) or nil. The caller wakes
-- the queue's watchers when that is news to them (wake_queue).
local function place_f(id, q, prio, eta, seq, now)
  if eta <= now then
    local m = member(eta, seq, id)
    redis.call('ZADD', RK(q), 0 - prio, m)
    return m
  end
  redis.call('ZADD', DK(q), eta, id)
  return nil
end
