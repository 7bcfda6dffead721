-- The README's install and demo commands, run as a user would: `luarocks make` into a fresh
-- tree (for Lua 5.4 and for the 5.1 ABI that LuaJIT and Neovim use), and `make demo`.
local helper = require "support.client"
local emulator = require "support.emulator"

local q = helper.shell_quote

local function run(command)
  local p = assert(io.popen(command .. " 2>&1"))
  local out = p:read("*a")
  local ok = p:close()
  return out, ok == true or ok == 0
end

-- A copy of what the rockspec builds from, so that the build leaves the checkout untouched.
local function copy_sources(dir)
  local _, ok = run("cp -R csrc lua bin sora-scm-1.rockspec " .. q(dir))
  assert(ok, "cannot copy the sources")
end

describe("luarocks make", function()
  local E, dir
  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.2 }
    dir = helper.tempdir()
    copy_sources(dir)
  end)
  lazy_teardown(function()
    E:stop()
    helper.rmdir(dir)
  end)

  -- Builds for one Lua version, then uses the installed module from a clean interpreter.
  local function install_and_use(lua_version, interpreter)
    local tree = dir .. "/tree-" .. lua_version
    local out, ok = run(string.format("cd %s && luarocks --lua-version %s make --deps-mode=none --tree %s sora-scm-1.rockspec",
      q(dir), lua_version, q(tree)))
    assert(ok, out)
    local share, lib = tree .. "/share/lua/" .. lua_version, tree .. "/lib/lua/" .. lua_version
    assert.is_true(helper.exists(lib .. "/sora/core.so"))
    assert.is_true(helper.exists(share .. "/sora/emulator/media/video.mp4"))
    assert.is_true(helper.exists(tree .. "/bin/sora-emulator"))
    local code = string.format([[
      package.path = %q .. package.path
      package.cpath = %q .. package.cpath
      local sora = require "sora"
      local client = sora.new{ api_key = "sk-test", base_url = %q }
      local video = assert(client:create{ prompt = "installed" })
      print(sora._VERSION, package.searchpath and package.searchpath("sora.core", package.cpath) or "", video.status)
    ]], share .. "/?.lua;" .. share .. "/?/init.lua;", lib .. "/?.so;", E.url)
    out, ok = run("cd / && " .. interpreter .. " -e " .. q(code))
    assert(ok, out)
    return out
  end

  it("installs a working module for Lua 5.4", function()
    local out = install_and_use("5.4", "lua5.4")
    assert.matches("^0%.1%.0\t[^\n]*tree%-5%.4/lib/lua/5%.4/sora/core%.so\tqueued", out)
  end)

  it("installs a working 5.1-ABI module that LuaJIT loads", function()
    assert.matches("^0%.1%.0\t[^\n]*tree%-5%.1/lib/lua/5%.1/sora/core%.so\tqueued", install_and_use("5.1", "luajit"))
  end)
end)

describe("make demo", function()
  it("generates a playable MP4 against the emulator, showing progress", function()
    local dir = helper.tempdir()
    local out_file = dir .. "/demo.mp4"
    local out, ok = run("env -u OPENAI_API_KEY -u OPENAI_BASE_URL make -s demo DEMO_ARGS=" .. q(out_file))
    assert(ok, out)
    assert.matches("%] 100%% completed", out)
    assert.matches("wrote " .. out_file:gsub("%p", "%%%0"), out)
    local bytes = helper.read(out_file)
    assert.are.equal("ftyp", bytes:sub(5, 8))
    assert.are.equal(#helper.media("video.mp4"), #bytes)
    helper.rmdir(dir)
  end)
end)
