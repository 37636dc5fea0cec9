-- enqueue. ARGV: flags, tombstone_ms, n, then REC_FIELDS per record. All or
-- none: every rule is checked for the whole batch before anything is
-- written. Returns, per record, the id of the live task the key rule found,
-- or "".
local flags, tomb, n = N(1), N(2), N(3)
local recs, inserts = {}, 0
for i = 1, n do
  local r = rec_read(3 + (i - 1) * REC_FIELDS)
  local e, msg = enq_check(r, flags, tomb)
  if e then return redis.error_reply(e .. ' ' .. msg) end
  if not r.found then inserts = inserts + 1 end
  recs[i] = r
end
local seq = seq_take(inserts)
local out = {}
for i, r in ipairs(recs) do
  if r.found then
    out[i] = r.found
  else
    out[i] = ''
    seq = seq + 1
    enq_write(r, seq)
  end
end
return out
