-- me: the signed-in user, with the access tokens of seeded users (BENCH_FILE: one
-- access token per line), in turn.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "{ me { id email } }"
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
   bench.check(status, body, '"me":{')
end
