-- GET /health/live: the framework ceiling (no auth, no database) on the same machine and settings.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require "common"
bench_name = "health_live"
wrk.path = "/health/live"
