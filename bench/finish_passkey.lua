-- finishPasskeyLogin: each request finishes a different login ceremony with an
-- assertion signed over its challenge (BENCH_FILE.<thread id>: one line per request,
-- the variables `{"i":{"ceremonyId":…,"credential":…}}`, used once; fetched with
-- passkey_begin.lua and signed by bench/passkey-signer before the run). Once the lines
-- run out the request is sent without its variable: a GraphQL validation error,
-- counted as `starved` and as a failure.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($i: PasskeyAssertionInput!){ finishPasskeyLogin(input:$i){ accessToken refreshToken } }"

bench.single_use(query, function(line)
   return bench.graphql(query, line)
end, '"accessToken"')
