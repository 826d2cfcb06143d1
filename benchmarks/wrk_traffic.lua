-- wrk script: POST transactions read from a fixed-width traffic file (benchmarks/traffic.py),
-- one per request or BATCH per request, and print a JSON summary with the decisions seen.
-- Environment: FILE, WIDTH (bytes per line), START (first line), COUNT (lines this run may
-- use), BATCH (1 = the single route). Thread t of T sends requests t, t + T, t + 2T, ... of
-- the run, so lines go out near event-time order; a thread with no lines left stops.
local file = os.getenv("FILE")
local width = tonumber(os.getenv("WIDTH"))
local start = tonumber(os.getenv("START") or "0")
local count = tonumber(os.getenv("COUNT"))
local batch = tonumber(os.getenv("BATCH") or "1")
local threads = {}
-- Globals, since thread:set and thread:get reach a thread's globals only.
tid = 0
nthreads = 1
sent = 0
flagged = 0
decided = 0
degraded = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
  for _, t in ipairs(threads) do
    t:set("nthreads", #threads)
  end
end

local handle
local json_headers = {["Content-Type"] = "application/json"}

function init(args)
  handle = assert(io.open(file, "rb"))
end

request = function()
  -- wrk may hand values set with thread:set over as strings: read them as numbers. Once in
  -- many runs one arrived unset (a Lua panic stopped a compare run): then this thread
  -- counts as thread 0 of 1, which can repeat lines (idempotent retries for the server).
  local k = (tonumber(tid) or 0) + (tonumber(nthreads) or 1) * (tonumber(sent) or 0)
  if (k + 1) * batch > count then
    -- No lines left for this thread: stop it. wrk still sends the request returned here,
    -- so it repeats the run's first lines (an idempotent retry for the server).
    wrk.thread:stop()
    k = 0
  else
    sent = (tonumber(sent) or 0) + 1
  end
  local first = start + k * batch
  handle:seek("set", first * width)
  local raw = handle:read(width * batch)
  -- The last line's comma and padding go; the others' stay as JSON separators.
  local body = raw:gsub(",%s*$", "")
  if batch == 1 then
    return wrk.format("POST", "/v1/transactions", json_headers, body)
  end
  return wrk.format("POST", "/v1/transactions/batch", json_headers,
    '{"transactions":[' .. body .. ']}')
end

response = function(status, headers, body)
  if status == 200 then
    local _, review = body:gsub('"decision":"REVIEW"', "")
    local _, block = body:gsub('"decision":"BLOCK"', "")
    local _, late = body:gsub('"degraded":true', "")
    flagged = flagged + review + block
    decided = decided + batch
    degraded = degraded + late
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local total_flagged, total_decided, total_degraded, used = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    total_flagged = total_flagged + t:get("flagged")
    total_decided = total_decided + t:get("decided")
    total_degraded = total_degraded + t:get("degraded")
    local n = t:get("sent")
    local last = tonumber(t:get("tid")) + tonumber(t:get("nthreads")) * (n - 1)
    if n > 0 and (last + 1) * batch > used then
      used = (last + 1) * batch
    end
  end
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"non_2xx":%d,' ..
    '"socket_errors":%d,"flagged":%d,"decided":%d,"degraded":%d,"lines_used":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout, total_flagged, total_decided, total_degraded,
    used))
end
