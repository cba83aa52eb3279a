-- register: a new account per request (unique email), then its tokens.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($input: RegisterInput!){ register(input:$input){ accessToken refreshToken } }"
local n = 0

function request()
   n = n + 1
   local email = string.format("reg-%s-t%d-%d@example.com", bench.tag, thread_id, n)
   return bench.graphql(query, string.format(
      '{"input":{"email":"%s","fullName":"Bench User","password":"%s","passwordConfirm":"%s"}}',
      email, bench.password, bench.password))
end

function response(status, headers, body)
   bench.check(status, body, '"accessToken"')
end
