-- Documents and counters. A document is the hash doc:<coll>:<key> (value:
-- JSON text, version: 1 when created, one more at every change), its coll
-- with '%' and ':' percent-encoded so that no two (coll, key) share a key;
-- the sorted set dx:<coll> lists a collection's keys (score 0, so
-- ZRANGEBYLEX walks them in bytewise order). A counter is the field <key>
-- of the hash ctr:<coll>; a counter at 0 is removed.
local function DOCK(coll, key)
  return B .. 'doc:' .. string.gsub(coll, '[%%:]', {['%'] = '%25', [':'] = '%3A'}) .. ':' .. key
end
local function DXK(coll) return B .. 'dx:' .. coll end
local function CTRK(coll) return B .. 'ctr:' .. coll end

-- ---- a JSON object's top-level members, as raw text -------------------------
-- Merging replaces top-level members and keeps every value's text as it
-- was written (cjson would turn [] into {} and round numbers).
local function skip_ws(s, i) return string.find(s, '[^ \t\r\n]', i) or (#s + 1) end
local function str_end(s, i) -- s at i is '"': the index of the closing quote
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then return #s end
    if string.sub(s, k, k) == '"' then return k end
    j = k + 2
  end
end
local function value_end(s, i) -- the index of the last byte of the value at i
  local c = string.sub(s, i, i)
  if c == '"' then return str_end(s, i) end
  if c == '{' or c == '[' then
    local depth, j = 0, i
    while true do
      local k = string.find(s, '[%[%]{}"]', j)
      if not k then return #s end
      local ch = string.sub(s, k, k)
      if ch == '"' then
        j = str_end(s, k) + 1
      else
        if ch == '{' or ch == '[' then depth = depth + 1 else depth = depth - 1 end
        if depth == 0 then return k end
        j = k + 1
      end
    end
  end
  return (string.find(s, '[,}%]%s]', i) or (#s + 1)) - 1
end
-- the object text s as its keys in order (raw, quoted) and key -> value text
local function members(s)
  local keys, vals = {}, {}
  local i = skip_ws(s, skip_ws(s, 1) + 1)
  while i <= #s and string.sub(s, i, i) == '"' do
    local ke = str_end(s, i)
    local k = string.sub(s, i, ke)
    i = skip_ws(s, skip_ws(s, ke + 1) + 1) -- past ':'
    local ve = value_end(s, i)
    if vals[k] == nil then keys[#keys + 1] = k end
    vals[k] = string.sub(s, i, ve)
    i = skip_ws(s, ve + 1)
    if string.sub(s, i, i) == ',' then i = skip_ws(s, i + 1) end
  end
  return keys, vals
end
-- as jansson's json_object_update: members of patch replace or join cur's
local function json_merge(cur, patch)
  local ks, vs = members(cur)
  local pk, pv = members(patch)
  for _, k in ipairs(pk) do
    if vs[k] == nil then ks[#ks + 1] = k end
    vs[k] = pv[k]
  end
  local parts = {}
  for i, k in ipairs(ks) do parts[i] = k .. ':' .. vs[k] end
  return '{' .. table.concat(parts, ',') .. '}'
end
local function is_object(s) return string.sub(s, skip_ws(s, 1), skip_ws(s, 1)) == '{' end

-- ---- documents -----------------------------------------------------------------
-- The checks' view of documents: key -> {v = version (0: absent), obj =
-- whether its value is an object}.
local VD, VC = {}, {}
local function doc_view(dk)
  local d = VD[dk]
  if d then return d end
  local f = redis.call('HMGET', dk, 'version', 'value')
  return {v = tonumber(f[1]) or 0, obj = f[2] ~= false and is_object(f[2])}
end

-- Checks a document mutation (kind MUT_DOC_*) against guard ifv (-1: any,
-- 0: absent, n: at version n) and records its effect in the view. Returns
-- nil, or an error name and message.
local function doc_check(kind, coll, key, ifv, value)
  local dk = DOCK(coll, key)
  local d = doc_view(dk)
  local what = "document '" .. coll .. "/" .. key .. "'"
  if ifv == 0 and d.v > 0 then return 'EEXIST', what .. ' exists' end
  if ifv > 0 and d.v == 0 then return 'ENOENT', what .. ' does not exist' end
  if ifv > 0 and d.v ~= ifv then
    return 'ESTATE', what .. ' is at version ' .. I(d.v) .. ', not ' .. I(ifv)
  end
  if kind == MUT_DOC_MERGE and d.v > 0 and not d.obj then
    return 'ESTATE', what .. ' is not an object: it cannot be merged into'
  end
  if kind == MUT_DOC_DEL then
    VD[dk] = {v = 0, obj = false}
  else
    VD[dk] = {v = d.v + 1, obj = kind == MUT_DOC_MERGE or is_object(value)}
  end
  return nil
end

-- Writes a checked document mutation; returns the version written (0 for a
-- delete).
local function doc_write(kind, coll, key, value)
  local dk = DOCK(coll, key)
  if kind == MUT_DOC_DEL then
    redis.call('DEL', dk)
    redis.call('ZREM', DXK(coll), key)
    return 0
  end
  local f = redis.call('HMGET', dk, 'version', 'value')
  local v = (tonumber(f[1]) or 0) + 1
  if kind == MUT_DOC_MERGE then value = json_merge(f[2] or '{}', value) end
  redis.call('HSET', dk, 'value', value, 'version', I(v))
  if v == 1 then redis.call('ZADD', DXK(coll), 0, key) end
  return v
end

-- ---- counters ------------------------------------------------------------------
-- Counters are exact 64-bit integers in Redis (HINCRBY) up to +-9.2e18; a
-- guard on a counter that an earlier mutation of the same batch changed
-- compares Lua numbers, exact to 2^53.
local function ctr_check(coll, key, delta, ifv)
  local ck = coll .. '\0' .. key
  local cur = VC[ck]
  if ifv then
    local ok
    if cur then ok = cur == tonumber(ifv)
    else ok = (redis.call('HGET', CTRK(coll), key) or '0') == ifv end
    if not ok then
      return 'ESTATE', "counter '" .. coll .. '/' .. key .. "' is not " .. ifv
    end
  end
  if not cur then cur = tonumber(redis.call('HGET', CTRK(coll), key) or '0') end
  -- Lua's doubles cannot tell 2^63 - 1 from 2^63: refuse a little early
  -- rather than let HINCRBY fail after the batch has begun to write
  if math.abs(cur + tonumber(delta)) >= 9.2e18 then
    return 'EINVAL', "counter '" .. coll .. '/' .. key .. "' would pass 9.2e18"
  end
  VC[ck] = cur + tonumber(delta)
  return nil
end

-- Adds delta (integer text); returns the counter after, as integer text.
local function ctr_write(coll, key, delta)
  local ck = CTRK(coll)
  local v = redis.call('HINCRBY', ck, key, delta)
  if v == 0 then redis.call('HDEL', ck, key) return '0' end
  if math.abs(v) < 9007199254740992 then return I(v) end
  return redis.call('HGET', ck, key) -- exact beyond 2^53
end
