-- complete. ARGV: n, then DONE_FIELDS per outcome. Returns per outcome 1
-- when fenced (its attempt no longer owns the task, which is left alone).
local n = N(1)
local out = {}
for i = 1, n do
  local c = done_read(1 + (i - 1) * DONE_FIELDS)
  if done_check(c) then
    done_write(c)
    out[i] = 0
  else
    out[i] = 1
  end
end
return out
