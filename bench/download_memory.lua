-- Does memory stay flat while a large video downloads?
--
-- The emulator serves a synthetic body of BENCH_DOWNLOAD_MB megabytes (default 1024); it is
-- downloaded to a file (in a temporary directory, removed afterwards) and to a sink that
-- discards it, then a smaller one (BENCH_STRING_MB, 64) to a string for contrast. For each,
-- prints the throughput and the growth of this process's peak resident memory (VmHWM).
-- Prints, never asserts: the figures are this machine's.
--
--   make bench     or    LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/download_memory.lua
local sora = require "sora"
local process = require "sora.emulator.process"

local MB = 1024 * 1024
local DOWNLOAD_MB = tonumber(os.getenv("BENCH_DOWNLOAD_MB") or "") or 1024
local STRING_MB = tonumber(os.getenv("BENCH_STRING_MB") or "") or 64

-- Peak resident memory of this process so far, in MB (Linux).
local function peak_mb()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("*a"):match("VmHWM:%s*(%d+)")
  f:close()
  return tonumber(kb) / 1024
end

local function measure(label, size_mb, run)
  local before, start = peak_mb(), sora.now()
  local received = run()
  local seconds = sora.now() - start
  assert(received == size_mb * MB, label .. ": got " .. tostring(received) .. " bytes")
  print(string.format("%-22s %6d MB in %6.2f s = %7.1f MB/s; peak RSS grew %6.1f MB (%.4f of the body)",
    label, size_mb, seconds, size_mb / seconds, peak_mb() - before, (peak_mb() - before) / size_mb))
end

local function completed_video(client)
  return assert(client:create_and_wait({ prompt = "a large video" }, { interval = 0.05 }))
end

local emulator = process.spawn{ job_seconds = 0.1, video_bytes = DOWNLOAD_MB * MB }
local client = sora.new{ api_key = "sk-bench", base_url = emulator.url }
local video = completed_video(client)
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

print(string.format("peak RSS at start: %.1f MB", peak_mb()))
measure("to a file", DOWNLOAD_MB, function()
  local path = dir .. "/big.bin"
  assert(video:download{ path = path })
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  f:close()
  os.remove(path)
  return size
end)
measure("to a sink", DOWNLOAD_MB, function()
  local total = 0
  assert(video:download{ sink = function(chunk) total = total + #chunk end })
  return total
end)
emulator:stop()

emulator = process.spawn{ job_seconds = 0.1, video_bytes = STRING_MB * MB }
client = sora.new{ api_key = "sk-bench", base_url = emulator.url }
video = completed_video(client)
measure("to a string", STRING_MB, function() return #assert(video:download()) end)
emulator:stop()
os.execute("rm -rf " .. dir)
