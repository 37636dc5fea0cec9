-- enqueue. ARGV: flags, tombstone_ms, n, then REC_FIELDS per record. All or
-- none: every rule is checked for the whole batch before anything is
-- written. Returns, per record, the id of the live task the key rule found,
-- or "".
local flags, tomb, n = N(1), N(2), N(3)
local found, inserts = {}, 0
for i = 1, n do
  local hit, e, msg = enq_check(3 + (i - 1) * REC_FIELDS, flags, tomb)
  if hit == nil then return redis.error_reply(e .. ' ' .. msg) end
  if not hit then inserts = inserts + 1 end
  found[i] = hit
end
local seq = seq_take(inserts)
for i = 1, n do
  if not found[i] then
    found[i] = ''
    seq = seq + 1
    enq_write(3 + (i - 1) * REC_FIELDS, seq)
  end
end
return found
