-- The Lua half of examples/host.c: a "game" that generates videos while its frame loop runs.
--
-- host.c calls this chunk with a `host` table (clock, out_dir, keep) and drives the table it
-- returns: frame() once per 16.67 ms frame, hud() for the status line, finish() at the end.
-- Each generation is a sora task, so its create, wait and download yield to the frame loop
-- instead of blocking it; frame() only calls client:step(0), which never waits.
--
-- Run as an event loop (SORA_HOST_LOOP=poll), host.c also passes host.watch_socket and
-- host.set_timer: the client is watched through them, and host.c calls socket_ready() and
-- timeout_due() when poll() says so; frame() is never called then.
--
-- The server is $SORA_BASE_URL (or $OPENAI_BASE_URL) with $SORA_API_KEY (or $OPENAI_API_KEY);
-- with neither URL set, a local emulator is started for the run. $SORA_JOBS generations
-- (default 16).
local host = ...
local sora = require "sora"

local JOBS = tonumber(os.getenv("SORA_JOBS") or "") or 16
local EMULATOR_JOB_SECONDS = 2

-- The server, or a local emulator when the caller named none.
local function connect()
  local url = os.getenv("SORA_BASE_URL") or os.getenv("OPENAI_BASE_URL")
  local key = os.getenv("SORA_API_KEY") or os.getenv("OPENAI_API_KEY")
  if url then return sora.new{ base_url = url, api_key = key } end
  local emulator = require("sora.emulator.process").spawn{ job_seconds = EMULATOR_JOB_SECONDS }
  return sora.new{ base_url = emulator.url, api_key = "sk-local-emulator" }, emulator
end

local client, emulator = connect()

-- What the HUD shows: one slot per generation, written by the tasks, read by hud().
local hud = {}

-- One generation: create, wait (progress goes to the HUD), download. Raising an error
-- object ends this task alone; the others and the frame loop go on.
local function generate(i)
  local slot = hud[i]
  local video = assert(client:create{ prompt = "frame-loop video #" .. i, seconds = "4" })
  slot.status = video.status
  video = assert(video:wait{ on_progress = function(v)
    slot.status, slot.progress = v.status, v.progress
  end })
  local path = host.out_dir .. "/video-" .. i .. ".mp4"
  slot.status = "downloading"
  assert(video:download{ path = path })
  slot.status, slot.progress = "arrived", 100
  return path
end

local tasks = {}
for i = 1, JOBS do
  hud[i] = { status = "starting", progress = 0 }
  tasks[i] = client:spawn(generate, i)
end

local game = {}

-- ---- the event loop: host.c polls what sora asks for, and tells it what happened ---------

if host.watch_socket then
  client:watch(host.watch_socket, host.set_timer)
end

--- The tasks still running, before the loop starts.
function game.running()
  local running = 0
  for _, task in ipairs(tasks) do
    if not task:done() then running = running + 1 end
  end
  return running
end

--- poll() found fd ready; returns the tasks still running.
function game.socket_ready(fd, readable, writable)
  return client:socket_ready(fd, readable, writable)
end

--- The timer sora set is due; returns the tasks still running.
function game.timeout_due()
  return client:timeout_due()
end

--- Once per frame: advance every transfer and task without waiting. Returns the tasks
-- still running and how long step(0) took (seconds), for the host's figures.
function game.frame()
  local start = host.clock()
  local running = client:step(0)
  return running, host.clock() - start
end

--- The status line: every generation's progress and how many arrived.
function game.hud()
  local cells, arrived = {}, 0
  for i, slot in ipairs(hud) do
    cells[i] = string.format("%3d", slot.progress or 0)
    if slot.status == "arrived" then arrived = arrived + 1 end
  end
  return string.format("[%s] %d/%d arrived", table.concat(cells, " "), arrived, JOBS)
end

-- An MP4 file starts with a box whose type is 'ftyp'.
local function is_mp4(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(8) or ""
  f:close()
  return head:sub(5, 8) == "ftyp"
end

-- The video file of a finished task, or nil and why not.
local function outcome(task)
  if not task:done() then
    task:cancel()
    return nil, "still running at the time cap"
  end
  local path, err = task:result()
  if not path then return nil, tostring(err) end
  if not is_mp4(path) then return nil, path .. " is not an MP4 file" end
  return path
end

--- After the loop: counts the videos that arrived, reports the failures, cleans up.
-- Returns arrived, failed.
function game.finish()
  local arrived = 0
  for i, task in ipairs(tasks) do
    local path, why = outcome(task)
    if path then arrived = arrived + 1 else io.stderr:write("generation ", i, ": ", why, "\n") end
    if path and not host.keep then os.remove(path) end
  end
  client:close()
  if emulator then emulator:stop() end
  return arrived, JOBS - arrived
end

return game
