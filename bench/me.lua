-- me: the signed-in user, with the access tokens of seeded users (BENCH_FILE: one
-- access token per line), in turn.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "{ me { id email } }"

bench.in_turn(bench.per_line(function(token)
   return bench.graphql(query, "{}", token)
end), '"me":{')
