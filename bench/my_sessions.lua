-- mySessions: the caller's live sessions, with the access tokens of the listing users
-- (BENCH_FILE: one access token per line), in turn. Each of those accounts has the
-- same number of live sessions, so every answer lists as many.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "{ mySessions { id current lastUsedAt browser aal } }"
local requests, i = {}, 0

function init(args)
   for _, token in ipairs(bench.shared_file()) do
      requests[#requests + 1] = bench.graphql(query, "{}", token)
   end
   i = thread_id * 7
end

function request()
   i = i + 1
   return requests[(i % #requests) + 1]
end

function response(status, headers, body)
   -- The calling session comes first in the list.
   bench.check(status, body, '"mySessions":[{"id":')
end
