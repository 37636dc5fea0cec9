-- Tasks as the checks of enqueue and complete see them (lib_enqueue.lua,
-- lib_complete.lua). Each of those is a check against V, the view of what
-- the script's earlier mutations will have done (so a batch checks
-- everything before it writes anything: Redis does not undo a script's
-- writes), and a write; the single scripts and apply share them.
-- V.tasks, V.names and V.keys are made when first needed: every table a
-- script makes costs time at each call.
local V = {}

-- a task as the checks see it (what the writes need too, read once), or nil
local function task_view(id)
  local t = V.tasks and V.tasks[id]
  if t ~= nil then return t end
  local f = redis.call('HMGET', TK(id), 'state', 'attempt', 'ignore_result',
    'result_expires_ms', 'queue', 'name', 'result_ttl_ms', 'priority', 'eta_ms', 'seq',
    'retries', 'task')
  if not f[1] then return nil end
  return {state = f[1], attempt = tonumber(f[2]), ignore = f[3] == '1',
    expires = tonumber(f[4]), queue = f[5], name = f[6], ttl = f[7], priority = f[8],
    eta = f[9], seq = f[10], retries = f[11], task = f[12]}
end
