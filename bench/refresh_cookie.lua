-- refreshToken in cookie mode, along rotation chains as refresh.lua, sent as a browser
-- SPA sends it: no argument, the token in the `refresh_token` cookie, the
-- `X-CSRF-Protection: 1` header, the page's Origin (the service's own: the host the
-- request goes to) and `X-Auth-Transport: cookie`. The successor comes back in
-- `Set-Cookie`, and the body's refreshToken must be null. A failed response drops its
-- chain; an empty pool sends a cookie that cannot be valid (`starved`, a failure).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local body = '{"query":"mutation{ refreshToken { accessToken refreshToken } }","variables":{}}'
local pool = {}
local origin

function init(args)
   pool = bench.thread_file()
   origin = "http://" .. wrk.headers["Host"]
end

function request()
   local token = table.remove(pool)
   if not token then
      bench_starved = bench_starved + 1
      token = "no-live-chain-left"
   end
   return wrk.format("POST", "/graphql", {
      ["Content-Type"] = "application/json",
      ["Cookie"] = "refresh_token=" .. token,
      ["X-CSRF-Protection"] = "1",
      ["X-Auth-Transport"] = "cookie",
      ["Origin"] = origin,
   }, body)
end

local function successor(headers)
   for name, value in pairs(headers) do
      if string.lower(name) == "set-cookie" then
         return string.match(value, "^refresh_token=([%w_%-]+)")
      end
   end
end

function response(status, headers, body)
   if bench.check(status, body, '"refreshToken":null') then
      local next_token = successor(headers)
      if next_token and string.find(body, '"accessToken":"', 1, true) then
         pool[#pool + 1] = next_token
      else
         -- No access token or no successor cookie: undo the success, drop the chain.
         bench_ok = bench_ok - 1
         bench_bad_body = bench_bad_body + 1
         bench_first_error = bench_first_error or ("no successor cookie or access token: " .. string.sub(body, 1, 300))
      end
   end
end
