-- Does the host stall when a large download to a file ends?
--
-- A host loop (as a game's frame loop would) calls client:step(0) while a task downloads a
-- BENCH_END_MB (default 300) MB video to a file. For each case it prints the longest step(0),
-- the step in which the download ended (close, rename) and the median step. The end of a
-- download used to cost 230-290 ms for 300 MB on ext4: the fresh temporary file was truncated,
-- and ext4 flushes a truncated file whole at close (auto_da_alloc). Cases: a new target, a
-- target that is replaced (rename over an existing file), and durable = true for contrast
-- (it syncs on purpose: that end is expected to take as long as the disk needs). The 100 steps
-- after each end are timed too: a replaced file's space is given back there, 8 MB a step.
-- Prints, never asserts: the figures are this machine's.
--
--   make bench    or    LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/download_end.lua
local sora = require "sora"
local process = require "sora.emulator.process"

local MB = 1024 * 1024
local SIZE_MB = tonumber(os.getenv("BENCH_END_MB") or "") or 300

local emulator = process.spawn{ job_seconds = 0.1, video_bytes = SIZE_MB * MB }
local client = sora.new{ api_key = "sk-bench", base_url = emulator.url }
local video = assert(client:create_and_wait({ prompt = "a large video" }, { interval = 0.05 }))
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local function median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  return sorted[math.floor(#sorted / 2) + 1] or 0
end

local function longest(list)
  local m = 0
  for _, v in ipairs(list) do m = math.max(m, v) end
  return m
end

-- Steps the client until the task is done; returns the step times (ms) and the last one's.
local function drive(task)
  local times = {}
  while not task:done() do
    local start = sora.now()
    client:step(0)
    times[#times + 1] = (sora.now() - start) * 1000
  end
  return times, times[#times]
end

local function run(label, path, opts)
  opts.path = path
  local task = client:spawn(function() return video:download(opts) end)
  local times, last = drive(task)
  assert(task:result())
  -- the steps after the end: a replaced file's space is given back there, a slice per step
  local after = {}
  for i = 1, 100 do
    local start = sora.now()
    client:step(0)
    after[i] = (sora.now() - start) * 1000
  end
  print(string.format("%-26s %4d MB: %6d steps, longest step(0) %8.3f ms, final step %8.3f ms, median %.3f ms, "
    .. "longest of the next 100 %.3f ms", label, SIZE_MB, #times, longest(times), last, median(times), longest(after)))
end

local target = dir .. "/big.mp4"
run("new target", target, {})
run("replacing a target", target, {})
os.remove(target)
run("new target, durable", target, { durable = true })
os.remove(target)
client:close()
emulator:stop()
os.execute("rm -rf " .. dir)
