-- What does client:step(0) cost with 10,000 idle tasks, against 10?
--
-- A step resumes only the tasks that can go on (a ready queue, a heap of sleepers, a queue of
-- finished transfers that C fills), so idle tasks should cost nothing. Idle here means asleep
-- for an hour, or awaiting a request that the server never answers (a local socket that
-- accepts and stays silent; no emulator needed). Prints the median and longest step(0) in
-- microseconds for each case; never asserts: the machine is shared, figures are noisy.
-- spec/lua_scale_spec.lua checks the same property in counted Lua instructions.
--
--   make bench        or    LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/tasks_step.lua
-- Environment: BENCH_IDLE (10000), BENCH_AWAITING (200: tasks awaiting a silent server),
-- BENCH_STEPS (2000).
local sora = require "sora"
local socket = require "socket"

local IDLE = tonumber(os.getenv("BENCH_IDLE") or "") or 10000
local AWAITING = tonumber(os.getenv("BENCH_AWAITING") or "") or 200
local STEPS = tonumber(os.getenv("BENCH_STEPS") or "") or 2000

local now = sora.now

-- A server that accepts connections and never answers: requests to it stay in flight.
local silent = assert(socket.bind("127.0.0.1", 0, 2048))
silent:settimeout(0)
local _, port = silent:getsockname()
local accepted = {}

local function accept_all()
  while true do
    local conn = silent:accept()
    if not conn then return end
    accepted[#accepted + 1] = conn
  end
end

-- A client with `sleepers` tasks asleep for an hour and `waiters` tasks awaiting an answer
-- that never comes.
local function client_with(sleepers, waiters)
  local client = sora.new{ api_key = "sk-bench", base_url = "http://127.0.0.1:" .. port .. "/v1",
                           max_retries = 0, timeout = 3600 }
  for _ = 1, sleepers do client:spawn(function() client:sleep(3600) end) end
  for i = 1, waiters do client:spawn(function() client:retrieve("video_" .. i) end) end
  for _ = 1, 50 do -- every task runs once; the requests connect
    client:step(0.001)
    accept_all()
  end
  return client
end

local function measure(client)
  local times = {}
  for i = 1, STEPS do
    local t0 = now()
    client:step(0)
    times[i] = now() - t0
  end
  table.sort(times)
  return times[math.floor(#times / 2) + 1], times[#times]
end

local function report(label, client)
  local median, longest = measure(client)
  print(string.format("%-34s median %7.1f us   longest %8.1f us", label, median * 1e6, longest * 1e6))
  client:close()
end

print(string.format("step(0), %d steps each (%s)", STEPS, rawget(_G, "jit") and jit.version or _VERSION))
report("10 idle tasks", client_with(10, 0))
report(IDLE .. " idle tasks", client_with(IDLE, 0))
report(AWAITING .. " tasks awaiting a silent server", client_with(0, AWAITING))
report(IDLE .. " idle + " .. AWAITING .. " awaiting", client_with(IDLE, AWAITING))
for _, conn in ipairs(accepted) do conn:close() end
silent:close()
