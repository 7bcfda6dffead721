-- Neovim's loop drives sora: require("sora.luv").attach(client) inside nvim --headless uses
-- vim.loop and vim.schedule (a task's on_progress edits a buffer), with no step() at all.
local emulator = require "support.emulator"
local H = require "support.client"
local tools = require "support.tools"

local q = H.shell_quote

local sh = H.sh

describe("sora.luv in Neovim", function()
  it("generates through vim.loop, the callbacks free to use the editor", function()
    local ok, why = tools.require_tool("nvim", "this spec runs sora in nvim --headless")
    if not ok then return pending(why) end
    local build, built = sh("make -s LUA_VERSION=5.1")
    assert.are.equal(0, built, build)
    local E = emulator.start{ job_seconds = 1, api_key = H.KEY }
    local dir = H.tempdir()
    local root = (sh("pwd")):match("[^\n]+")
    local output, result = dir .. "/video.mp4", dir .. "/result.txt"
    local out, status = sh(("env SORA_ROOT=%s OPENAI_BASE_URL=%s OPENAI_API_KEY=%s SORA_NVIM_OUTPUT=%s"
      .. " SORA_NVIM_RESULT=%s XDG_CONFIG_HOME=%s XDG_DATA_HOME=%s XDG_CACHE_HOME=%s XDG_STATE_HOME=%s"
      .. " timeout 60 nvim --headless -u NONE -i NONE -n -c %s </dev/null")
      :format(q(root), q(E.url), q(H.KEY), q(output), q(result), q(dir), q(dir), q(dir), q(dir),
        q("luafile spec/support/loop_nvim.lua")))
    E:stop()
    local r = {}
    if H.exists(result) then
      for key, value in H.read(result):gmatch("(%S+) ([^\n]*)") do r[key] = value end
    end
    local video = H.exists(output) and H.read(output)
    H.rmdir(dir)
    io.stderr:write(("\n  [nvim loop] %s ms CPU while waiting\n"):format(tostring(r.cpu_ms)))
    assert.are.equal(0, status, out)
    assert.is_nil(r.error)
    assert.are.equal("completed", r.status, out)
    assert.is_true(tonumber(r.progress_lines) > 0)
    assert.are.equal(H.media("video.mp4"), video)
  end)
end)
