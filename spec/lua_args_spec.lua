-- The Lua layer's argument checks (issue 7, rule 3): one message shape, the C core's
--   bad argument #N to 'NAME' (...)
-- naming the public call at the caller's line; values that cannot work (NaN, negative
-- durations, a concurrency of 0) raise instead of running nothing or never waking; callables
-- are accepted wherever a function is.
local H = require "support.client"

local NAN = 0 / 0
local THIS_FILE = "lua_args_spec%.lua"

-- The message fn raises, and whether it points at `line` of this file.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  return tostring(err)
end

local function line_of(message)
  return tonumber(message:match(THIS_FILE .. ":(%d+): "))
end

local function here()
  return debug.getinfo(2, "l").currentline
end

describe("argument checks of the Lua layer", function()
  local E, c, video

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = assert(c:create{ prompt = "for argument checks" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_requests()
  end)

  describe("generate_many", function()
    local jobs = { { prompt = "never sent" } }

    it("refuses a concurrency that would run nothing", function()
      for _, bad in ipairs({ 0, -1, 1.5 }) do
        assert.has_error(function() c:generate_many(jobs, { concurrency = bad }) end,
          string.format("bad argument #2 to 'generate_many' (option 'concurrency' must be a positive integer, got %.14g)", bad))
      end
      assert.has_error(function() c:generate_many(jobs, { concurrency = NAN }) end,
        "bad argument #2 to 'generate_many' (option 'concurrency' must be a positive integer, got NaN)")
      assert.has_error(function() c:generate_many(jobs, { concurrency = "2" }) end,
        "bad argument #2 to 'generate_many' (option 'concurrency' must be a number, got string)")
    end)

    it("refuses max_attempts below one, fractional or NaN", function()
      for _, bad in ipairs({ 0, -3, 2.5, NAN }) do
        local message = raised(function() c:generate_many(jobs, { max_attempts = bad }) end)
        assert.matches("bad argument #2 to 'generate_many' %(option 'max_attempts' must be a positive integer, got", message)
      end
    end)

    it("checks every job before sending anything", function()
      assert.has_error(function() c:generate_many({ { prompt = "a" }, "b" }) end,
        "bad argument #1 to 'generate_many' (jobs[2] must be a table, got string)")
      assert.has_error(function() c:generate_many({ { prompt = "a" }, { prompt = "b", timeout = NAN } }) end,
        "bad argument #1 to 'generate_many' (jobs[2]: option 'timeout' must be a non-negative number, got NaN)")
      assert.are.equal(0, #E:requests())
    end)
  end)

  describe("durations", function()
    it("sleep and step refuse NaN and negative numbers", function()
      assert.has_error(function() c:sleep(NAN) end,
        "bad argument #1 to 'sleep' (non-negative number expected, got NaN)")
      assert.has_error(function() c:sleep(-0.5) end,
        "bad argument #1 to 'sleep' (non-negative number expected, got -0.5)")
      assert.has_error(function() c:step(NAN) end,
        "bad argument #1 to 'step' (non-negative number expected, got NaN)")
      -- inside a task too, where a NaN sleep used to never wake
      local task = c:spawn(function() c:sleep(NAN) end)
      c:run()
      assert.matches("bad argument #1 to 'sleep' %(non%-negative number expected, got NaN%)",
        tostring(select(2, task:result())))
    end)

    it("wait refuses a NaN or negative timeout, interval or max_interval", function()
      for _, name in ipairs({ "timeout", "interval", "max_interval" }) do
        for _, bad in ipairs({ NAN, -1 }) do
          local message = raised(function() video:wait{ [name] = bad } end)
          assert.matches("bad argument #1 to 'wait' %(option '" .. name
            .. "' must be a non%-negative number, got " .. (bad ~= bad and "NaN" or "%-1") .. "%)", message)
        end
      end
      assert.are.equal(0, #E:requests())
    end)

    it("generate and create_and_wait check their wait options by their own names", function()
      assert.has_error(function() c:generate{ prompt = "x", timeout = -2 } end,
        "bad argument #1 to 'generate' (option 'timeout' must be a non-negative number, got -2)")
      assert.has_error(function() c:create_and_wait({ prompt = "x" }, { interval = NAN }) end,
        "bad argument #2 to 'create_and_wait' (option 'interval' must be a non-negative number, got NaN)")
      assert.are.equal(0, #E:requests())
    end)
  end)

  describe("lists", function()
    it("name the public call: list, pages", function()
      assert.has_error(function() c:list{ limit = 1.5 } end,
        "bad argument #1 to 'list' (option 'limit' must be an integer, got 1.5)")
      assert.has_error(function() c:pages{ limit = 1.5 } end,
        "bad argument #1 to 'pages' (option 'limit' must be an integer, got 1.5)")
      assert.has_error(function() c:list{ order = 1 } end,
        "bad argument #1 to 'list' (option 'order' must be a string, got number)")
      assert.has_error(function() c:pages("desc") end,
        "bad argument #1 to 'pages' (table expected, got string)")
      -- integral but past any integer: refused by the public call, not later by list_page
      assert.has_error(function() c:list{ limit = 1e20 } end,
        "bad argument #1 to 'list' (option 'limit' must be an integer, got 1e+20)")
      assert.has_error(function() c:pages{ limit = -2 ^ 64 } end,
        "bad argument #1 to 'pages' (option 'limit' must be an integer, got -1.844674407371e+19)")
      assert.are.equal(0, #E:requests())
    end)
  end)

  describe("a value that is not a table where one is expected", function()
    -- every public call of the Lua layer that takes an options or parameters table
    it("is refused by the public call, naming the argument's position", function()
      local webhooks = require("sora").webhooks
      local cases = {
        { function() video:wait(5) end, "bad argument #1 to 'wait' (table expected, got number)" },
        { function() video:refresh("x") end, "bad argument #1 to 'refresh' (table expected, got string)" },
        { function() video:download(5) end, "bad argument #2 to 'download_content' (table expected, got number)" },
        { function() video:remix(5) end, "bad argument #2 to 'remix' (table expected, got number)" },
        { function() video:delete(true) end, "bad argument #2 to 'delete' (table expected, got boolean)" },
        { function() c:create_and_wait(5) end, "bad argument #1 to 'create_and_wait' (table expected, got number)" },
        { function() c:create_and_wait({ prompt = "x" }, 5) end,
          "bad argument #2 to 'create_and_wait' (table expected, got number)" },
        { function() c:generate(5) end, "bad argument #1 to 'generate' (table expected, got number)" },
        { function() c:list(5) end, "bad argument #1 to 'list' (table expected, got number)" },
        { function() c:pages(5) end, "bad argument #1 to 'pages' (table expected, got number)" },
        { function() c:generate_many(5) end, "bad argument #1 to 'generate_many' (table expected, got number)" },
        { function() c:generate_many({}, 5) end, "bad argument #2 to 'generate_many' (table expected, got number)" },
        { function() webhooks.verify("{}", 5, "whsec_MTIz") end, "bad argument #2 to 'verify' (table expected, got number)" },
        { function() webhooks.verify("{}", {}, "whsec_MTIz", 5) end, "bad argument #4 to 'verify' (table expected, got number)" },
        { function() webhooks.sign("{}", "whsec_MTIz", 5) end, "bad argument #3 to 'sign' (table expected, got number)" },
      }
      for _, case in ipairs(cases) do
        -- raised at the program's line: a line of this file
        assert.are.equal(case[2], raised(case[1]):match("^[^\n]*" .. THIS_FILE .. ":%d+: (.*)$"))
      end
      assert.are.equal(0, #E:requests())
    end)

    -- video.wait(5) for video:wait(5): the number is self. The message says so, as the C
    -- core's endpoints do ("calling 'create' on bad self"), not "attempt to index a number".
    it("as self (a method called with a dot) is refused naming the call", function()
      local cases = {
        { function() video.wait(5) end, "wait", "sora.Video", "number" },
        { function() video.wait({}) end, "wait", "sora.Video", "table" },
        { function() video.refresh(5) end, "refresh", "sora.Video", "number" },
        { function() video.download({ path = "x.mp4" }) end, "download", "sora.Video", "table" },
        { function() video.remix({ prompt = "x" }) end, "remix", "sora.Video", "table" },
        { function() video.delete() end, "delete", "sora.Video", "nil" },
        { function() c.generate({ prompt = "x" }) end, "generate", "sora.Client", "table" },
        { function() c.create_and_wait({ prompt = "x" }) end, "create_and_wait", "sora.Client", "table" },
        { function() c.list({}) end, "list", "sora.Client", "table" },
        { function() c.pages({}) end, "pages", "sora.Client", "table" },
        { function() c.generate_many({}) end, "generate_many", "sora.Client", "table" },
        { function() c.sleep(1) end, "sleep", "sora.Client", "number" },
        { function() c.spawn(print) end, "spawn", "sora.Client", "function" },
        { function() c.step(0) end, "step", "sora.Client", "number" },
        { function() c.run() end, "run", "sora.Client", "nil" },
        { function() c.socket_ready(3, true, false) end, "socket_ready", "sora.Client", "number" },
        { function() c.timeout_due() end, "timeout_due", "sora.Client", "nil" },
        { function() c.create({ prompt = "x" }) end, "create", "sora.Client", "table" }, -- the C core's
      }
      for _, case in ipairs(cases) do
        assert.are.equal(string.format("calling '%s' on bad self (%s expected, got %s)",
          case[2], case[3], case[4]), raised(case[1]):match("^[^\n]*" .. THIS_FILE .. ":%d+: (.*)$"))
      end
      assert.are.equal(0, #E:requests())
    end)
  end)

  describe("positions", function()
    it("point at the caller's line, however deep in the layer the check runs", function()
      local line, message = here(), raised(function() c:list{ limit = 1.5 } end)
      assert.are.equal(line, line_of(message), message)
      line, message = here(), raised(function() c:generate_many({}, { concurrency = 0 }) end)
      assert.are.equal(line, line_of(message), message)
      line, message = here(), raised(function() video:wait{ timeout = NAN } end)
      assert.are.equal(line, line_of(message), message)
      line, message = here(), raised(function() c:sleep(NAN) end)
      assert.are.equal(line, line_of(message), message)
      line, message = here(), raised(function() c:spawn(42) end)
      assert.are.equal(line, line_of(message), message)
    end)

    it("an error of the C core reached through the layer points at the caller's line too", function()
      -- generate passes its create parameters on to the C core's create
      local line, message = here(), raised(function() c:generate{ promt = "typo" } end)
      assert.are.equal(line, line_of(message), message)
      line, message = here(), raised(function() c:create_and_wait({ prompt = 5 }) end)
      assert.are.equal(line, line_of(message), message)
    end)

    it("and names the public call, not the endpoint it uses", function()
      assert.has_error(function() c:generate{ promt = "typo" } end,
        "bad argument #1 to 'generate' (unknown option 'promt' (did you mean 'prompt'?))")
      assert.matches("^[^\n]*bad argument #1 to 'create_and_wait' %(field 'seconds' must be a string or an integer",
        raised(function() c:create_and_wait({ prompt = "x", seconds = {} }) end))
      E:clear_requests()
      local jobs = { { prompt = "fine", interval = 0.03 }, { promt = "typo" }, { prompt = "never started" } }
      assert.has_error(function() c:generate_many(jobs, { concurrency = 1 }) end,
        "bad argument #1 to 'generate_many' (jobs[2]: unknown option 'promt' (did you mean 'prompt'?))")
      assert.are.equal(0, #H.matching(E, "POST", "^/v1/videos$")) -- every job checked first
      -- a task's create is made the same way, and still yields
      local task = c:spawn(function() return c:generate{ prompt = "in a task", interval = 0.03 } end)
      c:run()
      assert.are.equal("completed", task:result().status)
    end)
  end)

  describe("callables", function()
    local function callable(fn)
      return setmetatable({}, { __call = function(_, ...) return fn(...) end })
    end

    it("spawn takes a table with __call", function()
      local task = c:spawn(callable(function(a, b) return a + b end), 2, 3)
      c:run()
      assert.are.equal(5, task:result())
      assert.has_error(function() c:spawn(setmetatable({}, {})) end,
        "bad argument #1 to 'spawn' (function expected, got table)")
    end)

    it("wait's and generate's on_progress, and generate_many's on_result", function()
      local seen = {}
      local v = assert(c:create{ prompt = "callable progress" })
      assert(v:wait{ interval = 0.03, timeout = 10,
        on_progress = callable(function(x) seen[#seen + 1] = x.progress end) })
      assert.is_true(#seen >= 1)
      local generated = {}
      assert(c:generate{ prompt = "callable generate", interval = 0.03, timeout = 10,
        on_progress = callable(function(x) generated[#generated + 1] = x.status end) })
      assert.is_true(#generated >= 1)
      local results = {}
      local videos = c:generate_many({ { prompt = "callable result", interval = 0.03 } },
        { on_result = callable(function(i, x) results[i] = x.status end) })
      assert.are.equal("completed", videos[1].status)
      assert.are.same({ "completed" }, results)
    end)
  end)
end)
