-- wrk's script for bench/http/run: what each connection asks, and a count of
-- the answers by status, so that the run is judged on its answers and not on
-- wrk's transfer counts alone. HB_MODE says what to ask:
--   post    POST /api/v1/tasks {"task":"add","args":[1,2]}, expecting 202
--   ids     the same, writing each answer's id to HB_IDS.<thread> (one a line)
--   get     GET /api/v1/tasks/ID over the ids in the file HB_IDS, round robin,
--           each thread from its own place in the list, expecting 200
--   static  GET of the URL given to wrk (nginx's file), expecting 200
-- done() prints one line for bench/http/run:
--   HB <req/s> <p50 ms> <p99 ms> <expected answers> <other answers>
--      <socket errors: connect read write timeout>
local mode = os.getenv("HB_MODE") or "static"
local expect = (mode == "post" or mode == "ids") and 202 or 200
local threads, nthreads = {}, 0

if mode == "post" or mode == "ids" then
  wrk.method = "POST"
  wrk.path = "/api/v1/tasks"
  wrk.body = '{"task":"add","args":[1,2]}'
  wrk.headers["Content-Type"] = "application/json"
end

function setup(thread)
  nthreads = nthreads + 1
  thread:set("n", nthreads)
  table.insert(threads, thread)
end

local ids, at, out = {}, 0, nil

function init(args)
  good, bad = 0, 0
  if mode == "ids" then
    out = assert(io.open(os.getenv("HB_IDS") .. "." .. n, "w"))
  elseif mode == "get" then
    for line in io.lines(os.getenv("HB_IDS")) do ids[#ids + 1] = line end
    assert(#ids > 0, "no ids in " .. os.getenv("HB_IDS"))
    at = math.floor(#ids * (n - 1) / 8)
  end
end

if mode == "get" then
  function request()
    at = at % #ids + 1
    return wrk.format("GET", "/api/v1/tasks/" .. ids[at])
  end
end

function response(status, headers, body)
  if status == expect then
    good = good + 1
    if out then
      local id = body:match('"id":"([^"]+)"')
      if id then out:write(id, "\n"); out:flush() end
    end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format("HB %.1f %.3f %.3f %d %d %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, g, b, e.connect, e.read, e.write, e.timeout))
end
