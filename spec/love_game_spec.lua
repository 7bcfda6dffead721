-- examples/love, a LÖVE 11 game (LuaJIT), run under a virtual display (xvfb-run) against
-- the emulator: it generates and downloads a video while its animation keeps running at
-- 60 Hz, then writes its frame figures and quits. The figures are printed; the issue's
-- target (the longest frame under 20 ms while the video generates and downloads) is
-- reported, not asserted: the machines that run this are shared and noisy.
local emulator = require "support.emulator"
local H = require "support.client"
local synthetic = require "support.synthetic"
local tools = require "support.tools"

local q = H.shell_quote

local VIDEO_BYTES = 16 * 1024 * 1024 -- enough that the download spans many frames

local sh = H.sh

local function env(vars)
  local parts = { "env", "-u", "OPENAI_API_KEY", "-u", "OPENAI_BASE_URL" }
  for name, value in pairs(vars) do parts[#parts + 1] = name .. "=" .. q(value) end
  return table.concat(parts, " ")
end

-- The game's report: "name value" lines.
local function read_report(path)
  local r = {}
  for name, value in H.read(path):gmatch("(%S+) ([^\n]*)") do r[name] = tonumber(value) or value end
  return r
end

describe("examples/love, a LÖVE game under xvfb", function()
  local ok, why = tools.require_tool("love", "examples/love is a LÖVE game")
  if ok then ok, why = tools.require_tool("xvfb-run", "LÖVE runs under a virtual display") end
  if not ok then
    it("needs love and xvfb-run", function() pending(why) end)
    return
  end

  local E, dir, root

  lazy_setup(function()
    E = emulator.start{ job_seconds = 1, api_key = H.KEY, video_bytes = VIDEO_BYTES }
    dir = H.tempdir()
    root = (sh("pwd")):match("[^\n]+")
    local out, built = sh("make -s LUA_VERSION=5.1")
    assert.are.equal(0, built, out)
  end)

  lazy_teardown(function()
    if E then E:stop() end
    if dir then H.rmdir(dir) end
  end)

  -- Runs the game unattended; returns its report and output.
  local function play(name, base_url, key)
    local output, report = dir .. "/" .. name .. ".mp4", dir .. "/" .. name .. ".txt"
    local out, status = sh(env{ OPENAI_BASE_URL = base_url, OPENAI_API_KEY = key or H.KEY,
      SORA_LUA_PATH = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua",
      SORA_LUA_CPATH = root .. "/build/5.1/?.so", SORA_LOVE_AUTO = "1",
      SORA_LOVE_OUTPUT = output, SORA_LOVE_REPORT = report, XDG_DATA_HOME = dir }
      .. " timeout 60 " .. tools.xvfb_run(dir) .. " love " .. q(root .. "/examples/love")
      .. " </dev/null")
    if H.exists(dir .. "/xvfb.log") then out = out .. "\n--- xvfb.log\n" .. H.read(dir .. "/xvfb.log") end
    assert.is_true(H.exists(report), "no report; the game said: " .. out)
    return read_report(report), status, out, output
  end

  it("generates and downloads a video while the animation runs", function()
    local r, status, out, output = play("boat", E.url)
    io.stderr:write(string.format("\n  [love] %s frames while generating and downloading %d MB:"
      .. " median frame %s ms, longest frame %s ms (target < 20), %s frames over 20 ms, longest"
      .. " frame's work %s ms, longest step(0) %s ms, %s status lines drawn\n", tostring(r.frames),
      VIDEO_BYTES / 2^20, tostring(r.median_frame_ms), tostring(r.longest_frame_ms), tostring(r.slow_frames), tostring(r.longest_work_ms),
      tostring(r.longest_step_ms), tostring(r.statuses_drawn)))
    assert.are.equal(0, status, out)
    assert.is_nil(r.error)
    assert.are.equal("completed", r.status)
    assert.are.equal(output, r.path)
    -- every byte arrived, in order: the file is the body the emulator served
    assert.is_true(synthetic.matches(output, VIDEO_BYTES))
    -- the game kept drawing while the job ran (about a second and a half at 60 Hz)
    assert.is_true(r.frames > 10, "the animation stopped: " .. tostring(r.frames) .. " frames")
    assert.is_true(r.longest_work_ms >= r.longest_step_ms)
    -- the progress reached the screen: creating, queued, the polls, the download's chunks
    assert.is_true(r.statuses_drawn >= 4, "status lines drawn: " .. tostring(r.statuses_drawn))
  end)

  it("shows a failure and exits non-zero without a key", function()
    local r, status, out = play("no-key", E.url, "")
    assert.are.equal(1, status, out)
    assert.matches("no API key", r.error)
  end)

  it("shows a failure and exits non-zero when the server is unreachable", function()
    local r, status, out = play("unreachable", "http://127.0.0.1:1/v1")
    assert.are.equal(1, status, out)
    assert.matches("^sora: connection", r.error)
    assert.is_nil(r.video)
  end)
end)
