-- Closing a client at awkward moments, and limits that must be checked: found by review.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

describe("client lifecycle", function()
  local E
  lazy_setup(function() E = emulator.start{ job_seconds = 0.2, api_key = H.KEY } end)
  lazy_teardown(function() E:stop() end)
  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function client(opts)
    opts = opts or {}
    opts.api_key, opts.base_url = H.KEY, E.url
    return sora.new(opts)
  end

  it("a log function that closes the client cannot break the transfer", function()
    local c
    c = client{ log = function() c:close() end }
    local video, err = c:create{ prompt = "logged" }
    assert.is_nil(err)
    assert.are.equal("logged", video.prompt)
    c:close()
  end)

  it("a transfer that finished before its client closed reports aborted", function()
    local c = client()
    local transfer = c:_start("create", { prompt = "finished, unread" })
    while not transfer:done() do c:_drive(0.05) end
    c:close()
    local value, err = transfer:result()
    assert.is_nil(value)
    assert.are.equal("aborted", err.kind)
    assert.is_nil(err.status)
  end)

  it("never sends a success again, whatever x-should-retry says", function()
    local c = client{ max_retries = 2 }
    E:fault{ action = "respond", status = 200, headers = { ["x-should-retry"] = "true" },
             body = '{"id":"video_once","object":"video","status":"queued","progress":0}' }
    assert.are.equal("video_once", assert(c:retrieve("video_once")).id)
    assert.are.equal(1, #E:requests())
    c:close()
  end)

  it("checks a call's deadline", function()
    local c = client()
    assert.has_error(function() c:retrieve("video_x", { deadline = -5 }) end,
      "bad argument #2 to 'retrieve' (field 'deadline' must be positive)")
    assert.has_error(function() c:retrieve("video_x", { deadline = 0 }) end)
    local _, err = c:retrieve("video_x", { deadline = math.huge })
    assert.are.equal("not_found", err.kind) -- a huge deadline is no deadline
    c:close()
  end)

  it("a task may close its own client: the others are cancelled, it goes on", function()
    local c = client()
    local other = c:spawn(function() c:sleep(5) end)
    local closer = c:spawn(function()
      c:close()
      return "closed", pcall(c.retrieve, c, "video_x")
    end)
    c:step(0)
    assert.is_true(other:done())
    assert.are.equal("aborted", select(2, other:result()).kind)
    local said, ok, err = closer:result()
    assert.are.equal("closed", said)
    assert.is_false(ok)
    assert.matches("closed sora.Client", err)
    assert.has_error(function() c:step(0) end, "calling 'step' on a closed sora.Client")
  end)

  if _VERSION == "Lua 5.4" then
    it("a to-be-closed client cancels its tasks", function()
      local chunk = assert(load([[
        local sora, url, key = ...
        local task
        do
          local c <close> = sora.new{ api_key = key, base_url = url }
          task = c:spawn(function() c:sleep(5) end)
          c:step(0)
        end
        return task
      ]]))
      local task = chunk(sora, E.url, H.KEY)
      assert.is_true(task:done())
      assert.are.equal("aborted", select(2, task:result()).kind)
    end)
  end
end)
