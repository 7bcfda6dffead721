-- Which sora a run tests. make test-all runs the suite on Lua 5.4, 5.1 and LuaJIT against the
-- rocks of `make rock` installed into build/rocks/<version> ($SORA_ROCK_TREE): there every
-- module, the C core, the specs' child interpreters and the emulator must come from that tree,
-- never from the checkout. Any other run tests the checkout, and the same checks say so.
local H = require "support.client"

local tree = os.getenv("SORA_ROCK_TREE")
local version = rawget(_G, "jit") and "5.1" or _VERSION:match("Lua (%d%.%d)")

-- PUC Lua 5.1 has no package.searchpath.
local SEARCHPATH = [[
  local function searchpath(name, path)
    for template in path:gmatch("[^;]+") do
      local file = template:gsub("%?", (name:gsub("%.", "/")))
      local f = io.open(file, "rb")
      if f then f:close() return file end
    end
  end
]]
local searchpath = assert((loadstring or load)(SEARCHPATH .. " return searchpath"))()

local function starts_with(s, prefix) return s:sub(1, #prefix) == prefix end

-- Where the Lua functions of a module were loaded from.
local function loaded_from(name)
  for _, value in pairs(require(name)) do
    if type(value) == "function" and debug.getinfo(value, "S").what == "Lua" then
      return (debug.getinfo(value, "S").source:gsub("^@", ""))
    end
  end
  error("no Lua function in " .. name)
end

-- The prefixes the Lua modules and the C core must resolve under.
local function expected()
  if tree then
    return tree .. "/share/lua/" .. version .. "/", tree .. "/lib/lua/" .. version .. "/"
  end
  local _, cpath = H.interpreter()
  return "lua/", cpath:match("^(.*/)%?%.so$")
end

describe("the sora under test", function()
  local lua_prefix, lib_prefix = expected()

  it("resolves sora, its Lua modules and sora.core " .. (tree and "into the rock tree" or "into the checkout"), function()
    assert.truthy(starts_with(searchpath("sora", package.path), lua_prefix))
    assert.truthy(starts_with(searchpath("sora.core", package.cpath), lib_prefix))
    for _, name in ipairs({ "sora.tasks", "sora.wait", "sora.lists", "sora.emulator.process" }) do
      local source = loaded_from(name)
      assert.truthy(starts_with(source, lua_prefix), name .. " from " .. source)
    end
  end)

  it("is what a child interpreter of the specs loads too", function()
    local out, ok = H.run_child(SEARCHPATH .. [[
      require "sora"
      print(searchpath("sora", package.path))
      print(searchpath("sora.core", package.cpath))
    ]])
    assert(ok, out)
    local lua_file, core_file = out:match("^([^\n]+)\n([^\n]+)\n$")
    assert.truthy(lua_file and starts_with(lua_file, lua_prefix), out)
    assert.truthy(core_file and starts_with(core_file, lib_prefix), out)
  end)
end)

describe("the installed rocks", function()
  if not tree then return end
  local rocks = tree .. "/lib/luarocks/rocks-" .. version .. "/"

  -- The files a rock installed, from its rock_manifest.
  local function manifest(rock)
    local p = assert(io.popen("ls " .. H.shell_quote(rocks .. rock)))
    local rock_version = p:read("*l")
    p:close()
    return H.read(rocks .. rock .. "/" .. rock_version .. "/rock_manifest")
  end

  it("keep the emulator out of the client rock, which depends on lua-cjson alone", function()
    local client = manifest("sora")
    assert.matches('%["core%.so"%]', client)
    assert.matches('%["init%.lua"%]', client)
    assert.is_nil(client:find("emulator", 1, true))
    local rockspec = H.read(rocks .. "sora/" .. H.ls(rocks .. "sora")[1] .. "/sora-"
      .. H.ls(rocks .. "sora")[1] .. ".rockspec")
    local deps = rockspec:match("\ndependencies = (%b{})")
    assert.matches('"lua%-cjson"', deps)
    assert.is_nil(deps:find("socket", 1, true))
  end)

  it("give the emulator its own rock and command", function()
    local emulator = manifest("sora-emulator")
    assert.matches('%["api%.lua"%]', emulator)
    assert.matches('%["video%.mp4"%]', emulator)
    assert.matches('%["sora%-emulator"%]', emulator)
    local p = assert(io.popen(H.shell_quote(tree .. "/bin/sora-emulator") .. " --help 2>&1"))
    local out = p:read("*a")
    p:close()
    assert.matches("sora%-emulator", out)
    assert.matches("%-%-port", out)
  end)
end)
