-- POST /api/v1/email with X-Pigeon-Api-Key: the HTML of HTML_FILE (about 4 KB), RECIPIENTS new addresses per request
-- (r<tag>-t<thread>-<n>-<k>@bench.example), so each request creates new tasks.
-- wrk ... -s email.lua URL -- API_KEY FROM_EMAIL RECIPIENTS RUN_TAG HTML_FILE
-- done() prints a BENCH line (requests, rps, latency percentiles, non-2xx, socket errors) that run.sh parses.
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local headers, from, recipients, tag, html_json
local n = 0
non2xx = 0
ok = 0
first_error = ""

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" elseif c == "\n" then return "\\n" end
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function init(args)
  assert(args[5], "usage: -- API_KEY FROM_EMAIL RECIPIENTS RUN_TAG HTML_FILE")
  headers = { ["X-Pigeon-Api-Key"] = args[1], ["Content-Type"] = "application/json" }
  from, recipients, tag = args[2], tonumber(args[3]), args[4]
  local f = assert(io.open(args[5], "r"))
  html_json = json_string(f:read("*a"))
  f:close()
end

function request()
  n = n + 1
  local to = {}
  for k = 1, recipients do
    to[k] = string.format('{"email":"r%s-t%d-%d-%d@bench.example","name":"Reader %d"}', tag, id, n, k, k)
  end
  local body = string.format(
    '{"message":{"from_email":"%s","from_name":"Bench shop","subject":"Your receipt %d","html":%s,"to":[%s],"metadata":{"order":"%s-%d-%d"}}}',
    from, n, html_json, table.concat(to, ","), tag, id, n)
  return wrk.format("POST", "/api/v1/email", headers, body)
end

function response(status, headers, body)
  if status >= 200 and status <= 299 then
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
    local e = t:get("first_error") or ""
    if sample == "" and e ~= "" then sample = e end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d ok=%d seconds=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, good, secs, summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, bad, e.connect + e.read + e.write + e.timeout))
  if sample ~= "" then io.write("BENCH_FIRST_ERROR " .. sample .. "\n") end
end
