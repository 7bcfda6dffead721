-- with_response = true on every endpoint, through the emulator: value, response with the
-- status, lower-case headers, request id, elapsed time and attempts; errors carry headers
-- whether or not it was asked; tasks get the same two values.
local sora = require "sora"
local H = require "support.client"

-- A response as every call with with_response returns it.
local function assert_response(resp, status)
  assert.is_table(resp)
  assert.are.equal(status or 200, resp.status)
  assert.is_table(resp.headers)
  for name in pairs(resp.headers) do assert.are.equal(name:lower(), name) end
  assert.matches("^req_%x+$", resp.request_id)
  assert.are.equal(resp.request_id, resp.headers["x-request-id"])
  assert.are.equal(resp.request_id, resp.headers["X-Request-ID"]) -- any case finds it
  assert.is_number(resp.elapsed)
  assert.is_true(resp.elapsed > 0 and resp.elapsed < 60, tostring(resp.elapsed))
  assert.are.equal(1, resp.attempts)
  assert.is_nil(resp.headers.authorization) -- the request's own headers are never included
  return resp
end

describe("with_response", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
  end)

  describe("on every endpoint", function()
    it("create and retrieve give the video and its response", function()
      local video, resp = c:create{ prompt = "a raw response", with_response = true }
      assert.are.equal("queued", video.status)
      assert_response(resp)
      assert.are.equal("application/json", resp.headers["content-type"])
      assert.is_truthy(resp.headers["openai-poll-after-ms"])
      local again, resp2 = c:retrieve(video.id, { with_response = true })
      assert.are.equal(video.id, again.id)
      assert_response(resp2)
      assert.are_not.equal(resp.request_id, resp2.request_id)
      -- the request that went out carried no trace of the option
      assert.is_nil(E:last_request().query.with_response)
    end)

    it("list_page, pages and list give each page's response", function()
      for i = 1, 3 do assert(c:create{ prompt = "listed " .. i }) end
      local page, resp = c:list_page{ limit = 2, with_response = true }
      assert.are.equal(2, #page.data)
      assert_response(resp)
      local ids, n = {}, 0
      for p, r in c:pages{ limit = 2, with_response = true } do
        n = n + 1
        assert_response(r)
        assert.is_nil(ids[r.request_id])
        ids[r.request_id] = p
        if n == 2 then break end
      end
      assert.are.equal(2, n)
      local seen = 0
      for video, r in c:list{ limit = 2, with_response = true } do
        seen = seen + 1
        assert.is_truthy(video.id)
        assert_response(r)
        if seen == 3 then break end
      end
      assert.are.equal(3, seen)
    end)

    it("delete and remix, from the client and from the video", function()
      local video = H.completed_video(c, E)
      local remixed, resp = c:remix(video.id, { prompt = "again", with_response = true })
      assert.are.equal(video.id, remixed.remixed_from_video_id)
      assert_response(resp)
      local other, resp2 = video:remix{ prompt = "once more", with_response = true }
      assert.is_truthy(other.id)
      assert_response(resp2)
      local deleted, resp3 = c:delete(video.id, { with_response = true })
      assert.is_true(deleted.deleted)
      assert_response(resp3)
      local second = H.completed_video(c, E)
      local gone, resp4 = second:delete{ with_response = true }
      assert.is_true(gone.deleted)
      assert_response(resp4)
    end)

    it("download_content to a string, a file and a sink, and video:download", function()
      local video = H.completed_video(c, E)
      local bytes, resp = c:download_content(video.id, { with_response = true })
      assert.are.equal(H.media("video.mp4"), bytes)
      assert_response(resp)
      assert.are.equal("video/mp4", resp.headers["content-type"])
      assert.are.equal(tostring(#bytes), resp.headers["content-length"])
      local dir = H.tempdir()
      local ok, resp2 = c:download_content(video.id, { path = dir .. "/out.mp4", with_response = true })
      assert.is_true(ok)
      assert_response(resp2)
      local chunks = {}
      local ok2, resp3 = c:download_content(video.id, { variant = "thumbnail", with_response = true,
        sink = function(chunk) chunks[#chunks + 1] = chunk end })
      assert.is_true(ok2)
      assert_response(resp3)
      assert.are.equal("image/webp", resp3.headers["content-type"])
      local ok3, resp4 = video:download{ path = dir .. "/again.mp4", with_response = true }
      assert.is_true(ok3)
      assert_response(resp4)
      H.rmdir(dir)
    end)

    it("edit, extend, create_character and get_character", function()
      local video = H.completed_video(c, E)
      local edited, resp = c:edit{ video = video.id, prompt = "red", with_response = true }
      assert.is_truthy(edited.id)
      assert_response(resp)
      local extended, resp2 = c:extend{ video = video.id, prompt = "on", seconds = 8, with_response = true }
      assert.is_truthy(extended.id)
      assert_response(resp2)
      local character, resp3 = c:create_character{ video = H.FIXTURES .. "clip.mp4", name = "Ada",
                                                    with_response = true }
      assert.are.equal("Ada", character.name)
      assert_response(resp3)
      local again, resp4 = c:get_character(character.id, { with_response = true })
      assert.are.same(character, again)
      assert_response(resp4)
    end)

    it("video:refresh gives the response of its retrieve", function()
      local video = assert(c:create{ prompt = "refreshed" })
      local same, resp = video:refresh{ with_response = true }
      assert.are.equal(video, same)
      assert_response(resp)
      assert.are.equal(video, video:refresh()) -- still one value without it
      assert.has_error(function() video:refresh{ with_reponse = true } end)
    end)
  end)

  describe("without it", function()
    it("returns the value and nil, as before", function()
      local video = assert(c:create{ prompt = "plain" })
      assert.are.equal(2, select("#", c:retrieve(video.id)))
      assert.is_nil(select(2, c:retrieve(video.id)))
      assert.is_nil(select(2, c:retrieve(video.id, { with_response = false })))
    end)

    it("must be a boolean", function()
      assert.has_error(function() c:retrieve("video_x", { with_response = "yes" }) end,
        "bad argument #2 to 'retrieve' (field 'with_response' must be a boolean, got string)")
      assert.has_error(function() c:create{ prompt = "x", with_response = 1 } end)
    end)

    it("is refused by the conveniences that make several requests", function()
      local function refused(fn, pattern)
        local ok, err = pcall(fn)
        assert.is_false(ok)
        assert.matches(pattern, err)
      end
      refused(function() c:generate{ prompt = "x", with_response = true } end,
        "bad argument #1 to 'generate' %(option 'with_response' is for single requests")
      refused(function() c:create_and_wait({ prompt = "x", with_response = true }) end,
        "bad argument #1 to 'create_and_wait' %(option 'with_response'")
      refused(function() c:generate_many{ { prompt = "x" }, { prompt = "y", with_response = true } } end,
        "bad argument #1 to 'generate_many' %(jobs%[2%]: option 'with_response'")
      local video = assert(c:create{ prompt = "waited" })
      refused(function() video:wait{ with_response = true } end, "unknown option 'with_response'")
    end)
  end)

  describe("errors", function()
    it("carry the headers, the status and the elapsed time, asked or not", function()
      for _, opts in ipairs({ {}, { with_response = true } }) do
        local v, err = c:retrieve("video_nope", opts)
        assert.is_nil(v)
        assert.is_true(sora.is_error(err))
        assert.are.equal(404, err.status)
        assert.is_table(err.headers)
        assert.are.equal(err.request_id, err.headers["x-request-id"])
        assert.are.equal("application/json", err.headers["content-type"])
        assert.is_number(err.elapsed)
        assert.is_nil(tostring(err):find("headers", 1, true)) -- still one short line
      end
    end)

    it("carry a server's own headers, e.g. rate limits", function()
      E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 429,
               headers = { ["x-ratelimit-remaining-requests"] = "0", ["retry-after"] = "0" } }
      local page, err = c:list_page{ with_response = true }
      assert.is_nil(page)
      assert.are.equal("rate_limit", err.kind)
      assert.are.equal("0", err.headers["x-ratelimit-remaining-requests"])
      assert.are.equal("0", err.headers["retry-after"])
    end)

    it("of the network have no headers", function()
      -- a fresh client: libcurl sends a request again by itself when a reused connection dies
      local fresh = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
      E:fault{ method = "GET", path = "^/v1/videos/", action = "reset" }
      local v, err = fresh:retrieve("video_reset", { with_response = true })
      fresh:close()
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.is_nil(err.headers)
      assert.is_nil(err.status)
      assert.is_number(err.elapsed)
    end)
  end)

  it("counts every attempt: elapsed covers the retries and the waits between them", function()
    local video = assert(c:create{ prompt = "retried" })
    E:fault{ method = "GET", path = "^/v1/videos/video_", action = "respond", status = 500,
             headers = { ["retry-after-ms"] = "200", ["x-attempt"] = "first" } }
    local again, resp = c:retrieve(video.id, { with_response = true, max_retries = 1 })
    assert.are.equal(video.id, again.id)
    assert.are.equal(200, resp.status)
    assert.are.equal(2, resp.attempts)
    assert.is_nil(resp.headers["x-attempt"]) -- the headers of the answer that ended the call
    assert.is_true(resp.elapsed >= 0.2, tostring(resp.elapsed)) -- it waited what the server asked
  end)

  it("gives the same two values inside a task", function()
    local video = H.completed_video(c, E)
    local got = {}
    c:spawn(function()
      got.video, got.resp = c:retrieve(video.id, { with_response = true })
      got.bytes, got.resp2 = c:download_content(video.id, { with_response = true })
      got.missing, got.err = c:retrieve("video_nope", { with_response = true })
    end)
    c:run()
    assert.are.equal(video.id, got.video.id)
    assert_response(got.resp)
    assert.are.equal(H.media("video.mp4"), got.bytes)
    assert_response(got.resp2)
    assert.is_nil(got.missing)
    assert.are.equal(404, got.err.status)
    assert.are.equal(got.err.request_id, got.err.headers["x-request-id"])
  end)
end)
