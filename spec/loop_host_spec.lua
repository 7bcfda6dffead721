-- examples/host.c as an event loop (SORA_HOST_LOOP=poll): a C program embedding Lua 5.4 that
-- sleeps in poll() on the descriptors sora asks for and wakes for them or sora's one timer,
-- built with the C compiler and run against the emulator. Figures are printed, not asserted.
local emulator = require "support.emulator"
local H = require "support.client"
local tools = require "support.tools"

local q = H.shell_quote

local sh = H.sh

-- "name number" lines into a table.
local function figures(out)
  local found = {}
  for name, value in out:gmatch("([%w_]+) (%-?[%d.]+)\n") do found[name] = tonumber(value) end
  return found
end

describe("examples/host.c driving sora from a poll() loop", function()
  local E, dir

  lazy_setup(function()
    E = emulator.start{ job_seconds = 1, api_key = H.KEY }
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    if E then E:stop() end
    H.rmdir(dir)
  end)

  local function run_host(vars)
    local parts = { "env" }
    for name, value in pairs(vars) do parts[#parts + 1] = name .. "=" .. q(value) end
    return sh(table.concat(parts, " ") .. " timeout 60 build/host")
  end

  it("gets every video, waking only for sockets and sora's timer", function()
    local built, why = tools.build_host()
    if not built then return pending(why) end
    local out_dir = dir .. "/videos"
    assert(os.execute("mkdir " .. q(out_dir)))
    E:clear_requests()
    local out, status = run_host{ SORA_HOST_LOOP = "poll", SORA_BASE_URL = E.url,
      SORA_API_KEY = H.KEY, SORA_JOBS = "4", SORA_OUT_DIR = out_dir, SORA_HOST_SECONDS = "30" }
    local f = figures(out)
    local requests = #E:requests()
    io.stderr:write(("\n  [host.c poll] %s timer and %s socket wakeups for %d requests, %s ms CPU\n")
      :format(tostring(f.timer_wakeups), tostring(f.socket_wakeups), requests, tostring(f.cpu_ms)))
    assert.are.equal(0, status, out)
    assert.are.equal(4, f.arrived, out)
    assert.are.equal(0, f.failed, out)
    assert.are.equal(0, f.frames, out) -- the frame loop never ran
    -- the timer is sora's alone: a wakeup per request or sleep at most, never a polling tick
    assert.is_true(f.timer_wakeups > 0 and f.timer_wakeups <= 3 * requests + 2, out)
    local files = H.ls(out_dir)
    assert.are.equal(4, #files)
    for _, name in ipairs(files) do
      assert.are.equal(H.media("video.mp4"), H.read(out_dir .. "/" .. name))
    end
  end)

  it("reports the failures when the server cannot be reached", function()
    local built, why = tools.build_host()
    if not built then return pending(why) end
    local out, status = run_host{ SORA_HOST_LOOP = "poll", SORA_BASE_URL = "http://127.0.0.1:1/v1",
      SORA_API_KEY = H.KEY, SORA_JOBS = "2", SORA_HOST_SECONDS = "25" }
    assert.are.equal(1, status, out)
    assert.are.equal(0, figures(out).arrived, out)
    assert.matches("generation 1: .*connection", out)
  end)
end)
