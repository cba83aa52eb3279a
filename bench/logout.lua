-- logout: each request ends a fresh seeded session (BENCH_FILE.<thread id>: one live
-- refresh token per line, used once). logout answers true even for an unknown token,
-- so once the tokens run out the request is sent without its variable instead: a
-- GraphQL validation error, counted as `starved` and as a failure.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($t: String!){ logout(refreshToken:$t) }"

bench.single_use(query, function(token)
   return bench.graphql(query, '{"t":"' .. token .. '"}')
end, '"logout":true')
