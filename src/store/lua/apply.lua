-- apply: a transition batch. ARGV: tombstone_ms, now, n, then per mutation
-- its kind (MUT_*) and its fields:
--   MUT_ENQUEUE      flags, then REC_FIELDS (er__rd_args_rec)
--   MUT_COMPLETE     DONE_FIELDS (er__rd_args_done)
--   MUT_TASK_GUARD   id, state (-1: any), attempt (0: any)
--   MUT_DOC_PUT      coll, key, if_version, value JSON
--   MUT_DOC_MERGE    coll, key, if_version, value JSON (an object)
--   MUT_DOC_DEL      coll, key, if_version
--   MUT_COUNTER_ADD  coll, key, delta, if_value ('-': any)
-- Every mutation is checked first, against the view of what the earlier ones
-- will have done (V, VD, VC); only when all pass is anything written, by the
-- same functions the single scripts use. Returns {'ok', result per
-- mutation} (ENQUEUE: the existing task's id or ''; DOC_PUT, DOC_MERGE: the
-- version; COUNTER_ADD: the value; else '') or {'fail', index from 0,
-- error name, message}.
local tomb, now, n = N(1), N(2), N(3)
local muts, o = {}, 3
local function arg() o = o + 1 return A(o) end
for i = 1, n do
  local m = {kind = tonumber(arg())}
  local k = m.kind
  if k == MUT_ENQUEUE then
    m.flags = tonumber(arg())
    m.at = o
    o = o + REC_FIELDS
  elseif k == MUT_COMPLETE then
    m.at = o
    o = o + DONE_FIELDS
  elseif k == MUT_TASK_GUARD then
    m.id, m.state, m.attempt = arg(), arg(), tonumber(arg())
  else
    m.coll, m.key = arg(), arg()
    if k == MUT_COUNTER_ADD then
      m.delta, m.ifv = arg(), opt(arg())
    else
      m.ifv = tonumber(arg())
      if k ~= MUT_DOC_DEL then m.value = arg() end
    end
  end
  muts[i] = m
end

local function guard(m)
  local t = task_view(m.id)
  if t and t.expires and t.expires <= now then t = nil end
  if not t then return 'ENOENT', 'no task with id ' .. m.id end
  if m.state ~= '-1' and t.state ~= m.state then
    return 'ESTATE', 'task ' .. m.id .. ' is in state ' .. t.state .. ', not ' .. m.state
  end
  if m.attempt > 0 and t.attempt ~= m.attempt then
    return 'ESTATE', 'task ' .. m.id .. ' is at attempt ' .. I(t.attempt) .. ', not ' ..
      I(m.attempt)
  end
  return nil
end

local inserts = 0
for i, m in ipairs(muts) do
  local k, e, msg = m.kind, nil, nil
  if k == MUT_ENQUEUE then
    m.found, e, msg = enq_check(m.at, m.flags, tomb)
    if m.found == false then inserts = inserts + 1 end
  elseif k == MUT_COMPLETE then
    m.task = done_check(m.at)
    if not m.task then
      e, msg = 'EFENCED', 'task ' .. A(m.at + 1) .. ' attempt ' .. A(m.at + 2) ..
        ' no longer owns its lease'
    end
  elseif k == MUT_TASK_GUARD then
    e, msg = guard(m)
  elseif k == MUT_COUNTER_ADD then
    e, msg = ctr_check(m.coll, m.key, m.delta, m.ifv)
  else
    e, msg = doc_check(k, m.coll, m.key, m.ifv, m.value)
  end
  if e then return {'fail', i - 1, e, msg} end
end

local seq = seq_take(inserts)
local out = {'ok'}
for i, m in ipairs(muts) do
  local k, r = m.kind, ''
  if k == MUT_ENQUEUE then
    if m.found then
      r = m.found
    else
      seq = seq + 1
      enq_write(m.at, seq)
    end
  elseif k == MUT_COMPLETE then
    done_write(m.at, m.task)
  elseif k == MUT_COUNTER_ADD then
    r = ctr_write(m.coll, m.key, m.delta)
  elseif k ~= MUT_TASK_GUARD then
    r = I(doc_write(k, m.coll, m.key, m.value))
  end
  out[i + 1] = r
end
return out
