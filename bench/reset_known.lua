-- requestPasswordReset with the emails of seeded users (BENCH_FILE), in turn.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($e: String!){ requestPasswordReset(email:$e) }"

bench.in_turn(bench.per_line(function(email)
   return bench.graphql(query, '{"e":"' .. email .. '"}')
end), '"requestPasswordReset":true')
