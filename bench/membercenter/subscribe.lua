-- POST /newsletter/subscribe with a bearer token and a new address on every request:
-- b<run>-t<thread>-<counter>@bench.example.com, so every request creates a subscriber, a subscription,
-- a confirm token, a consent record and an outbox message (the realistic first-subscribe path).
-- wrk ... -s subscribe.lua URL -- ACCESS_TOKEN LIST_ID RUN_TAG [EMAIL_DOMAIN]
-- (run.sh --profile passes an unknown list or "-" for no domain, i.e. an invalid address, to isolate costs)
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require "common"
bench_name = "subscribe"

local headers, list_id, tag, domain
local n = 0

function init(args)
  assert(args[1] and args[2] and args[3], "usage: -- ACCESS_TOKEN LIST_ID RUN_TAG")
  headers = { ["Authorization"] = "Bearer " .. args[1], ["Content-Type"] = "application/json" }
  list_id, tag = args[2], args[3]
  domain = (args[4] == "-") and "" or ("@" .. (args[4] or "bench.example.com"))
end

function request()
  n = n + 1
  local body = string.format('{"list_id":"%s","email":"b%s-t%d-%d%s"}', list_id, tag, id, n, domain)
  return wrk.format("POST", "/newsletter/subscribe", headers, body)
end
