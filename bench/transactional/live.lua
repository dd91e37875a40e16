-- GET /health/live: Send Engine's framework ceiling (no key, no database) on the same machine, in the same run.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("BENCH requests=%d seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f\n", summary.requests, secs,
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
