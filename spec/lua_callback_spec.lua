-- Callback context, the Lua side (issue 7, rule 2): client:close() from inside a callback is
-- all or nothing; a wait from inside a callback is refused at once, never polled as a
-- transient failure; a task's call made where the coroutine cannot yield blocks instead of
-- raising "attempt to yield across a C-call boundary".
local sora = require "sora"
local H = require "support.client"

describe("callbacks and the Lua layer", function()
  local E, c, video

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = H.completed_video(c, E, { prompt = "for callbacks" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function fresh()
    return sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
  end

  describe("client:close() from inside a sink", function()
    it("is refused and changes nothing (blocking call)", function()
      local k = fresh()
      local refused
      local ok = assert(k:download_content(video.id, { sink = function()
        if refused == nil then refused = { pcall(k.close, k) } end
      end }))
      assert.is_true(ok)
      assert.is_false(refused[1])
      assert.matches("callback", tostring(refused[2]))
      -- the client is open: blocking calls, step and tasks all work
      assert.matches("^sora%.Client %(http", tostring(k))
      assert.are.equal(0, k:step(0))
      local task = k:spawn(function() return assert(k:retrieve(video.id)).id end)
      k:run()
      assert.are.equal(video.id, task:result())
      k:close()
      assert.are.equal("sora.Client (closed)", tostring(k))
    end)

    it("is refused inside a task, whose fellow tasks go on", function()
      local k = fresh()
      local refused
      local downloader = k:spawn(function()
        return k:download_content(video.id, { sink = function()
          if refused == nil then refused = { pcall(k.close, k) } end
        end })
      end)
      local sleeper = k:spawn(function()
        k:sleep(0.2)
        return assert(k:retrieve(video.id)).status
      end)
      k:run() -- step keeps working: the client was never marked closed
      assert.is_false(refused[1])
      assert.is_true(downloader:result())
      assert.are.equal("completed", sleeper:result())
      k:close()
    end)
  end)

  it("a wait from inside a sink is refused at once, not polled until its timeout", function()
    local k = fresh()
    local queued = assert(k:create{ prompt = "never polled from a sink" })
    E:force_video(queued.id, { status = "queued" })
    E:clear_requests()
    local start = sora.now()
    local ok, err = pcall(k.download_content, k, video.id, { sink = function()
      queued:wait{ interval = 0, timeout = 5 }
    end })
    assert.is_false(ok)
    assert.matches("callback", tostring(err))
    assert.is_true(sora.now() - start < 2.5, string.format("took %.2f s", sora.now() - start))
    assert.are.equal(0, #H.matching(E, "GET", "^/v1/videos/" .. queued.id .. "$"))
    k:close()
  end)

  describe("a task's call where it cannot yield blocks", function()
    local function in_task(body)
      local task = c:spawn(body)
      c:run()
      local results = { task:result() }
      assert.is_not_nil(results[1], tostring(results[2]))
      return table.unpack and table.unpack(results) or unpack(results)
    end

    it("inside a string.gsub callback", function()
      local out = in_task(function()
        return (string.gsub("<id>", "<id>", function()
          return assert(c:retrieve(video.id)).status
        end))
      end)
      assert.are.equal("completed", out)
    end)

    it("inside a table.sort comparator", function()
      local calls = in_task(function()
        local n = 0
        table.sort({ 3, 1, 2 }, function(a, b)
          if n == 0 then assert(c:retrieve(video.id)) end
          n = n + 1
          return a < b
        end)
        return n
      end)
      assert.is_true(calls > 0)
    end)

    it("inside a __tostring metamethod called by tostring", function()
      local shown = in_task(function()
        return tostring(setmetatable({}, { __tostring = function()
          return assert(c:retrieve(video.id)).id
        end }))
      end)
      assert.are.equal(video.id, shown)
    end)

    it("and the same task yields again afterwards", function()
      local statuses = in_task(function()
        local inside = string.gsub("x", "x", function() return assert(c:retrieve(video.id)).status end)
        c:sleep(0.01) -- yields
        return inside .. "," .. assert(c:retrieve(video.id)).status
      end)
      assert.are.equal("completed,completed", statuses)
    end)
  end)
end)
