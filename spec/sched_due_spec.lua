-- One owner of "work is due" (issue 16, class 3): every path that finishes a transfer or wakes
-- a task tells the host's loop, a refused call changes nothing, and spawn on a closed client
-- raises as every other call on it does.
local emulator = require "support.emulator"
local H = require "support.client"
local sora = require "sora"
local sora_luv = require "sora.luv"

local has_luv, uv = pcall(require, "luv")

describe("work that becomes due", function()
  local E, video

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.2, api_key = H.KEY }
    local c = sora.new{ base_url = E.url, api_key = H.KEY }
    video = H.completed_video(c, E, { prompt = "due" })
    c:close()
  end)

  lazy_teardown(function()
    E:stop()
  end)

  local function new_client()
    return sora.new{ base_url = E.url, api_key = H.KEY }
  end

  describe("on a client a luv loop drives", function()
    before_each(function()
      if not has_luv then pending("luv is not installed (Debian lua-luv)") end
    end)

    -- A task that awaits a retrieve, started by the loop: it is awaiting when this returns.
    local function awaiting_task(client)
      local task = client:spawn(function() return assert(client:retrieve(video.id)).id end)
      while not client:_state().tasks.awaiting or not next(client:_state().tasks.awaiting) do
        uv.run("once")
      end
      return task
    end

    local blocking = {
      { "a blocking call", function(client) assert(client:retrieve(video.id)) end },
      { "a sleep outside any task", function(client) client:sleep(0.3) end },
      { "step", function(client) client:step(0.3) end },
      { "transfer:wait", function(client)
        assert(client:_start("retrieve", video.id):wait())
      end },
    }
    for _, case in ipairs(blocking) do
      it("resumes a task whose transfer " .. case[1] .. " finished", function()
        local client = new_client()
        local detach = sora_luv.attach(client, uv)
        local task = awaiting_task(client)
        E:fault{ method = "GET", path = "/videos/" .. video.id .. "$", action = "delay",
                 delay_ms = 200 }
        case[2](client)
        uv.run() -- returns once nothing is left to do: the task must be done by then
        assert.is_true(task:done(), "uv.run() returned with the task unfinished")
        assert.are.equal(video.id, (task:result()))
        detach()
        client:close()
        uv.run("nowait")
      end)
    end

    it("resumes a joiner whose task was cancelled from outside the loop", function()
      local client = new_client()
      local detach = sora_luv.attach(client, uv)
      local sleeper = client:spawn(function() client:sleep(60) end)
      local joiner = client:spawn(function()
        require("sora.tasks").join(client, { sleeper }) -- as generate_many's workers
        return "joined"
      end)
      uv.run("nowait")
      uv.run("nowait")
      assert.is_false(joiner:done())
      sleeper:cancel() -- from the main thread: no pass follows unless the host is told
      local timer = uv.new_timer()
      timer:start(5000, 0, function() timer:close() end) -- a bound, should it never be told
      while not joiner:done() and timer:is_active() do uv.run("once") end
      if not timer:is_closing() then timer:close() end
      assert.are.equal("joined", (joiner:result()))
      detach()
      client:close()
      uv.run("nowait")
    end)
  end)

  describe("a refused call changes nothing", function()
    it("step from inside on_progress resumes no task before it raises", function()
      local client = new_client()
      local ran = false
      local task = client:spawn(function()
        ran = true
        return assert(client:retrieve(video.id)).id
      end)
      local refused
      assert(client:download_content(video.id, { on_progress = function()
        if refused == nil then refused = select(2, pcall(client.step, client, 0)) end
      end }))
      assert.matches("calling 'step' from inside a callback", refused)
      assert.is_false(ran)
      client:run()
      assert.are.equal(video.id, (task:result()))
      client:close()
    end)

    it("run and sleep from inside a sink likewise", function()
      local client = new_client()
      local ran = false
      local task = client:spawn(function() ran = true end)
      local errors = {}
      assert(client:download_content(video.id, { sink = function()
        if #errors == 0 then
          errors[1] = select(2, pcall(client.run, client))
          errors[2] = select(2, pcall(client.sleep, client, 0))
        end
      end }))
      assert.matches("calling 'step' from inside a callback", errors[1])
      assert.matches("calling 'sleep' from inside a callback", errors[2])
      assert.is_false(ran)
      client:run()
      assert.is_true(task:done())
      client:close()
    end)
  end)

  describe("spawn on a closed client", function()
    it("raises, as every other call on it does", function()
      local client = new_client()
      client:close()
      local ok, err = pcall(client.spawn, client, function() end)
      assert.is_false(ok)
      assert.matches("calling 'spawn' on a closed sora.Client", err)
    end)

    it("raises from a task that closed its client", function()
      local client = new_client()
      local err
      client:spawn(function()
        client:close()
        err = select(2, pcall(client.spawn, client, function() end))
      end)
      client:step(0)
      assert.matches("calling 'spawn' on a closed sora.Client", err)
    end)
  end)
end)
