-- How long does client:step(0) hold the host, and do many jobs cost more than one?
--
-- Against a local emulator, one generation (create, wait, download) runs alone as a task,
-- then 64 at once, both driven the way a host drives them: step(0), then a 1 ms sleep for the
-- host's own work. Prints the total times and their ratio (about 1 when the jobs overlap),
-- the number of steps, the median, 99th percentile and longest step(0), and the first one
-- (it starts every request). Prints, never asserts: the machine is shared, figures are noisy.
-- A ratio near 1.45 with 2 s jobs would mean some connects waited for a SYN retransmit (1 s):
-- the emulator listens with a backlog of 1024 so that 64 connections at once fit.
--
--   make bench        or    LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/step_latency.lua
-- Environment: BENCH_JOBS (64), BENCH_JOB_SECONDS (the emulator's job length, 2).
local sora = require "sora"
local socket = require "socket"

local JOBS = tonumber(os.getenv("BENCH_JOBS") or "") or 64
local JOB_SECONDS = tonumber(os.getenv("BENCH_JOB_SECONDS") or "") or 2
local HOST_WORK = 0.001 -- seconds the "host" spends between two steps

local now = sora.now

-- One generation: create, wait, download (to memory); raises if anything fails, so that a
-- broken run cannot pass for a fast one.
local function generate(client, i)
  local video = assert(client:create{ prompt = "bench job " .. i, seconds = "4" })
  video = assert(video:wait())
  local bytes = assert(video:download())
  assert(bytes:sub(5, 8) == "ftyp", "the download is not an MP4")
end

-- Spawns n generations and steps until they end. Returns the elapsed seconds and the
-- duration of every step(0).
local function drive(client, n)
  local tasks, steps = {}, {}
  local start = now()
  for i = 1, n do tasks[i] = client:spawn(generate, client, i) end
  repeat
    local t0 = now()
    local running = client:step(0)
    steps[#steps + 1] = now() - t0
    if running > 0 then socket.sleep(HOST_WORK) end
  until running == 0
  local elapsed = now() - start
  for i, task in ipairs(tasks) do
    local ok, err = task:result()
    if ok == nil and err ~= nil then error("job " .. i .. " failed: " .. tostring(err), 0) end
  end
  return elapsed, steps
end

local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function ms(seconds) return seconds * 1000 end

local function main()
  local emulator = require("sora.emulator.process").spawn{ job_seconds = JOB_SECONDS }
  local client = sora.new{ api_key = "sk-bench", base_url = emulator.url }
  local ok, err = pcall(function()
    local one = drive(client, 1)
    local many, steps = drive(client, JOBS)
    local first = steps[1] -- resumes every new task: starts all the create requests
    table.sort(steps)
    print(string.format("step_latency: %s, libcurl %s, emulator jobs of %g s", _VERSION,
      sora.curl_version, JOB_SECONDS))
    print(string.format("  1 job          %8.3f s", one))
    print(string.format("  %-3d jobs       %8.3f s   ratio %.2f (%d jobs / 1 job)", JOBS, many,
      many / one, JOBS))
    print(string.format("  steps          %8d     (step(0), then %g ms of host work)", #steps,
      ms(HOST_WORK)))
    print(string.format("  step(0) median %8.3f ms", ms(percentile(steps, 0.5))))
    print(string.format("  step(0) p99    %8.3f ms", ms(percentile(steps, 0.99))))
    print(string.format("  step(0) max    %8.3f ms", ms(steps[#steps])))
    print(string.format("  step(0) first  %8.3f ms   (starts the %d create requests)", ms(first), JOBS))
  end)
  client:close()
  emulator:stop()
  if not ok then
    io.stderr:write("step_latency: ", tostring(err), "\n")
    os.exit(1)
  end
end

main()
