-- One rule for callback context: sink, on_progress and log run protected, keep the traceback
-- of what they raise, may be any callable, and cannot drive or close their own client.
local sora = require "sora"
local H = require "support.client"

describe("callbacks", function()
  local E, c, video

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = H.completed_video(c, E, { prompt = "callbacks" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  -- Raises what download_content raised when `fn` ran as its sink.
  local function from_sink(fn)
    local ok, err = pcall(c.download_content, c, video.id, { sink = fn })
    assert.is_false(ok)
    return tostring(err)
  end

  describe("a call that touches the multi handle from inside a callback", function()
    local cases = {
      { "retrieve", function() c:retrieve(video.id) end },
      { "download_content", function() c:download_content(video.id) end },
      { "step", function() c:_drive(0) end },
      { "sleep", function() c:_sleep(0.01) end },
    }

    it("raises a usage error naming the call, which reaches the caller", function()
      for _, case in ipairs(cases) do
        local ok, err = pcall(c.download_content, c, video.id, { sink = case[2] })
        assert.is_false(ok, case[1])
        err = tostring(err)
        assert.matches("calling '" .. case[1] .. "' from inside a callback", err, 1, true)
        assert.matches("of the same sora.Client is not allowed", err, 1, true)
      end
    end)

    it("refuses wait and cancel of another transfer of the same client", function()
      local other = c:_start("retrieve", video.id)
      local err = from_sink(function() other:wait() end)
      assert.matches("calling 'wait' from inside a callback", err, 1, true)
      err = from_sink(function() other:cancel() end)
      assert.matches("calling 'cancel' from inside a callback", err, 1, true)
      assert.are.equal(video.id, assert(other:wait()).id)
    end)

    it("refuses close, and the client is unchanged", function()
      local err = from_sink(function() c:close() end)
      assert.matches("calling 'close' from inside a callback", err, 1, true)
      assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
      assert.are.equal(0, c:_drive(0))
    end)

    it("is allowed on another client", function()
      local other = sora.new{ api_key = H.KEY, base_url = E.url }
      local ids = {}
      assert(c:download_content(video.id, { variant = "thumbnail", sink = function()
        ids[#ids + 1] = assert(other:retrieve(video.id)).id
      end }))
      assert.is_true(#ids > 0)
      assert.are.equal(video.id, ids[1])
      other:close()
    end)

    it("from on_progress and from a log function too", function()
      local ok, err = pcall(c.download_content, c, video.id, { on_progress = function()
        c:retrieve(video.id)
      end })
      assert.is_false(ok)
      assert.matches("calling 'retrieve' from inside a callback", tostring(err), 1, true)
      local seen = {}
      local logged
      logged = sora.new{ api_key = H.KEY, base_url = E.url, log = function(line)
        local inner_ok, inner_err = pcall(logged.retrieve, logged, video.id)
        seen[#seen + 1] = not inner_ok and tostring(inner_err) or line
      end }
      assert(logged:retrieve(video.id))
      assert.is_true(#seen > 0)
      assert.matches("calling 'retrieve' from inside a callback", seen[1], 1, true)
      logged:close()
    end)
  end)

  describe("errors", function()
    it("keep the traceback of the function that raised", function()
      local function deep_inside_the_sink() error("the sink broke") end
      local err = from_sink(function() deep_inside_the_sink() end)
      assert.matches("the sink broke", err, 1, true)
      assert.matches("stack traceback:", err, 1, true)
      assert.matches("deep_inside_the_sink", err, 1, true)
    end)

    it("of a log function go to stderr with their traceback; the request goes on", function()
      local script = [[
        local sora = require "sora"
        local c = sora.new{ api_key = "sk-test", base_url = BASE, log = function()
          error("the log broke")
        end }
        local _, err = c:retrieve("video_none")
        print("KIND " .. err.kind)
      ]]
      local out = H.run_child((script:gsub("BASE", string.format("%q", E.url))))
      assert.matches("KIND not_found", out, 1, true)
      assert.matches("sora: the log function failed: ", out, 1, true)
      assert.matches("the log broke", out, 1, true)
      assert.matches("stack traceback:", out, 1, true)
    end)
    it("of a log function that are not strings are shown as tostring shows them", function()
      local script = [[
        local sora = require "sora"
        local raised = { setmetatable({}, { __tostring = function() return "AN OBJECT" end }),
                         false, "text" }
        local n = 0
        local c = sora.new{ api_key = "sk-test", base_url = BASE, max_retries = 0, log = function()
          n = n + 1
          error(raised[n])
        end }
        for _ = 1, 3 do c:retrieve("video_none") end
        local _, err = c:retrieve("video_none")
        print("KIND " .. err.kind)
      ]]
      local out = H.run_child((script:gsub("BASE", string.format("%q", E.url))))
      assert.matches("KIND not_found", out, 1, true)
      assert.matches("sora: the log function failed: AN OBJECT", out, 1, true)
      assert.matches("sora: the log function failed: (an error object of type boolean)", out, 1, true)
      assert.matches("sora: the log function failed: [^\n]*:9: text", out)
      assert.is_nil(out:find("(null)", 1, true))
    end)
  end)

  describe("callables", function()
    local function callable(fn)
      return setmetatable({}, { __call = function(_, ...) return fn(...) end })
    end

    it("are accepted as sink and on_progress", function()
      local chunks, calls = {}, 0
      assert(c:download_content(video.id, {
        sink = callable(function(chunk) chunks[#chunks + 1] = chunk end),
        on_progress = callable(function() calls = calls + 1 end),
      }))
      assert.are.equal(H.media("video.mp4"), table.concat(chunks))
      assert.is_true(calls > 0)
    end)

    it("are accepted as the log function", function()
      local lines = {}
      local logged = sora.new{ api_key = H.KEY, base_url = E.url,
                               log = callable(function(line) lines[#lines + 1] = line end) }
      assert(logged:retrieve(video.id))
      assert.is_true(#lines > 0)
      assert.matches("GET", lines[1], 1, true)
      logged:close()
    end)

    it("keep an error object they raise as it is", function()
      local thrown = { reason = "mine" }
      local ok, err = pcall(c.download_content, c, video.id,
        { sink = callable(function() error(thrown) end) })
      assert.is_false(ok)
      assert.are.equal(thrown, err)
    end)

    it("but a table without __call is refused, naming the field", function()
      local ok, err = pcall(c.download_content, c, video.id, { sink = {} })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'download_content' (field 'sink' must be a function or a callable",
        tostring(err), 1, true)
      ok, err = pcall(sora.new, { api_key = H.KEY, base_url = E.url, log = {} })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'new' (option 'log' must be a string or a function",
        tostring(err), 1, true)
    end)
  end)
end)
