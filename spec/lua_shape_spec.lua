-- The Lua layer's shape (issue 7, "Shape"): a reader finds waiting, the iterators, batches,
-- tasks and the argument checks by file name, `sora` (init.lua) wires them to the client and
-- video methods, and `make install` installs every one of them.
local H = require "support.client"
local core = require "sora.core"

local MODULES = {
  ["sora.args"] = { "fail", "check", "options" },
  ["sora.wait"] = { "refresh", "wait", "create_and_wait", "generate" },
  ["sora.lists"] = { "pages", "list" },
  ["sora.batch"] = { "generate_many" },
  ["sora.tasks"] = { "spawn", "step", "run", "await", "sleep", "join" },
}

describe("the Lua layer's files", function()
  it("each topic is a module of its own", function()
    for name, functions in pairs(MODULES) do
      local module = require(name)
      for _, fn in ipairs(functions) do
        assert.is_function(module[fn], name .. "." .. fn)
      end
    end
  end)

  it("the client and video methods are those modules' functions, from their first call", function()
    require "sora"
    -- until then each is a stub that loads its module (lua_require_spec.lua): a call, even
    -- one that raises, puts the module's function in its place
    for _, name in ipairs({ "wait", "refresh" }) do pcall(core.Video[name]) end
    for _, name in ipairs({ "create_and_wait", "generate", "pages", "list", "generate_many" }) do
      pcall(core.Client[name])
    end
    local wait, lists, batch = require "sora.wait", require "sora.lists", require "sora.batch"
    assert.are.equal(wait.wait, core.Video.wait)
    assert.are.equal(wait.refresh, core.Video.refresh)
    assert.are.equal(wait.create_and_wait, core.Client.create_and_wait)
    assert.are.equal(wait.generate, core.Client.generate)
    assert.are.equal(lists.pages, core.Client.pages)
    assert.are.equal(lists.list, core.Client.list)
    assert.are.equal(batch.generate_many, core.Client.generate_many)
  end)

  it("make install copies every module", function()
    local dir = H.tempdir()
    local p = io.popen("make -s install DESTDIR=" .. H.shell_quote(dir) .. " PREFIX=/usr 2>&1")
    local out = p:read("*a")
    local ok = p:close()
    assert.is_true(ok == true or ok == 0, out)
    for name in pairs(MODULES) do
      local path = dir .. "/usr/share/lua/5.4/" .. name:gsub("%.", "/") .. ".lua"
      assert.is_true(H.exists(path), path)
    end
    assert.is_true(H.exists(dir .. "/usr/share/lua/5.4/sora/init.lua"))
    H.rmdir(dir)
  end)
end)
