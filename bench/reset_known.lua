-- requestPasswordReset with the emails of seeded users (BENCH_FILE), in turn.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($e: String!){ requestPasswordReset(email:$e) }"
local requests, i = {}, 0

function init(args)
   for _, email in ipairs(bench.shared_file()) do
      requests[#requests + 1] = bench.graphql(query, '{"e":"' .. email .. '"}')
   end
   i = thread_id * 7
end

function request()
   i = i + 1
   return requests[(i % #requests) + 1]
end

function response(status, headers, body)
   bench.check(status, body, '"requestPasswordReset":true')
end
