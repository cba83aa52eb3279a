-- refreshToken along real rotation chains. BENCH_FILE.<thread id> holds one live
-- refresh token per chain (one chain per connection of the thread, plus a spare:
-- wrk calls request() once before the run on thread 0 and discards the request,
-- token included). The thread keeps
-- the current token of each chain in a pool: request() takes one out, response()
-- puts back the successor the service returned. A failed response drops its chain
-- (counted as a failure by bench.check); should the pool ever run dry, the request is
-- sent with a token that cannot be valid (counted as `starved`, and its response as a
-- failure), so a broken chain can never pass for a success.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($t: String!){ refreshToken(refreshToken:$t){ accessToken refreshToken } }"
local pool = {}

function init(args)
   pool = bench.thread_file()
end

function request()
   local token = table.remove(pool)
   if not token then
      bench_starved = bench_starved + 1
      token = "no-live-chain-left"
   end
   return bench.graphql(query, '{"t":"' .. token .. '"}')
end

function response(status, headers, body)
   if bench.check(status, body, '"accessToken"') then
      -- The payload's refreshToken field: the chain's new current token.
      local successor = string.match(body, '"refreshToken":"([%w_%-]+)"')
      if successor then
         pool[#pool + 1] = successor
      else
         -- Not the expected shape after all: undo the success, drop the chain.
         bench_ok = bench_ok - 1
         bench_bad_body = bench_bad_body + 1
         bench_first_error = bench_first_error or ("no refreshToken in: " .. string.sub(body, 1, 300))
      end
   end
end
