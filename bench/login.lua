-- login: the seeded users (BENCH_FILE: one email per line), correct password, in turn.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($input: LoginInput!){ login(input:$input){ accessToken refreshToken } }"
local requests, i = {}, 0

function init(args)
   for _, email in ipairs(bench.shared_file()) do
      requests[#requests + 1] = bench.graphql(query, string.format(
         '{"input":{"email":"%s","password":"%s"}}', email, bench.password))
   end
   i = thread_id * 7 -- threads start at different users
end

function request()
   i = i + 1
   return requests[(i % #requests) + 1]
end

function response(status, headers, body)
   bench.check(status, body, '"accessToken"')
end
