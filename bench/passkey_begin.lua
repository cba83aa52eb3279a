-- Not a cell: fetches login ceremonies for finish_passkey.lua. Each request begins a
-- discoverable passkey login; each thread writes `<ceremonyId> <challenge>` lines to
-- BENCH_FILE.<thread id> (the harness has them signed, then replays them). Every
-- response is checked like a cell's, and the harness refuses a run with failures.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local request_text
local out

function init(args)
   request_text = bench.graphql("mutation{ beginPasskeyLogin { ceremonyId options } }")
   out = assert(io.open(assert(os.getenv("BENCH_FILE"), "BENCH_FILE is not set") .. "." .. thread_id, "w"))
   out:setvbuf("line")
end

function request()
   return request_text
end

function response(status, headers, body)
   if bench.check(status, body, '"ceremonyId"') then
      local id = string.match(body, '"ceremonyId":"([^"]+)"')
      local challenge = string.match(body, '"challenge":"([%w_%-]+)"')
      if id and challenge then
         out:write(id, " ", challenge, "\n")
      else
         bench_ok = bench_ok - 1
         bench_bad_body = bench_bad_body + 1
         bench_first_error = bench_first_error or ("no ceremony id or challenge in: " .. string.sub(body, 1, 300))
      end
   end
end
