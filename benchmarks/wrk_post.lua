-- wrk script: POST unique transactions (one, or a batch of BATCH) per request and print a
-- JSON summary. Environment: PREFIX (id prefix, unique per run), BATCH (1 = single route).
local prefix = os.getenv("PREFIX") or "wrk"
local batch = tonumber(os.getenv("BATCH") or "1")
local threads = {}
local counter = 0
-- `tid` is a global that setup() gives each thread (thread:set writes globals; a local of
-- the same name here would shadow it and every thread would send the same ids).
tid = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function tx(i)
  local card = (i * 7919) % 20000
  local term = (i * 104729) % 5000
  local secs = i * 3
  local day = 1 + math.floor(secs / 86400) % 28
  local rem = secs % 86400
  return string.format(
    '{"transaction_id":"%s-%d-%d","user_id":"%s-card-%d","terminal_id":"%s-term-%d","amount":%.2f,"timestamp":"2018-06-%02dT%02d:%02d:%02d"}',
    prefix, tid, i, prefix, card, prefix, term, 5 + (i * 37 % 20000) / 100,
    day, math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60)
end

request = function()
  counter = counter + 1
  if batch == 1 then
    return wrk.format("POST", "/v1/transactions", {["Content-Type"] = "application/json"}, tx(counter))
  end
  local parts = {}
  for j = 1, batch do
    parts[j] = tx(counter * batch + j)
  end
  return wrk.format("POST", "/v1/transactions/batch", {["Content-Type"] = "application/json"},
    '{"transactions":[' .. table.concat(parts, ",") .. ']}')
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
