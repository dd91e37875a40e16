-- POST /api/tencent/ses/webhook with a new event per request (Tencent's callback format, token in the URL query).
-- Every request is unique (run tag, thread id, counter), so each one is a new row; done() prints a BENCH line
-- with the number of 200 answers, which run.sh compares with the rows stored.
local threads = {}
local next_id = 1
local types = { "delivered", "open", "click", "bounce", "deferred", "spamreport", "unsubscribe", "dropped" }

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  tag = args[2] or "run"
  counter = 0
  ok = 0
  non2xx = 0
  first_error = ""
end

function request()
  counter = counter + 1
  local t = types[(counter % #types) + 1]
  local body = string.format(
    '{"event":"%s","email":"r%d-%d@bench.example","bulkId":"qcloudses-bench-%s-%d-%d","timestamp":%d,"reason":"","bounceType":"hard_bounce","link":"https://news.example/x","useragent":"wrk","username":"251200670","from":"news@sender.example","fromDomain":"sender.example"}',
    t, id, counter, tag, id, counter, 1700000000 + counter)
  return wrk.format("POST", "/api/tencent/ses/webhook?token=" .. token, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    non2xx = non2xx + 1
    if first_error == "" then first_error = status .. " " .. string.sub((body or ""):gsub("[\r\n]", " "), 1, 200) end
  end
end

function done(summary, latency, requests)
  local good, bad, sample = 0, 0, ""
  for _, t in ipairs(threads) do
    good = good + (t:get("ok") or 0)
    bad = bad + (t:get("non2xx") or 0)
    if sample == "" then sample = t:get("first_error") or "" end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d ok=%d seconds=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, good, secs, summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, bad, e.connect + e.read + e.write + e.timeout))
  if sample ~= "" then io.write("BENCH_FIRST_ERROR " .. sample .. "\n") end
end
