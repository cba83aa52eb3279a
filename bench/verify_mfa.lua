-- verifyMfa with a recovery code: each request completes a different second step of a
-- login (BENCH_FILE.<thread id>: lines `<mfaToken> <recovery code>`, used once; both
-- seeded by the harness, see BENCHMARKS.md). Once the lines run out the request is sent
-- without its variable: a GraphQL validation error, counted as `starved` and as a
-- failure.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($i: VerifyMfaInput!){ verifyMfa(input:$i){ accessToken refreshToken } }"

bench.single_use(query, function(line)
   local token, code = string.match(line, "^(%S+) (%S+)$")
   return bench.graphql(query, string.format('{"i":{"mfaToken":"%s","recoveryCode":"%s"}}', token, code))
end, '"accessToken"')
