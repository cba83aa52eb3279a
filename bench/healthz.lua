-- GET /healthz: the HTTP ceiling (no I/O behind it). Checked like every other cell.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

wrk.method = "GET"
wrk.path = "/healthz"

function response(status, headers, body)
   bench.check(status, body, '"ok"')
end
