-- Shared by the wrk scripts of scripts/bench (wrk 4, LuaJIT).
--
-- wrk runs a script in one Lua state per thread, plus a main state for setup() and
-- done(). Each thread counts its own outcomes in globals; done() collects them with
-- thread:get() and prints one line, `BENCH_RESULT {json}`, that scripts/bench parses.
--
-- Every response goes through M.check(): it is a success only with status 200, no
-- "errors" key, and the expected data in the body. Anything else is counted as a
-- failure (and the first one is kept for the report), never as a success.
--
-- Inputs come from the environment, set by scripts/bench:
--   BENCH_TAG       unique per wrk run (makes generated emails unique)
--   BENCH_PASSWORD  password of the seeded users
--   BENCH_FILE      a data file (emails or tokens, one per line); scripts that split
--                   data between threads read BENCH_FILE.<thread id>
--   BENCH_SHED_OK   set: a RATE_LIMITED answer is counted as `shed`, not as a failure
--                   (the login flood, where the service's overload answer is expected)

local M = {}

-- Per-thread counters (globals, so that done() can read them with thread:get).
bench_ok = 0          -- checked, good responses
bench_bad_status = 0  -- status other than 200
bench_bad_body = 0    -- status 200, but "errors" or not the expected data
bench_starved = 0     -- requests sent without a live token (always fail; see refresh.lua)
bench_shed = 0        -- RATE_LIMITED answers, where BENCH_SHED_OK says they are expected
bench_first_error = nil

M.password = os.getenv("BENCH_PASSWORD") or "correct horse battery"
M.tag = os.getenv("BENCH_TAG") or tostring(os.time())
local shed_ok = os.getenv("BENCH_SHED_OK") ~= nil

-- Main state: every thread, for done(); and the thread id, set before init() runs.
local threads = {}

function M.setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

-- Lines of a file, in order.
function M.lines(path)
   local out = {}
   local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   for line in f:lines() do
      if line ~= "" then out[#out + 1] = line end
   end
   f:close()
   return out
end

-- The data file shared by all threads, or this thread's own part of it.
function M.shared_file()
   return M.lines(assert(os.getenv("BENCH_FILE"), "BENCH_FILE is not set"))
end

function M.thread_file()
   return M.lines(assert(os.getenv("BENCH_FILE"), "BENCH_FILE is not set") .. "." .. thread_id)
end

local json_headers = { ["Content-Type"] = "application/json" }

-- A POST /graphql request. `variables` is a JSON object text; the values scripts put
-- in it (emails, tokens) need no escaping. `bearer` adds an Authorization header.
function M.graphql(query, variables, bearer)
   local headers = json_headers
   if bearer then
      headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. bearer }
   end
   local body = '{"query":"' .. query .. '","variables":' .. (variables or "{}") .. "}"
   return wrk.format("POST", "/graphql", headers, body)
end

local function fail(kind, status, body)
   if kind == "status" then
      bench_bad_status = bench_bad_status + 1
   else
      bench_bad_body = bench_bad_body + 1
   end
   if not bench_first_error then
      bench_first_error = "HTTP " .. tostring(status) .. ": " .. string.sub(body or "", 1, 300)
   end
   return false
end

-- Checks one response; true if it is a success. `needle` is a plain substring the
-- body must contain (e.g. '"accessToken"').
function M.check(status, body, needle)
   if status ~= 200 then
      return fail("status", status, body)
   end
   if shed_ok and body and string.find(body, '"code":"RATE_LIMITED"', 1, true) then
      bench_shed = bench_shed + 1
      return false
   end
   if body == nil or string.find(body, '"errors"', 1, true) or not string.find(body, needle, 1, true) then
      return fail("body", status, body)
   end
   bench_ok = bench_ok + 1
   return true
end

local function json_string(s)
   if s == nil then return "null" end
   s = string.gsub(s, '[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

-- Main state, after the run: totals, per-thread counters and latency percentiles.
function M.done(summary, latency, requests)
   local ok, bad_status, bad_body, starved, shed = 0, 0, 0, 0, 0
   local first_error = nil
   local per_thread = {}
   for i, t in ipairs(threads) do
      local t_ok = t:get("bench_ok") or 0
      local t_status = t:get("bench_bad_status") or 0
      local t_body = t:get("bench_bad_body") or 0
      local t_starved = t:get("bench_starved") or 0
      ok = ok + t_ok
      bad_status = bad_status + t_status
      bad_body = bad_body + t_body
      starved = starved + t_starved
      shed = shed + (t:get("bench_shed") or 0)
      first_error = first_error or t:get("bench_first_error")
      per_thread[i] = string.format('{"thread":%d,"ok":%d,"bad_status":%d,"bad_body":%d,"starved":%d}',
         i - 1, t_ok, t_status, t_body, t_starved)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"ok":%d,"bad_status":%d,"bad_body":%d,' ..
      '"starved":%d,"shed":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
      '"threads":[%s],"first_error":%s}\n',
      summary.requests, summary.duration, ok, bad_status, bad_body, starved, shed,
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      table.concat(per_thread, ","), json_string(first_error)))
end

-- A script that sends the same requests over and over: `build()` (run in each thread's
-- init) returns them, and each thread starts at its own place in the list. A response
-- is a success if its body contains `needle`.
function M.in_turn(build, needle)
   local requests, i = {}, 0
   init = function()
      requests = build()
      i = thread_id * 7
   end
   request = function()
      i = i + 1
      return requests[(i % #requests) + 1]
   end
   response = function(status, headers, body) M.check(status, body, needle) end
end

-- The requests of `in_turn`: one per line of BENCH_FILE, made by `make(line)`.
function M.per_line(make)
   return function()
      local out = {}
      for _, line in ipairs(M.shared_file()) do out[#out + 1] = make(line) end
      return out
   end
end

-- A script that uses each line of its thread's file (BENCH_FILE.<thread id>) once:
-- `make(line)` makes the request. These operations answer success for anything (an
-- unknown token or id), so once the lines run out a request is sent without its
-- variables instead: a GraphQL validation error, counted as `starved` and as a failure.
function M.single_use(query, make, needle)
   local lines, i = {}, 0
   init = function() lines = M.thread_file() end
   request = function()
      i = i + 1
      local line = lines[i]
      if not line then
         bench_starved = bench_starved + 1
         return M.graphql(query, "{}")
      end
      return make(line)
   end
   response = function(status, headers, body) M.check(status, body, needle) end
end

-- Installs the wrk hooks common to every script.
function M.install()
   setup = M.setup
   done = M.done
end

return M
