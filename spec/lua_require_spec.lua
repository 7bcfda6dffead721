-- `require "sora"` compiles what every program needs and loads the rest on first use (issue
-- 18): a program that never waits, lists, runs a batch or verifies a webhook never loads those
-- modules; the first call loads one, and an argument error through a method not loaded yet
-- still names the program's line. Each case runs in a fresh interpreter: the suite's own
-- process has long loaded everything.
local H = require "support.client"

describe("require 'sora'", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  it("loads only the core, the argument checks, the tasks and itself", function()
    local out, ok = H.run_child([[
      require "sora"
      local names = {}
      for name in pairs(package.loaded) do
        if name:match("^sora") then names[#names + 1] = name end
      end
      table.sort(names)
      print(table.concat(names, " "))
    ]])
    assert.is_true(ok, out)
    assert.are.equal("sora sora.args sora.core sora.tasks", out:match("[^\n]*"))
  end)

  it("loads a module on the first call of its methods, whose argument errors name the caller's line", function()
    local out, ok = H.run_child(string.format("local KEY, URL = %q, %q\n", H.KEY, E.url) .. [[
      local sora = require "sora"
      local core = require "sora.core"
      local c = sora.new{ api_key = KEY, base_url = URL, max_retries = 0 }
      local video = assert(c:create{ prompt = "lazy" })
      local function check(module, name, methods, fn, line)
        local before = package.loaded[module] ~= nil
        local ok, err = pcall(fn)
        err = tostring(err)
        print(name, before, package.loaded[module] ~= nil, not ok and err:match(":(%d+): bad argument #%d+ to '"
          .. name .. "'") == tostring(line), methods[name] == require(module)[name], err)
      end
      check("sora.lists", "list", core.Client, function() c:list(5) end, debug.getinfo(1, "l").currentline)
      check("sora.lists", "pages", core.Client, function() c:pages(5) end, debug.getinfo(1, "l").currentline)
      check("sora.wait", "wait", core.Video, function() video:wait(5) end, debug.getinfo(1, "l").currentline)
      check("sora.wait", "refresh", core.Video, function() video:refresh(5) end, debug.getinfo(1, "l").currentline)
      check("sora.wait", "generate", core.Client, function() c:generate(5) end, debug.getinfo(1, "l").currentline)
      check("sora.wait", "create_and_wait", core.Client, function() c:create_and_wait(5) end, debug.getinfo(1, "l").currentline)
      check("sora.batch", "generate_many", core.Client, function() c:generate_many(5) end, debug.getinfo(1, "l").currentline)
      c:close()
    ]])
    assert.is_true(ok, out)
    local expected = {
      list = "false", pages = "true", wait = "false", refresh = "true", generate = "true",
      create_and_wait = "true", generate_many = "false",
    }
    local seen = 0
    for line in out:gmatch("[^\n]+") do
      local name, before, after, at_line, replaced = line:match("^(%S+)\t(%S+)\t(%S+)\t(%S+)\t(%S+)\t")
      if name then
        seen = seen + 1
        assert.are.equal(expected[name], before, line)
        assert.are.equal("true", after, line)
        assert.are.equal("true", at_line, line)
        assert.are.equal("true", replaced, line)
      end
    end
    assert.are.equal(7, seen, out)
  end)
end)
