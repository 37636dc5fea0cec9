-- Complete's check and write (after task.lua and finish.lua).
--
-- An outcome is the DONE_FIELDS arguments after an offset o
-- (er__rd_args_done writes them): o+1 id, +2 attempt, +3 state, +4 result
-- (optional JSON), +5 error (optional JSON), +6 retry_eta_ms, +7 now_ms.

-- The task of the outcome at o when its attempt still owns it (else it is
-- fenced: nil). The checks see the outcome's effect from here on.
local function done_check(o)
  local id, att, st, now = A(o + 1), N(o + 2), A(o + 3), N(o + 7)
  local t = task_view(id)
  if not t or t.state ~= STARTED or t.attempt ~= att then return nil end
  local after = {state = st, attempt = att, ignore = t.ignore}
  if st == SUCCESS or st == FAILURE or st == REVOKED then
    if st == SUCCESS then after.expires = result_expiry(t.ttl, now) end
    if t.name then
      V.names = V.names or {}
      V.names[t.name] = {id = id, finished = now}
    end
  end
  V.tasks = V.tasks or {}
  V.tasks[id] = after
  return t
end

-- Writes the checked outcome at o for task t (as done_check returned it):
-- SUCCESS, FAILURE and REVOKED finish the task; RETRY queues it again at its
-- retry eta, one more retry counted; PENDING gives it back to its queue, not
-- due before a retry_eta_ms later than its eta (a worker that lacks it). (No
-- earlier mutation of the script changed the task: a second outcome for it
-- is fenced.)
local function done_write(o, t)
  local id, st, err, now = A(o + 1), A(o + 3), opt(A(o + 5)), N(o + 7)
  local h, q = TK(id), t.queue
  local sets, dels = {}, {}
  redis.call('ZREM', LEASES, id)
  if st == PENDING or st == RETRY then
    local eta = tonumber(t.eta)
    sets = {'state', st}
    dels = {'worker', 'lease_until_ms'}
    if st == RETRY then
      eta = N(o + 6)
      sets[3], sets[4], sets[5], sets[6] = 'eta_ms', I(eta), 'retries', I((tonumber(t.retries) or 0) + 1)
      if err then sets[#sets + 1] = 'error' sets[#sets + 1] = err
      else dels[#dels + 1] = 'error' end
    elseif N(o + 6) > eta then
      eta = N(o + 6)
      sets[3], sets[4] = 'eta_ms', I(eta)
    end
    local m = place_f(id, q, tonumber(t.priority), eta, tonumber(t.seq), now)
    if m then sets[#sets + 1] = 'qm' sets[#sets + 1] = m end
    redis.call('HSET', h, unpack(sets))
    redis.call('HDEL', h, unpack(dels))
    move(q, t.task, STARTED, st)
    wake_queue(q)
  else
    local res = opt(A(o + 4))
    if res and not t.ignore then sets[#sets + 1] = 'result' sets[#sets + 1] = res
    else dels[#dels + 1] = 'result' end
    if err then sets[#sets + 1] = 'error' sets[#sets + 1] = err
    else dels[#dels + 1] = 'error' end
    finish(id, h, q, t.task, STARTED, st, now, t.ttl, t.name, sets, dels)
  end
end
