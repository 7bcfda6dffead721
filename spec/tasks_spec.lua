-- Tasks: client:spawn, step, run, task:result/done/cancel, and every public call yielding
-- inside a task, through the compiled module, libcurl, sockets and the emulator.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"
local T = require "support.tasks"

local now = T.now

-- A step(0) that does not block returns in a few ms; this bound only catches one that waits
-- for a response (the slow responses below take SLOW_MS), with room for a slow machine or a
-- sanitizer run beside another (a step under ASan took 0.53 s with valgrind on the other core).
local SLOW_MS = 1000
local STEP_BOUND = SLOW_MS / 1000 * 0.8

describe("tasks", function()
  local E, c, dir, clients

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    H.stop(E, c)
    H.rmdir(dir)
  end)

  -- A client of its own for a test, so that tasks left over elsewhere do not count.
  local function fresh(opts)
    opts = opts or {}
    opts.api_key, opts.base_url = opts.api_key or H.KEY, opts.base_url or E.url
    if opts.max_retries == nil then opts.max_retries = 0 end
    local client = sora.new(opts)
    clients[#clients + 1] = client
    return client
  end

  before_each(function()
    clients = {}
    E:clear_faults()
    E:clear_requests()
  end)

  after_each(function()
    for _, client in ipairs(clients) do client:close() end
    E:clear_faults()
  end)

  local function slow(method, path, times)
    E:fault{ action = "delay", delay_ms = SLOW_MS, method = method, path = path, times = times or 1 }
  end

  describe("spawn, done, result", function()
    it("passes the arguments and gives back every result after run", function()
      local k = fresh()
      local task = k:spawn(function(a, b, ...)
        return a + b, select("#", ...), ...
      end, 1, 2, nil, "x")
      assert.is_false(task:done())
      k:run()
      assert.is_true(task:done())
      assert.are.same({ 3, 2, nil, "x", n = 4 }, { n = select("#", task:result()), task:result() })
    end)

    it("runs the function only at the next step, not at spawn", function()
      local k = fresh()
      local ran = false
      local task = k:spawn(function() ran = true end)
      assert.is_false(ran)
      assert.are.equal(0, k:step(0))
      assert.is_true(ran)
      assert.is_true(task:done())
      assert.are.equal(0, select("#", task:result()))
    end)

    it("returns what sora calls return inside the task", function()
      local k = fresh()
      local task = k:spawn(function(prompt)
        local v = assert(k:create{ prompt = prompt })
        local again = assert(k:retrieve(v.id))
        return v.id, again.id, again.prompt
      end, "spawned prompt")
      assert.is_false(task:done())
      k:run()
      local id, again, prompt = task:result()
      assert.matches("^video_", id)
      assert.are.equal(id, again)
      assert.are.equal("spawned prompt", prompt)
    end)

    it("raises 'has not finished' for result() while the task runs", function()
      local k = fresh()
      slow("GET", "^/v1/videos/video_pending$")
      local task = k:spawn(function() return k:retrieve("video_pending") end)
      assert.has_error(function() task:result() end, "the task has not finished")
      k:step(0)
      assert.is_false(task:done())
      local ok, err = pcall(task.result, task)
      assert.is_false(ok)
      assert.matches("has not finished", err)
      k:run()
      assert.is_true(task:done())
      local v, rerr = task:result()
      assert.is_nil(v)
      assert.are.equal("not_found", rerr.kind)
    end)

    it("gives nil and the raised value for a task that raises", function()
      local k = fresh()
      local thrown = { "a table" }
      local t1 = k:spawn(function() error("plain failure") end)
      local t2 = k:spawn(function() error(thrown) end)
      local t3 = k:spawn(function() error("no position", 0) end)
      k:run()
      local v, err = t1:result()
      assert.is_nil(v)
      assert.matches("plain failure", err)
      v, err = t2:result()
      assert.is_nil(v)
      assert.are.equal(thrown, err)
      assert.are.same({ nil, "no position" }, { t3:result() })
      assert.is_true(t1:done() and t2:done() and t3:done())
    end)

    -- Lua's own assert: busted's replaces the metatable of a table it raises.
    local lua_assert = _G.assert

    it("gives the sora.Error object when assert(client:create{...}) fails in a task", function()
      local k = fresh()
      E:fault{ action = "respond", status = 500, method = "POST", path = "^/v1/videos$", times = 2 }
      local task = k:spawn(function()
        return lua_assert(k:create{ prompt = "will fail" })
      end)
      local raised = k:spawn(function()
        local v, err = k:create{ prompt = "will fail too" }
        if not v then error(err) end
        return v
      end)
      k:run()
      local v, err = task:result()
      assert.is_nil(v)
      if not T.assert_keeps_objects then
        -- PUC 5.1's and 5.2's assert only take a string message: the object cannot pass through.
        assert.matches("bad argument #2 to '[%w_]*assert' %(string expected, got table%)", err)
      else
        assert.is_true(sora.is_error(err))
        assert.are.equal("internal_server", err.kind)
        assert.are.equal(500, err.status)
        assert.matches("server had an error", err.message)
      end
      v, err = raised:result()
      assert.is_nil(v)
      assert.is_true(sora.is_error(err))
      assert.are.equal("internal_server", err.kind)
    end)

    it("raises at once for a non-function", function()
      assert.has_error(function() c:spawn("nope") end,
        "bad argument #1 to 'spawn' (function expected, got string)")
      assert.has_error(function() c:spawn() end,
        "bad argument #1 to 'spawn' (function expected, got nil)")
    end)

    it("leaves the other tasks intact when one errors", function()
      local k = fresh()
      local tasks, count = {}, 8
      for i = 1, count do
        tasks[i] = k:spawn(function()
          local v = assert(k:create{ prompt = "job " .. i })
          if i == 3 then error("task 3 broke after its request") end
          if i == 5 then error("early", 0) end
          v = assert(v:wait{ interval = 0.05, timeout = 10 })
          return i, v.status
        end)
      end
      -- one more that raises before any request
      local early = k:spawn(function() error("raised at once") end)
      k:run()
      for i = 1, count do
        assert.is_true(tasks[i]:done())
        local a, b = tasks[i]:result()
        if i == 3 then
          assert.is_nil(a)
          assert.matches("task 3 broke", b)
        elseif i == 5 then
          assert.is_nil(a)
          assert.are.equal("early", b)
        else
          assert.are.same({ i, "completed" }, { a, b })
        end
      end
      assert.matches("raised at once", select(2, early:result()))
      assert.are.equal(0, k:step(0))
    end)

    it("prints as a sora.Task with its status", function()
      local k = fresh()
      local task = k:spawn(function() end)
      assert.matches("sora.Task", tostring(task))
      k:run()
      assert.matches("sora.Task", tostring(task))
    end)
  end)

  -- Proves that `body` yields: with its request slowed down by 500 ms, every step(0) returns
  -- at once, it takes many steps, and a ticker task doing real requests on the same client
  -- makes progress meanwhile. Returns the results of body.
  local function yields(fault, body, opts)
    opts = opts or {}
    local k = opts.client or c
    local ticker_video = opts.ticker_video or assert(k:create{ prompt = "ticker" })
    E:clear_faults()
    if fault then
      local list = fault[1] and fault or { fault }
      for _, f in ipairs(list) do
        local spec = { action = "delay", delay_ms = SLOW_MS, times = 1 }
        for name, value in pairs(f) do spec[name] = value end
        E:fault(spec)
      end
    end
    local target = k:spawn(body)
    local ticks, during = 0, nil
    local ticker = k:spawn(function()
      while not target:done() do
        assert(k:retrieve(ticker_video.id))
        ticks = ticks + 1
      end
    end)
    local run = T.drive(k, function() return target:done() end, 10)
    during = ticks
    k:run()
    assert.is_true(run.finished, "the task did not finish")
    if tostring(target):find("failed") then
      error("the task raised: " .. tostring(select(2, target:result())), 0)
    end
    assert.is_true(run.longest < STEP_BOUND,
      string.format("a step(0) took %.3f s: the task blocked", run.longest))
    assert.is_true(run.elapsed >= SLOW_MS / 1000 * 0.9,
      string.format("finished in %.3f s: the slow fault was not hit", run.elapsed))
    assert.is_true(run.steps >= 20, "only " .. run.steps .. " steps")
    assert.is_true(during >= 3, "the other task made " .. during .. " requests meanwhile")
    assert.is_true(ticker:done())
    local ticked = { ticker:result() }
    assert.is_nil(ticked[2], "the ticker task failed: " .. tostring(ticked[2]))
    return target:result()
  end

  -- On PUC Lua 5.1 a for-in iterator cannot yield (the loop calls it across C), so there a
  -- call made from one blocks inside a task, by design; it must still give every video.
  local function iterates(fault, body)
    if not T.puc51 then return yields(fault, body) end
    local task = c:spawn(body)
    c:run()
    return task:result()
  end

  describe("inside a task every call yields instead of blocking", function()
    local done_video

    before_each(function()
      done_video = H.completed_video(c, E, { prompt = "source", seconds = "4" })
      E:clear_requests()
    end)

    local function path_of(id) return "^/v1/videos/" .. id .. "$" end

    it("create", function()
      local v, err = yields({ method = "POST", path = "^/v1/videos$" }, function()
        return c:create{ prompt = "slow create" }
      end)
      assert.is_nil(err)
      assert.are.equal("slow create", v.prompt)
    end)

    it("retrieve", function()
      local v, err = yields({ method = "GET", path = path_of(done_video.id) }, function()
        return c:retrieve(done_video.id)
      end)
      assert.is_nil(err)
      assert.are.equal(done_video.id, v.id)
    end)

    it("retrieve, failing with nil, err", function()
      local v, err = yields({ method = "GET", path = path_of("video_missing") }, function()
        return c:retrieve("video_missing")
      end)
      assert.is_nil(v)
      assert.are.equal("not_found", err.kind)
    end)

    it("list (a for-in iterator over several pages; blocks on PUC 5.1)", function()
      for i = 1, 3 do assert(c:create{ prompt = "listed " .. i }) end
      local n = iterates({ method = "GET", path = "^/v1/videos$", times = 2 }, function()
        local count = 0
        for v in c:list{ limit = 2 } do
          assert(v.id)
          count = count + 1
        end
        return count
      end)
      -- counted here, not in the task: fetching and scanning the emulator's whole request log
      -- inside the task made its last step(0) take a second under the gcstress pass
      local pages = #H.matching(E, "GET", "^/v1/videos$")
      assert.is_true(n >= 5, tostring(n))
      assert.is_true(pages >= 3, tostring(pages))
    end)

    it("pages (a for-in iterator; blocks on PUC 5.1)", function()
      for i = 1, 3 do assert(c:create{ prompt = "paged " .. i }) end
      local n = iterates({ method = "GET", path = "^/v1/videos$" }, function()
        local count = 0
        for page in c:pages{ limit = 2 } do
          assert.is_table(page.data)
          count = count + 1
        end
        return count
      end)
      assert.is_true(n >= 3, tostring(n))
    end)

    it("list and pages called as plain functions (no for-in)", function()
      for i = 1, 3 do assert(c:create{ prompt = "called " .. i }) end
      local n, p = yields({ method = "GET", path = "^/v1/videos$", times = 2 }, function()
        local count, pages = 0, 0
        local next_video = c:list{ limit = 2 }
        while next_video() do count = count + 1 end
        local next_page = c:pages{ limit = 2 }
        while next_page() do pages = pages + 1 end
        return count, pages
      end)
      assert.is_true(n >= 5 and p >= 3, n .. " videos, " .. p .. " pages")
    end)

    it("delete and video:delete", function()
      local a = H.completed_video(c, E, { prompt = "to delete" })
      local b = H.completed_video(c, E, { prompt = "to delete too" })
      local r1, r2 = yields({ { method = "DELETE", path = path_of(a.id) },
                              { method = "DELETE", path = path_of(b.id) } }, function()
        return assert(c:delete(a.id)), assert(b:delete())
      end)
      assert.are.same({ id = a.id, deleted = true, object = "video.deleted" }, r1)
      assert.are.equal(b.id, r2.id)
      assert.is_true(r2.deleted)
    end)

    it("remix and video:remix", function()
      local r1, r2 = yields({ method = "POST", path = "/remix$", times = 2 }, function()
        return assert(c:remix(done_video.id, { prompt = "remixed" })),
               assert(done_video:remix{ prompt = "remixed again" })
      end)
      assert.are.equal("remixed", r1.prompt)
      assert.are.equal(done_video.id, r1.remixed_from_video_id)
      assert.are.equal("remixed again", r2.prompt)
    end)

    it("download_content to a string", function()
      local bytes, err = yields({ method = "GET", path = "/content" }, function()
        return c:download_content(done_video.id)
      end)
      assert.is_nil(err)
      assert.are.equal(H.media("video.mp4"), bytes)
    end)

    it("download_content to a path, with on_progress", function()
      local out = dir .. "/tasks-path.mp4"
      local calls = 0
      local ok, err = yields({ method = "GET", path = "/content" }, function()
        return c:download_content(done_video.id, { path = out, on_progress = function(received)
          assert.is_number(received)
          calls = calls + 1
        end })
      end)
      assert.is_nil(err)
      assert.is_true(ok)
      assert.are.equal(H.media("video.mp4"), H.read(out))
      assert.is_true(calls >= 1)
    end)

    it("download_content to a sink", function()
      local chunks = {}
      local ok, err = yields({ method = "GET", path = "/content" }, function()
        return c:download_content(done_video.id, { variant = "thumbnail", sink = function(chunk)
          chunks[#chunks + 1] = chunk
        end })
      end)
      assert.is_nil(err)
      assert.is_true(ok)
      assert.are.equal(H.media("thumbnail.webp"), table.concat(chunks))
    end)

    it("edit", function()
      local v, err = yields({ method = "POST", path = "^/v1/videos/edits$" }, function()
        return c:edit{ video = done_video.id, prompt = "edited in a task" }
      end)
      assert.is_nil(err)
      assert.are.equal("edited in a task", v.prompt)
    end)

    it("extend", function()
      local v, err = yields({ method = "POST", path = "^/v1/videos/extensions$" }, function()
        return c:extend{ video = done_video.id, prompt = "and then", seconds = "4" }
      end)
      assert.is_nil(err)
      assert.are.equal("8", v.seconds)
    end)

    it("create_character and get_character", function()
      local made, got = yields({ { method = "POST", path = "^/v1/videos/characters$" },
                                 { method = "GET", path = "^/v1/videos/characters/" } }, function()
        local ch = assert(c:create_character{ video = H.FIXTURES .. "clip.mp4", name = "Ada" })
        return ch, assert(c:get_character(ch.id))
      end)
      assert.are.equal("Ada", made.name)
      assert.are.same(made, got)
    end)

    it("video:refresh", function()
      local v = assert(c:create{ prompt = "refresh me" })
      local r, err = yields({ method = "GET", path = path_of(v.id) }, function()
        return v:refresh()
      end)
      assert.is_nil(err)
      assert.are.equal(v, r)
    end)

    it("video:wait, with on_progress", function()
      local v = assert(c:create{ prompt = "wait in a task" })
      local seen = {}
      local r, err = yields({ method = "GET", path = path_of(v.id) }, function()
        return v:wait{ interval = 0.05, timeout = 10, on_progress = function(video)
          seen[#seen + 1] = video.progress
        end }
      end)
      assert.is_nil(err)
      assert.are.equal(v, r)
      assert.are.equal("completed", v.status)
      assert.is_true(#seen >= 1)
      assert.are.equal(100, seen[#seen])
    end)

    it("video:download", function()
      local out = dir .. "/tasks-video-download.mp4"
      local ok, err = yields({ method = "GET", path = "/content" }, function()
        return done_video:download{ path = out }
      end)
      assert.is_nil(err)
      assert.is_true(ok)
      assert.are.equal(H.media("video.mp4"), H.read(out))
    end)

    it("client:sleep", function()
      local t0 = now()
      local woke = yields(nil, function()
        c:sleep(SLOW_MS / 1000)
        return now()
      end)
      assert.is_true(woke - t0 >= SLOW_MS / 1000 * 0.95)
    end)

    it("create_and_wait", function()
      local v, err = yields({ method = "POST", path = "^/v1/videos$" }, function()
        return c:create_and_wait({ prompt = "created and waited" }, { interval = 0.05, timeout = 10 })
      end)
      assert.is_nil(err)
      assert.are.equal("completed", v.status)
    end)

    it("generate", function()
      local out = dir .. "/tasks-generated.mp4"
      local v, err = yields({ method = "POST", path = "^/v1/videos$" }, function()
        return c:generate{ prompt = "generated", output = out, interval = 0.05, timeout = 10 }
      end)
      assert.is_nil(err)
      assert.are.equal("completed", v.status)
      assert.are.equal(H.media("video.mp4"), H.read(out))
    end)

    it("a call inside pcall in a task (yields on 5.4 and LuaJIT; blocks on PUC 5.1, which cannot yield across pcall)",
      function()
        local k = fresh()
        local task = k:spawn(function()
          return pcall(k.retrieve, k, done_video.id)
        end)
        k:run()
        local ok, v = task:result()
        assert.is_true(ok, tostring(v))
        assert.are.equal(done_video.id, v.id)
      end)
  end)

  describe("step and run", function()
    it("step(0) returns the number of running tasks; run returns when all are done", function()
      local k = fresh()
      assert.are.equal(0, k:step(0))
      local a = k:spawn(function() k:sleep(0.2) end)
      local b = k:spawn(function() k:sleep(0.4) end)
      local d = k:spawn(function() return 1 end)
      assert.are.equal(2, k:step(0))
      assert.is_true(d:done())
      local elapsed = T.timed(k.run, k)
      assert.is_true(a:done() and b:done())
      assert.is_true(elapsed >= 0.3 and elapsed < 2, tostring(elapsed))
      assert.are.equal(0, k:step(0))
    end)

    it("step() without an argument does not wait", function()
      local k = fresh()
      k:spawn(function() k:sleep(5) end)
      local elapsed, r = T.timed(k.step, k)
      assert.are.equal(1, r[1])
      assert.is_true(elapsed < STEP_BOUND, tostring(elapsed))
    end)

    it("step(t) waits about t seconds, not longer, when nothing happens", function()
      local k = fresh()
      E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_stalled$" }
      local task = k:spawn(function() return k:retrieve("video_stalled") end)
      k:step(0)
      -- libcurl's own timers may end a step early now and then ("at most"), but the steps must
      -- really wait: a busy loop would make thousands of calls here.
      for _, t in ipairs({ 0.2, 0.5 }) do
        local calls, start, times = 0, now(), {}
        while now() - start < 2 do
          local elapsed, r = T.timed(k.step, k, t)
          assert.are.equal(1, r[1])
          assert.is_true(elapsed < t + 0.5, string.format("step(%g) took %.3f s", t, elapsed))
          calls = calls + 1
          times[#times + 1] = string.format("%.3f", elapsed)
        end
        assert.is_true(calls <= 2 / t + 4, string.format("%d calls of step(%g) in 2 s: %s",
          calls, t, table.concat(times, " ")))
      end
      assert.is_false(task:done())
      assert.is_true(task:cancel())
    end)

    it("step(t) with no task and no transfer waits at most t", function()
      local k = fresh()
      local elapsed, r = T.timed(k.step, k, 0.2)
      assert.are.equal(0, r[1])
      assert.is_true(elapsed < 0.7, tostring(elapsed))
    end)

    it("step(t) returns early when a sleeping task wakes", function()
      local k = fresh()
      local task = k:spawn(function() k:sleep(0.1) return "awake" end)
      local elapsed = T.timed(function()
        while k:step(5) > 0 do end
      end)
      assert.are.equal("awake", task:result())
      assert.is_true(elapsed < 1, tostring(elapsed))
    end)

    it("step(t) returns early when a response arrives", function()
      local k = fresh()
      slow("GET", "^/v1/videos/video_late$")
      local task = k:spawn(function() return k:retrieve("video_late") end)
      local elapsed = T.timed(function()
        while k:step(5) > 0 do end
      end)
      assert.is_true(task:done())
      assert.is_true(elapsed >= 0.4 and elapsed < 2, tostring(elapsed))
    end)

    it("raises for a bad argument", function()
      assert.has_error(function() c:step(-1) end,
        "bad argument #1 to 'step' (non-negative number expected, got -1)")
      assert.has_error(function() c:step(0 / 0) end,
        "bad argument #1 to 'step' (non-negative number expected, got NaN)")
      assert.has_error(function() c:step("1") end,
        "bad argument #1 to 'step' (non-negative number expected, got string)")
      assert.has_error(function() c:step({}) end,
        "bad argument #1 to 'step' (non-negative number expected, got table)")
      assert.has_error(function() c:step(false) end,
        "bad argument #1 to 'step' (non-negative number expected, got boolean)")
    end)

    it("a task that only yields is resumed at every step", function()
      local k = fresh()
      local n = 0
      local task = k:spawn(function()
        for _ = 1, 5 do
          n = n + 1
          coroutine.yield()
        end
        return n
      end)
      k:step(0)
      assert.is_true(n >= 1 and n <= 2, tostring(n)) -- before and after driving the transfers
      k:run()
      assert.are.equal(5, task:result())
    end)
  end)

  describe("cancel", function()
    it("stops a task that cancels itself, on every Lua", function()
      local k = fresh()
      local after = false
      local task
      task = k:spawn(function()
        assert(k:retrieve(assert(k:create{ prompt = "before cancelling" }).id))
        task:cancel()
        after = true
      end)
      k:run()
      assert.is_false(after, "the task went on after cancelling itself")
      local v, err = task:result()
      assert.is_nil(v)
      assert.are.equal("aborted", err.kind)
      assert.is_false(task:cancel())
    end)

    it("step and run raise when called from inside a task of the same client", function()
      local k = fresh()
      local task = k:spawn(function() k:step(0) end)
      k:run()
      local v, err = task:result()
      assert.is_nil(v)
      assert.matches("a task of the same client cannot call them", tostring(err))
    end)

    it("aborts the transfer of a task waiting on a stalled request", function()
      local k = fresh()
      local port = T.port(E.url)
      local before = T.open_peers(port)
      E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_stall_me$" }
      local stalled = k:spawn(function() return k:retrieve("video_stall_me") end)
      local go = false
      local other = k:spawn(function()
        while not go do k:sleep(0.01) end
        return assert(k:create{ prompt = "the other task" }).prompt
      end)
      local arrived = function()
        return #H.matching(E, "GET", "^/v1/videos/video_stall_me$") == 1
      end
      local run = T.drive(k, arrived, 5, 0.01)
      assert.is_true(run.finished, "the stalled request never reached the emulator")
      assert.is_false(stalled:done())

      -- the connection of the stalled request, seen from the emulator's side
      local peer
      if T.can_see_sockets() then
        local new = {}
        T.eventually(function()
          -- ESTABLISHED only: the emulator leaves closed connections in CLOSE_WAIT (see below)
          new = {}
          for p, state in pairs(T.open_peers(port)) do
            if not before[p] and state == "ESTABLISHED" then new[#new + 1] = p end
          end
          return #new > 0
        end)
        assert.are.equal(1, #new, "open connections of the client: " .. #new)
        peer = new[1]
      end

      assert.is_true(stalled:cancel())
      assert.is_true(stalled:done())
      local v, err = stalled:result()
      assert.is_nil(v)
      assert.is_true(sora.is_error(err))
      assert.are.equal("aborted", err.kind)
      assert.is_false(stalled:cancel())
      assert.matches("cancelled", tostring(stalled))

      if peer then
        -- the client closed its end: the emulator's side is half-closed (CLOSE_WAIT) or gone
        local closed = T.eventually(function() return T.open_peers(port)[peer] ~= "ESTABLISHED" end, 3)
        assert.is_true(closed, "the cancelled transfer's connection is still open on the client")
      end

      -- the other task goes on, and the client still works, blocking and in a task
      go = true
      assert.are.equal(1, k:step(0))
      k:run()
      assert.are.equal("the other task", other:result())
      local later = assert(k:create{ prompt = "after cancel" })
      assert.are.equal("after cancel", later.prompt)
      local again = k:spawn(function() return assert(k:retrieve(later.id)).id end)
      k:run()
      assert.are.equal(later.id, again:result())
    end)

    -- An emulator bug, found here: when the client closes a connection first, the emulator's
    -- Conn:fill marks it closed without closing the socket, so Loop:resume never closes it and
    -- it stays in CLOSE_WAIT until the garbage collector finds it.
    it("the emulator closes its end of the cancelled connection", function()
      if not T.can_see_sockets() then return end
      local k = fresh()
      local port = T.port(E.url)
      local before = T.open_peers(port)
      E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_hang_up$" }
      local stalled = k:spawn(function() return k:retrieve("video_hang_up") end)
      local new = {}
      local run = T.drive(k, function()
        new = {}
        for p, state in pairs(T.open_peers(port)) do
          if not before[p] and state == "ESTABLISHED" then new[#new + 1] = p end
        end
        return #new > 0 and #H.matching(E, "GET", "video_hang_up$") == 1
      end, 5, 0.01)
      assert.is_true(run.finished)
      assert.are.equal(1, #new)
      assert.is_true(stalled:cancel())
      local gone = T.eventually(function() return T.open_peers(port)[new[1]] == nil end, 3)
      assert.is_true(gone, "the emulator's socket is still " .. tostring(T.open_peers(port)[new[1]]))
    end)

    it("returns false for a finished task (returned or raised)", function()
      local k = fresh()
      local ok = k:spawn(function() return 1 end)
      local bad = k:spawn(function() error("x") end)
      k:run()
      assert.is_false(ok:cancel())
      assert.is_false(bad:cancel())
      assert.are.equal(1, ok:result())
      assert.matches("x", select(2, bad:result()))
    end)

    it("cancels a sleeping task and a task that never started", function()
      local k = fresh()
      local ran = false
      local sleeping = k:spawn(function() k:sleep(30) ran = "woke" end)
      k:step(0)
      local unstarted = k:spawn(function() ran = "started" end)
      assert.is_true(sleeping:cancel())
      assert.is_true(unstarted:cancel())
      assert.are.equal(0, k:step(0))
      k:run()
      assert.is_false(ran)
      for _, task in ipairs({ sleeping, unstarted }) do
        local v, err = task:result()
        assert.is_nil(v)
        assert.are.equal("aborted", err.kind)
      end
    end)

    it("one task cancels another that waits on a transfer", function()
      local k = fresh()
      E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_victim$" }
      local victim = k:spawn(function() return k:retrieve("video_victim") end)
      local killer = k:spawn(function()
        k:sleep(0.2)
        return victim:cancel()
      end)
      local elapsed = T.timed(k.run, k)
      assert.is_true(killer:result())
      assert.are.equal("aborted", select(2, victim:result()).kind)
      assert.is_true(elapsed < 3, tostring(elapsed))
    end)
  end)

  describe("mixing tasks with blocking calls", function()
    it("a blocking call from the main thread returns while tasks exist; they go on at step", function()
      local k = fresh()
      slow("GET", "^/v1/videos/video_tasked$")
      local task = k:spawn(function()
        local _, err = k:retrieve("video_tasked")
        local v = assert(k:create{ prompt = "after the slow one" })
        return err.kind, v.prompt
      end)
      k:step(0)
      assert.is_false(task:done())
      local v = assert(k:create{ prompt = "blocking from main" })
      assert.are.equal("blocking from main", v.prompt)
      local again = assert(k:retrieve(v.id))
      assert.are.equal(v.id, again.id)
      assert.is_false(task:done())
      k:run()
      assert.are.same({ "not_found", "after the slow one" }, { task:result() })
    end)

    it("a blocking wait from the main thread while a task waits too", function()
      local k = fresh()
      local task = k:spawn(function()
        return assert(k:create_and_wait({ prompt = "task job" }, { interval = 0.05 })).status
      end)
      k:step(0)
      local v = assert(k:create_and_wait({ prompt = "main job" }, { interval = 0.05 }))
      assert.are.equal("completed", v.status)
      k:run()
      assert.are.equal("completed", task:result())
    end)

    it("calls from a plain coroutine block rather than yield", function()
      local k = fresh()
      slow("GET", "^/v1/videos/video_plain$")
      local co = coroutine.create(function(id)
        local v, err = k:retrieve(id)
        local made = assert(k:create{ prompt = "from a coroutine" })
        k:sleep(0.05)
        return v, err, made.prompt
      end)
      local elapsed, r = T.timed(coroutine.resume, co, "video_plain")
      assert.are.equal("dead", coroutine.status(co))
      assert.is_true(r[1])
      assert.is_nil(r[2])
      assert.are.equal("not_found", r[3].kind)
      assert.are.equal("from a coroutine", r[4])
      assert.is_true(elapsed >= 0.4, tostring(elapsed))
    end)

    it("a plain coroutine inside a task blocks; the task's own calls yield", function()
      local k = fresh()
      local inner_status
      local task = k:spawn(function()
        local co = coroutine.create(function()
          return assert(k:create{ prompt = "inner" }).prompt
        end)
        local ok, prompt = coroutine.resume(co)
        inner_status = coroutine.status(co)
        return ok, prompt, assert(k:create{ prompt = "outer" }).prompt
      end)
      k:run()
      assert.are.equal("dead", inner_status)
      assert.are.same({ true, "inner", "outer" }, { task:result() })
    end)
  end)

  describe("callbacks inside tasks", function()
    local video

    before_each(function()
      video = H.completed_video(c, E, { prompt = "for callbacks" })
    end)

    it("on_progress and sink run and see their upvalues", function()
      local k = fresh()
      local progress, received, total = {}, 0, nil
      local label = "upvalue"
      local a = k:spawn(function()
        return k:download_content(video.id, { path = dir .. "/tasks-cb.mp4",
          on_progress = function(got, size)
            progress[#progress + 1] = label .. ":" .. got
            total = size
          end })
      end)
      local b = k:spawn(function()
        local parts = {}
        local ok, err = k:download_content(video.id, { sink = function(chunk)
          parts[#parts + 1] = chunk
          received = received + #chunk
        end })
        return ok, err, table.concat(parts)
      end)
      k:run()
      assert.is_true((a:result()))
      local ok, err, bytes = b:result()
      assert.is_true(ok)
      assert.is_nil(err)
      local expected = H.media("video.mp4")
      assert.are.equal(expected, bytes)
      assert.are.equal(#expected, received)
      assert.is_true(#progress >= 1)
      assert.matches("^upvalue:" .. #expected .. "%.?0?$", progress[#progress])
      assert.are.equal(#expected, total)
      assert.are.equal(expected, H.read(dir .. "/tasks-cb.mp4"))
    end)

    it("a raising sink fails its task with the raised error; the others are unaffected", function()
      local k = fresh()
      local thrown = setmetatable({}, { __tostring = function() return "thrown object" end })
      local bad = k:spawn(function()
        k:download_content(video.id, { sink = function() error("sink exploded") end })
        return "not reached"
      end)
      local bad_obj = k:spawn(function()
        k:download_content(video.id, { sink = function() error(thrown) end })
        return "not reached"
      end)
      local good = {}
      for i = 1, 3 do
        good[i] = k:spawn(function()
          local bytes = assert(k:download_content(video.id))
          local v = assert(k:create_and_wait({ prompt = "still fine " .. i }, { interval = 0.05 }))
          return #bytes, v.status
        end)
      end
      k:run()
      local v, err = bad:result()
      assert.is_nil(v)
      assert.matches("sink exploded", tostring(err))
      v, err = bad_obj:result()
      assert.is_nil(v)
      assert.are.equal(thrown, err)
      for i = 1, 3 do
        assert.are.same({ #H.media("video.mp4"), "completed" }, { good[i]:result() })
      end
      -- the client is still usable
      assert.are.equal(H.media("video.mp4"), assert(k:download_content(video.id)))
    end)

    it("a raising on_progress of video:wait fails only its task", function()
      local k = fresh()
      local bad = k:spawn(function()
        local v = assert(k:create{ prompt = "bad progress" })
        return v:wait{ interval = 0.05, on_progress = function() error("progress broke") end }
      end)
      local good = k:spawn(function()
        return assert(k:create_and_wait({ prompt = "good progress" }, { interval = 0.05,
          on_progress = function() end })).status
      end)
      k:run()
      assert.matches("progress broke", select(2, bad:result()))
      assert.are.equal("completed", good:result())
    end)
  end)
end)

describe("many tasks at once", function()
  local E
  local JOB_SECONDS = 1

  lazy_setup(function()
    E = emulator.start{ job_seconds = JOB_SECONDS, api_key = H.KEY }
  end)

  lazy_teardown(function()
    if E then E:stop() end
  end)

  it("64 jobs (create + wait) finish in about the time of a few", function()
    local k = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
    local wait_opts = { interval = 0.2, timeout = 60 }
    local one = T.timed(function()
      assert(k:create_and_wait({ prompt = "alone" }, wait_opts))
    end)
    local N = 64
    local jobs = {}
    local t0 = now()
    for i = 1, N do
      jobs[i] = k:spawn(function()
        local v = assert(k:create{ prompt = "job " .. i })
        v = assert(v:wait(wait_opts))
        return v.id, v.status
      end)
    end
    local longest, steps = 0, 0
    while true do
      local s = now()
      local running = k:step(0.05)
      longest = math.max(longest, now() - s)
      steps = steps + 1
      if running == 0 then break end
      assert.is_true(now() - t0 < 60, "the jobs did not finish in 60 s")
    end
    local all = now() - t0
    local ids = {}
    for i = 1, N do
      local id, status = jobs[i]:result()
      assert.are.equal("completed", status)
      ids[id] = true
    end
    local distinct = 0
    for _ in pairs(ids) do distinct = distinct + 1 end
    assert.are.equal(N, distinct)
    print(string.format("\n[tasks] %s: 1 job %.2f s; %d concurrent jobs %.2f s (%.1fx one job), "
      .. "%d steps, longest step %.3f s", jit and jit.version or _VERSION, one, N, all,
      all / one, steps, longest))
    assert.is_true(all < 10 * one, string.format("%d jobs took %.2f s, one took %.2f s", N, all, one))
    k:close()
  end)
end)
