-- The Video handle: fields, types, unknown fields, to_table, tostring, equality, read-only,
-- refresh and the methods that call the API.
local H = require "support.client"

describe("sora.Video", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_requests()
  end)

  it("exposes every field of a queued video", function()
    local before = os.time()
    local v = assert(c:create{ prompt = "fields", model = "sora-2", seconds = "8", size = "1280x720" })
    assert.is_userdata(v)
    assert.matches("^video_%x+$", v.id)
    assert.are.equal("video", v.object)
    assert.are.equal("sora-2", v.model)
    assert.are.equal("queued", v.status)
    assert.are.equal(0, v.progress)
    assert.is_true(math.abs(v.created_at - before) <= 5)
    assert.is_nil(v.completed_at)
    assert.is_nil(v.expires_at)
    assert.are.equal("fields", v.prompt)
    assert.are.equal("1280x720", v.size)
    assert.are.equal("8", v.seconds)
    assert.is_nil(v.remixed_from_video_id)
    assert.is_nil(v.error)
    assert.is_true(H.is_integer(v.progress))
    assert.is_true(H.is_integer(v.created_at))
  end)

  it("exposes every field of a completed video, integers as integers", function()
    local v = H.completed_video(c, E, { prompt = "done" })
    assert.are.equal("completed", v.status)
    assert.are.equal(100, v.progress)
    assert.is_number(v.completed_at)
    assert.is_number(v.expires_at)
    assert.is_true(v.expires_at > v.completed_at)
    if math.type then
      for _, name in ipairs{ "progress", "created_at", "completed_at", "expires_at" } do
        assert.are.equal("integer", math.type(v[name]), name)
      end
    end
    local remixed = assert(v:remix{ prompt = "remixed" })
    assert.are.equal(v.id, remixed.remixed_from_video_id)
  end)

  it("gives a failed video's error as a table", function()
    local v = assert(c:create{ prompt = "forced to fail" })
    E:force_video(v.id, { status = "failed" })
    assert(v:refresh())
    assert.are.equal("failed", v.status)
    assert.is_table(v.error)
    assert.are.equal("internal_error", v.error.code)
    assert.is_string(v.error.message)
    assert.is_nil(v.completed_at)
  end)

  it("keeps unknown fields, reachable by name and through to_table", function()
    local v = assert(c:create{ prompt = "extra fields" })
    E:force_video(v.id, { quality = "high", seconds = "16", size = "1920x1080",
                          model = "sora-3", details = { fps = 24, tags = { "a", "b" } } })
    assert(v:refresh())
    assert.are.equal("high", v.quality)
    assert.are.equal("16", v.seconds)
    assert.are.equal("1920x1080", v.size)
    assert.are.equal("sora-3", v.model)
    assert.are.equal(24, v.details.fps)
    local t = v:to_table()
    assert.are.equal("high", t.quality)
    assert.are.same({ fps = 24, tags = { "a", "b" } }, t.details)
    assert.are.equal(v.id, t.id)
  end)

  it("reads a server's seconds: null and a numeric seconds defensively", function()
    local v = assert(c:create{ prompt = "odd seconds" })
    E:force_video(v.id, { seconds = 8 })
    assert(v:refresh())
    assert.are.equal("8", v.seconds)
  end)

  it("to_table returns a deep copy with every field", function()
    local v = assert(c:create{ prompt = "copy" })
    E:force_video(v.id, { status = "failed" })
    assert(v:refresh())
    local t = v:to_table()
    assert.are.same({ "code", "message" }, (function()
      local keys = {}
      for k in pairs(t.error) do keys[#keys + 1] = k end
      table.sort(keys)
      return keys
    end)())
    for _, name in ipairs{ "id", "object", "model", "status", "progress", "created_at", "prompt",
                           "size", "seconds" } do
      assert.are.equal(v[name], t[name], name)
    end
    t.status = "completed"
    t.error.code = "changed"
    t.id = "video_other"
    assert.are.equal("failed", v.status)
    assert.are.equal("internal_error", v.error.code)
    assert.are_not.equal("video_other", v.id)
    assert.are_not.equal(t, v:to_table())
  end)

  it("prints as one line with id, status and progress", function()
    local v = assert(c:create{ prompt = "print me" })
    assert.are.equal("sora.Video (" .. v.id .. ", queued, 0%)", tostring(v))
  end)

  it("compares equal by id", function()
    local v = assert(c:create{ prompt = "equal" })
    local other = assert(c:create{ prompt = "other" })
    local a, b = assert(c:retrieve(v.id)), assert(c:retrieve(v.id))
    assert.is_false(rawequal(a, b))
    assert.is_true(a == b)
    assert.is_true(a == v)
    assert.is_false(a == other)
    assert.is_true(a ~= other)
    assert.is_false(v == v:to_table())
  end)

  it("has read-only fields", function()
    local v = assert(c:create{ prompt = "read only" })
    assert.has_error(function() v.status = "completed" end,
      "sora.Video fields are read-only (field 'status')")
    assert.has_error(function() v.anything = 1 end)
    assert.are.equal("queued", v.status)
    assert.is_nil(v.anything)
  end)

  it("refresh updates the handle in place", function()
    local v = assert(c:create{ prompt = "refresh" })
    local copy = v:to_table()
    E:force_video(v.id, { status = "completed" })
    E:clear_requests()
    local same, err = v:refresh()
    assert.is_nil(err)
    assert.is_true(rawequal(v, same))
    assert.are.equal("completed", v.status)
    assert.are.equal(100, v.progress)
    assert.are.equal("queued", copy.status)
    local r = E:last_request()
    assert.are.equal("GET", r.method)
    assert.are.equal("/v1/videos/" .. v.id, r.path)
  end)

  it("refresh returns nil, err once the video is gone, leaving the handle as it was", function()
    local v = assert(c:create{ prompt = "vanishing" })
    E:forget_video(v.id)
    local same, err = v:refresh()
    assert.is_nil(same)
    assert.are.equal("not_found", err.kind)
    assert.are.equal("queued", v.status)
  end)

  it("refresh takes the per-call options and gives them to its retrieve", function()
    local v = assert(c:create{ prompt = "refresh options" })
    -- max_retries: the client retries nothing (max_retries = 0), this refresh once
    E:fault{ method = "GET", action = "respond", status = 503, times = 1,
             headers = { ["retry-after-ms"] = "10" } }
    E:clear_requests()
    local same, resp = v:refresh{ max_retries = 1, timeout = 5, with_response = true }
    assert.is_true(rawequal(v, same))
    assert.are.equal(2, resp.attempts)
    assert.are.equal(2, #H.matching(E, "GET", "/videos/" .. v.id .. "$"))
    -- deadline: a stalled answer ends as a timeout of this call
    E:fault{ method = "GET", action = "stall", times = 1 }
    local none, err = v:refresh{ deadline = 0.3 }
    assert.is_nil(none)
    assert.are.equal("timeout", err.kind)
    E:clear_faults()
    assert.are.equal(v, (v:refresh{ deadline = 5 }))
  end)

  it("refresh refuses a bad per-call option naming refresh", function()
    local v = assert(c:create{ prompt = "refresh refusals" })
    local cases = {
      { { deadline = 0 }, "option 'deadline' must be a positive number, got 0" },
      { { timeout = -1 }, "option 'timeout' must be a positive number, got -1" },
      { { max_retries = 1.5 }, "option 'max_retries' must be a non-negative integer, got 1.5" },
      { { max_retries = "2" }, "option 'max_retries' must be a number, got string" },
      { { dedline = 5 }, "unknown option 'dedline'" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(v.refresh, v, case[1])
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'refresh' (" .. case[2], err, 1, true)
    end
  end)

  it("keeps the poll hint of the response that last updated it: nil without one, 0 kept", function()
    local video = H.completed_video(c, E, { prompt = "poll" })
    local function answer(headers)
      E:fault{ method = "GET", action = "respond", status = 200, body = video:to_table(), headers = headers }
    end
    answer{ ["openai-poll-after-ms"] = "1234" }
    local v = assert(c:retrieve(video.id))
    assert.are.equal(1234, v:_poll_after())
    answer{}
    assert(v:refresh())
    assert.is_nil(v:_poll_after())
    answer{ ["openai-poll-after-ms"] = "0" }
    assert(v:refresh())
    assert.are.equal(0, v:_poll_after())
  end)

  it("download, remix and delete call the API for this video", function()
    local v = H.completed_video(c, E, { prompt = "methods" })
    E:clear_requests()
    local bytes, err = v:download()
    assert.is_nil(err)
    assert.are.equal("ftyp", bytes:sub(5, 8))
    assert.are.equal("/v1/videos/" .. v.id .. "/content", E:last_request().path)
    local thumb = assert(v:download{ variant = "thumbnail" })
    assert.are.equal("RIFF", thumb:sub(1, 4))
    assert.are.equal("thumbnail", E:last_request().query.variant)
    local remixed = assert(v:remix{ prompt = "the remix" })
    assert.are.equal(v.id, remixed.remixed_from_video_id)
    assert.are.equal("/v1/videos/" .. v.id .. "/remix", E:last_request().path)
    local deleted = assert(v:delete())
    assert.are.same({ id = v.id, object = "video.deleted", deleted = true }, deleted)
    assert.are.equal("DELETE", E:last_request().method)
  end)

  it("raises for methods called on something that is not a video", function()
    local v = assert(c:create{ prompt = "self" })
    assert.has_error(function() v.to_table({}) end)
    assert.has_error(function() v.refresh({}) end)
  end)
end)
