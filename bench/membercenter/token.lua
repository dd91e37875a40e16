-- POST /oauth/token, client_credentials with client_secret_post (form body).
-- wrk ... -s token.lua URL -- CLIENT_ID CLIENT_SECRET [GRANT_TYPE]
-- (run.sh --profile passes a wrong secret, an unknown client or another grant type to isolate costs)
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require "common"
bench_name = "token"

function init(args)
  assert(args[1] and args[2], "usage: -- CLIENT_ID CLIENT_SECRET [GRANT_TYPE]")
  wrk.method = "POST"
  wrk.path = "/oauth/token"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "grant_type=" .. urlencode(args[3] or "client_credentials")
    .. "&client_id=" .. urlencode(args[1]) .. "&client_secret=" .. urlencode(args[2])
end
