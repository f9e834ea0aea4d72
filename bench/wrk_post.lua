-- wrk script for bench/: POST a fixed chat body, optionally at a fixed mean rate, and write JSON results.
-- Environment: WRK_BODY_FILE (request body), WRK_AUTH (bearer key, may be empty), WRK_OUT (results file),
-- WRK_AUTHS (optional: comma-separated keys; each request takes the next one, so the load comes from many
-- accounts), WRK_MEAN_DELAY_MS (optional: exponential think time per connection, mean in ms; wrk applies it before
-- every request, the first included, and measures latency from the send, so it is an open-ish loop at
-- low load).

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

wrk.method = "POST"
wrk.body = read_all(os.getenv("WRK_BODY_FILE"))
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

local mean_delay = tonumber(os.getenv("WRK_MEAN_DELAY_MS") or "")

local auths = {}
for k in string.gmatch(os.getenv("WRK_AUTHS") or "", "[^,]+") do
  auths[#auths + 1] = "Bearer " .. k
end
if #auths > 0 then
  local i = 0
  function request()
    i = i % #auths + 1
    wrk.headers["Authorization"] = auths[i]
    return wrk.format()
  end
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

if mean_delay and mean_delay > 0 then
  function delay()
    return math.floor(-math.log(1 - math.random()) * mean_delay + 0.5)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("WRK_OUT"), "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
  f:close()
end
