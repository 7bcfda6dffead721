-- `require "sora"` compiles what every program needs and loads the rest on first use (issue
-- 18): a program that never spawns a task, waits, lists, runs a batch or verifies a webhook
-- never loads those modules (sora.args and sora.tasks included: until sora.tasks is loaded no
-- task exists, and a call blocks on its transfer); the first call loads one, and an argument
-- error through a method not loaded yet still names the program's line. Each case runs in a
-- fresh interpreter: the suite's own process has long loaded everything.
local H = require "support.client"

describe("require 'sora'", function()
  local E, c, video_id

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video_id = assert(c:create{ prompt = "made before the children" }).id
  end)

  -- Runs code in a fresh interpreter after `local sora, c, ID, loaded = ...`: a client of the
  -- emulator, a video's id, and loaded(name), which says whether package.loaded has it.
  local function child(code)
    return H.run_child(string.format("local KEY, URL, ID = %q, %q, %q\n", H.KEY, E.url, video_id) .. [[
      local sora = require "sora"
      local c = sora.new{ api_key = KEY, base_url = URL, max_retries = 0 }
      local function loaded(name) return package.loaded[name] ~= nil end
    ]] .. code)
  end

  lazy_teardown(function()
    H.stop(E, c)
  end)

  it("loads only the core and itself, and no more for a client's retrieve, a plain coroutine's and its close", function()
    local out, ok = child([[
      assert(c:retrieve(ID))
      assert(coroutine.wrap(function() return c:retrieve(ID) end)()) -- no task: it blocks
      local video, err = c:retrieve("video_absent")
      assert(video == nil and err.kind == "not_found", tostring(err))
      c:close()
      local names = {}
      for name in pairs(package.loaded) do
        if name:match("^sora") then names[#names + 1] = name end
      end
      table.sort(names)
      print(table.concat(names, " "))
    ]])
    assert.is_true(ok, out)
    assert.are.equal("sora sora.core", out:match("[^\n]*"))
  end)

  it("names the program's line in an endpoint's argument error without sora.args", function()
    local out, ok = child([[
      local ok, err = pcall(c.retrieve, c, 5); local line = debug.getinfo(1, "l").currentline
      print(not ok and err:match(":(%d+): bad argument #1 to 'retrieve'") == tostring(line), loaded("sora.args"))
    ]])
    assert.is_true(ok, out)
    assert.are.equal("true\tfalse", out:match("[^\n]*"))
  end)

  -- Each entry point of sora.tasks called first: it loads the module and works as it does
  -- once loaded; an argument error names the program's line.
  local FIRST = {
    sleep = [[
      local ok, err = pcall(c.sleep, c, "1"); local line = debug.getinfo(1, "l").currentline
      assert(not ok and err:match(":(%d+): bad argument #1 to 'sleep'") == tostring(line), err)
      c:sleep(0)
    ]],
    spawn = [[
      local task = c:spawn(function() return c:retrieve(ID) end)
      assert(loaded("sora.tasks") and not task:done())
      c:run()
      assert(assert(task:result()).id == ID)
    ]],
    step = [[
      local ok, err = pcall(c.step, c, -1); local line = debug.getinfo(1, "l").currentline
      assert(not ok and err:match(":(%d+): bad argument #1 to 'step'") == tostring(line), err)
      assert(c:step(0) == 0)
    ]],
    run = [[
      c:run()
      local task = c:spawn(function() c:sleep(0.01); return c:retrieve(ID) end)
      c:run()
      assert(assert(task:result()).id == ID)
    ]],
    timeout_due = [[
      c:watch(function() end, function() end)
      assert(c:timeout_due() == 0)
    ]],
    socket_ready = [[
      local ok, err = pcall(c.socket_ready, c, 0); local line = debug.getinfo(1, "l").currentline
      assert(not ok and err:match(":(%d+): calling 'socket_ready' on a sora.Client that no loop watches") == tostring(line), err)
      c:watch(function() end, function() end)
      assert(c:socket_ready(0, false, false) == 0)
    ]],
    ["close, then spawn"] = [[
      c:close()
      assert(not loaded("sora.tasks")) -- nothing to cancel
      local ok, err = pcall(c.spawn, c, function() end)
      assert(not ok and err:match("calling 'spawn' on a closed sora.Client"), err)
    ]],
    ["close with a task"] = [[
      local task = c:spawn(function() c:sleep(10) end)
      c:step(0)
      c:close()
      local value, err = task:result()
      assert(value == nil and err.kind == "aborted", tostring(err))
    ]],
    ["a task's retrieve when sora.tasks came first"] = [[
      package.loaded["sora"], package.loaded["sora.tasks"] = nil, nil
      local tasks = require "sora.tasks"
      sora = require "sora"
      c = sora.new{ api_key = KEY, base_url = URL, max_retries = 0 }
      local seen
      local task = tasks.spawn(c, function() seen = tasks.current(c) ~= nil; return c:retrieve(ID) end)
      c:run()
      assert(seen and assert(task:result()).id == ID)
    ]],
  }
  for name, code in pairs(FIRST) do
    it("works when " .. name .. " is called first", function()
      local out, ok = child(code .. [[
        print("done", loaded("sora.tasks"))
      ]])
      assert.is_true(ok, out)
      assert.are.equal("done\ttrue", out:match("[^\n]*"), out)
    end)
  end

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
