-- Fixed-rate load for wrk (wrk2's timing, in wrk 4's Lua): run with -tN -cN, so every
-- thread owns exactly one connection and its request() and response() strictly alternate.
-- Each thread has its own schedule of slots RATE/N apart; a request's latency is measured
-- from its slot, not from when it left, so a stalled server is charged for the requests
-- that could not be sent during the stall (no coordinated omission).
-- Every LABEL_EVERY-th answered prediction is followed by a label POST for its request id
-- (sent at once, outside the schedule; its time is recorded but not as a prediction).
-- Each thread appends "kind status latency_us lag_us" lines to OUT/lat-<thread>.txt,
-- kind p (prediction) or l (label); lag_us is how late the request left its slot.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } soak_ts;
int clock_gettime(int clock, soak_ts *ts);
]]
local ts = ffi.new("soak_ts")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local RATE, THREADS, LABEL_EVERY = {rate}, {threads}, {label_every}
local KEY, ADMIN, OUT, FEATURES = "{key}", "{admin}", "{out}", {features}
local created = 0

function setup(thread)
  thread:set("id", created)
  created = created + 1
end

local interval, slot, started, kind, out, count, label_for
local label_value, started_lag = 0, 0

local function gauss()
  return math.sqrt(-2 * math.log(1 - math.random())) * math.cos(2 * math.pi * math.random())
end

function init(args)
  math.randomseed(1000 + id)
  interval = THREADS / RATE
  slot = now() + interval * id / THREADS -- threads spread over one interval
  out = io.open(OUT .. "/lat-" .. id .. ".txt", "a")
  out:setvbuf("line")
  count = 0
end

function delay()
  if label_for then
    return 0
  end
  return math.max(0, math.floor((slot - now()) * 1000))
end

function request()
  local t = now()
  if label_for then
    kind, started = "l", t
    local body = string.format(
      '{"labels": [{"request_id": "%s", "label": %d}]}', label_for, label_value)
    label_for = nil
    return wrk.format("POST", "/v1/labels", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. ADMIN,
    }, body)
  end
  kind = "p"
  started = math.min(t, slot) -- a request sent early (timer rounding) counts from when it left
  local lag = math.max(0, t - slot)
  slot = slot + interval
  local f = {}
  local x = {}
  for j = 0, FEATURES - 1 do
    x[j] = gauss()
    f[#f + 1] = string.format('"f%d": %.4f', j, x[j])
  end
  label_value = (x[0] - x[1] > 0) and 1 or 0
  count = count + 1
  started_lag = lag
  return wrk.format("POST", "/v1/endpoints/soak/predict", {
    ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. KEY,
    ["X-Entity-Key"] = tostring((id * 100003 + count) % 5000),
  }, '{"rows": [{' .. table.concat(f, ", ") .. '}]}')
end

function response(status, headers, body)
  local t = now()
  if kind == "p" then
    out:write(string.format("p %d %d %d\n", status, (t - started) * 1e6, started_lag * 1e6))
    if status == 200 and count % LABEL_EVERY == 0 then
      label_for = headers["x-request-ids"] or headers["X-Request-Ids"]
    end
  else
    out:write(string.format("l %d %d 0\n", status, (t - started) * 1e6))
  end
end
