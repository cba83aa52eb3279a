-- mySessions: the caller's live sessions, with the access tokens of the listing users
-- (BENCH_FILE: one access token per line), in turn. Each of those accounts has the
-- same number of live sessions, so every answer lists as many.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "{ mySessions { id current lastUsedAt browser aal } }"

-- The calling session comes first in the list.
bench.in_turn(bench.per_line(function(token)
   return bench.graphql(query, "{}", token)
end), '"mySessions":[{"id":')
