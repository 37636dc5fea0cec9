-- complete. ARGV: n, then DONE_FIELDS per outcome. Returns per outcome 1
-- when fenced (its attempt no longer owns the task, which is left alone).
local n = N(1)
local out = {}
for i = 1, n do
  local o = 1 + (i - 1) * DONE_FIELDS
  local t = done_check(o)
  if t then
    done_write(o, t)
    out[i] = 0
  else
    out[i] = 1
  end
end
return out
