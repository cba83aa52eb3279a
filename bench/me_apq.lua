-- me as an automatic persisted query: the SHA-256 of me.lua's query instead of its
-- text (scripts/bench persists the query on the server before the run), with the
-- access tokens of seeded users (BENCH_FILE: one per line), in turn.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

-- sha256("{ me { id email } }"), the query of me.lua.
local hash = "a49349e99644831a46540a65750b1612835e361d0c0b7abff1469afd5f7f6920"
local body = '{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"' .. hash .. '"}}}'

bench.in_turn(bench.per_line(function(token)
   return wrk.format("POST", "/graphql", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token,
   }, body)
end), '"me":{')
