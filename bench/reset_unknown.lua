-- requestPasswordReset with emails that belong to no account (unique per request).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($e: String!){ requestPasswordReset(email:$e) }"
local n = 0

function request()
   n = n + 1
   local email = string.format("nobody-%s-t%d-%d@example.com", bench.tag, thread_id, n)
   return bench.graphql(query, '{"e":"' .. email .. '"}')
end

function response(status, headers, body)
   bench.check(status, body, '"requestPasswordReset":true')
end
