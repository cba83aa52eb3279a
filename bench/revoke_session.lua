-- revokeSession: each request ends a different live session (BENCH_FILE.<thread id>:
-- lines `<access token> <session id>`, used once; the token is another session's of
-- the same user). revokeSession answers true even for an unknown id, so once the lines
-- run out the request is sent without its variable instead: a GraphQL validation
-- error, counted as `starved` and as a failure. After the run the harness counts the
-- sessions really revoked against the successes.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($id: ID!){ revokeSession(id:$id) }"

bench.single_use(query, function(line)
   local token, sid = string.match(line, "^(%S+) (%S+)$")
   return bench.graphql(query, '{"id":"' .. sid .. '"}', token)
end, '"revokeSession":true')
