-- The non-blocking model where users live: a C program with a 60 Hz frame loop
-- (examples/host.c) and Neovim (the plugin's lua/sora/nvim), each run against the
-- emulator. Timing figures are printed, never asserted: the machines are shared and noisy.
local emulator = require "support.emulator"
local H = require "support.client"
local tools = require "support.tools"

local q = H.shell_quote

-- Runs a shell command; returns its output (stderr included) and its exit status. The
-- status comes from the shell, since io.popen's close tells nothing on Lua 5.1 and LuaJIT.
local sh = H.sh

-- env NAME=value ... for a command line.
local function env(vars)
  local parts = { "env" }
  for name, value in pairs(vars) do parts[#parts + 1] = name .. "=" .. q(value) end
  return table.concat(parts, " ")
end

-- "name number" lines into a table.
local function figures(out)
  local found = {}
  for name, value in out:gmatch("([%w_]+) (%-?[%d.]+)\n") do found[name] = tonumber(value) end
  return found
end

local function is_mp4(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(8) or ""
  f:close()
  return head:sub(5, 8) == "ftyp"
end

local function report(what, text)
  io.stderr:write("\n  [", what, "] ", text, "\n")
end

describe("embedding", function()
  local E, dir, root

  lazy_setup(function()
    E = emulator.start{ job_seconds = 1, api_key = H.KEY }
    dir = H.tempdir()
    root = (sh("pwd")):match("[^\n]+")
  end)

  lazy_teardown(function()
    if E then E:stop() end
    H.rmdir(dir)
  end)

  describe("examples/host.c, a 60 Hz frame loop embedding Lua 5.4", function()
    it("gets all 16 videos while step(0) runs once a frame", function()
      local built, why = tools.build_host()
      if not built then return pending(why) end
      local out_dir = dir .. "/host"
      assert(os.execute("mkdir " .. q(out_dir)))
      local out, status = sh(env{ SORA_BASE_URL = E.url, SORA_API_KEY = H.KEY, SORA_JOBS = "16",
        SORA_OUT_DIR = out_dir, SORA_HOST_SECONDS = "25" } .. " timeout 60 build/host")
      local f = figures(out)
      report("host.c", string.format("%s frames, longest frame %s ms, longest step(0) %s ms, %s/16 arrived",
        tostring(f.frames), tostring(f.longest_frame_ms), tostring(f.longest_step_ms), tostring(f.arrived)))
      assert.are.equal(0, status, out)
      assert.are.equal(16, f.arrived, out)
      assert.are.equal(0, f.failed, out)
      assert.is_true(f.frames > 0, out)
      assert.is_true(f.longest_frame_ms >= f.longest_step_ms, out)
      local files = H.ls(out_dir)
      assert.are.equal(16, #files)
      for _, name in ipairs(files) do assert.is_true(is_mp4(out_dir .. "/" .. name), name) end
    end)

    it("exits non-zero when the generations fail", function()
      local built, why = tools.build_host()
      if not built then return pending(why) end
      -- port 1 on loopback refuses at once; the retries' backoff makes this take ~1.5 s
      local out, status = sh(env{ SORA_BASE_URL = "http://127.0.0.1:1/v1", SORA_API_KEY = H.KEY,
        SORA_JOBS = "2", SORA_HOST_SECONDS = "25" } .. " timeout 60 build/host")
      assert.are.equal(1, status, out)
      assert.are.equal(0, figures(out).arrived, out)
      assert.matches("generation 1: .*connection", out)
    end)
  end)

  describe("the Neovim plugin's generate in nvim --headless", function()
    it("gets the video while the editor keeps answering", function()
      local ok, why = tools.require_tool("nvim", "the plugin runs in nvim --headless")
      if not ok then return pending(why) end
      local build, built = sh("make -s LUA_VERSION=5.1")
      assert.are.equal(0, built, build)
      local output, result = dir .. "/nvim.mp4", dir .. "/nvim-result.txt"
      -- XDG_* keep Neovim's own state and logs out of the user's home
      local out, status = sh(env{ SORA_ROOT = root, OPENAI_BASE_URL = E.url, OPENAI_API_KEY = H.KEY,
        SORA_NVIM_OUTPUT = output, SORA_NVIM_RESULT = result, XDG_CONFIG_HOME = dir,
        XDG_DATA_HOME = dir, XDG_CACHE_HOME = dir, XDG_STATE_HOME = dir }
        .. " timeout 60 nvim --headless -u NONE -i NONE -n"
        .. " -c " .. q("luafile spec/support/nvim_harness.lua") .. " </dev/null")
      assert.are.equal(0, status, out)
      assert.is_true(H.exists(result), "no result file; nvim said: " .. out)
      local r = {}
      for key, value in H.read(result):gmatch("(%S+) ([^\n]*)") do r[key] = value end
      report("nvim", string.format("%s ticks of a 10 ms timer in %s ms, longest gap %s ms",
        tostring(r.ticks), tostring(r.elapsed_ms), tostring(r.longest_gap_ms)))
      assert.is_nil(r.error)
      assert.are.equal("completed", r.status)
      assert.are.equal(output, r.path)
      assert.is_true(is_mp4(output))
      assert.are.equal(H.media("video.mp4"), H.read(output))
      assert.is_true(tonumber(r.ticks) > 5, "the editor stopped ticking: " .. tostring(r.ticks))
    end)
  end)
end)
