-- changePassword along chains, one per account (BENCH_FILE.<thread id>: lines
-- `<access token> <user id>`, one chain per connection of the thread plus a spare, as
-- refresh.lua). Each request proves the account's current password and sets the other
-- of two (BENCH_PASSWORD and BENCH_PASSWORD .. " again"), with
-- signOutOtherSessions: false; the answer's access token (of the session that replaces
-- the calling one) is the chain's next. The pool holds `token user-id` entries; the
-- current password of each account is kept by user id, which the answer names.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require "common"
bench.install()

local query = "mutation($i: ChangePasswordInput!){ changePassword(input:$i){ accessToken user { id } } }"
local other = { [bench.password] = bench.password .. " again", [bench.password .. " again"] = bench.password }
local pool, password_of = {}, {}

function init(args)
   for _, line in ipairs(bench.thread_file()) do
      local token, user = string.match(line, "^(%S+) (%S+)$")
      pool[#pool + 1] = { token = token, user = user }
      password_of[user] = bench.password
   end
end

function request()
   local chain = table.remove(pool)
   if not chain then
      bench_starved = bench_starved + 1
      return bench.graphql(query, "{}")
   end
   local current = password_of[chain.user]
   local new = other[current]
   return bench.graphql(query, string.format(
      '{"i":{"currentPassword":"%s","newPassword":"%s","newPasswordConfirm":"%s","signOutOtherSessions":false}}',
      current, new, new), chain.token)
end

function response(status, headers, body)
   if bench.check(status, body, '"accessToken"') then
      local token = string.match(body, '"accessToken":"([^"]+)"')
      local user = string.match(body, '"user":{"id":"([^"]+)"')
      if token and user and password_of[user] then
         password_of[user] = other[password_of[user]]
         pool[#pool + 1] = { token = token, user = user }
      else
         bench_ok = bench_ok - 1
         bench_bad_body = bench_bad_body + 1
         bench_first_error = bench_first_error or ("no accessToken or user id in: " .. string.sub(body, 1, 300))
      end
   end
end
