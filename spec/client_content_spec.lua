-- client:download_content: to a string, to a path, to a sink; progress; failures leave nothing.
local sora = require "sora"
local H = require "support.client"

describe("download_content", function()
  local E, c, video, dir

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = H.completed_video(c, E, { prompt = "content" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
    dir = H.tempdir()
  end)

  after_each(function()
    H.rmdir(dir)
  end)

  local function content_request()
    local found = H.matching(E, "GET", "/content$")
    return found[#found]
  end

  describe("to a string", function()
    it("gives the video as MP4 bytes", function()
      local bytes, err = c:download_content(video.id)
      assert.is_nil(err)
      assert.are.equal(H.media("video.mp4"), bytes)
      assert.are.equal("ftyp", bytes:sub(5, 8))
      local r = content_request()
      assert.are.equal("/v1/videos/" .. video.id .. "/content", r.path)
      assert.are.same({}, r.query)
      assert.are.equal(E.bearer(H.KEY), r.headers.authorization)
    end)

    it("sends Accept: application/binary, as the official SDKs do", function()
      assert(c:download_content(video.id))
      assert.are.equal("application/binary", content_request().headers.accept)
    end)

    it("gives each variant", function()
      local mp4 = assert(c:download_content(video.id, { variant = "video" }))
      assert.are.equal("ftyp", mp4:sub(5, 8))
      assert.are.equal("video", content_request().query.variant)
      local webp = assert(c:download_content(video.id, { variant = "thumbnail" }))
      assert.are.equal("RIFF", webp:sub(1, 4))
      assert.are.equal("WEBP", webp:sub(9, 12))
      assert.are.equal(H.media("thumbnail.webp"), webp)
      assert.are.equal("thumbnail", content_request().query.variant)
      local jpeg = assert(c:download_content(video.id, { variant = "spritesheet" }))
      assert.are.equal("\255\216\255", jpeg:sub(1, 3))
      assert.are.equal(H.media("spritesheet.jpg"), jpeg)
      assert.are.equal("spritesheet", content_request().query.variant)
    end)

    it("returns bad_request for a video that is not ready, and for an unknown variant", function()
      local queued = assert(c:create{ prompt = "not yet" })
      E:force_video(queued.id, { status = "queued" })
      local bytes, err = c:download_content(queued.id)
      assert.is_nil(bytes)
      assert.are.equal("bad_request", err.kind)
      assert.are.equal("video_not_ready", err.code)
      bytes, err = c:download_content(video.id, { variant = "poster" })
      assert.is_nil(bytes)
      assert.are.equal("bad_request", err.kind)
    end)

    it("returns not_found for an unknown video", function()
      local bytes, err = c:download_content("video_unknown")
      assert.is_nil(bytes)
      assert.are.equal("not_found", err.kind)
    end)
  end)

  describe("to a path", function()
    it("writes the file and returns true", function()
      local out = dir .. "/out.mp4"
      local ok, err = c:download_content(video.id, { path = out })
      assert.is_nil(err)
      assert.is_true(ok)
      assert.are.equal(H.media("video.mp4"), H.read(out))
      assert.are.same({ "out.mp4" }, H.ls(dir))
    end)

    it("writes beside the target and renames only when complete", function()
      local out = dir .. "/progressive.mp4"
      local during = {}
      E:config{ video_bytes = 300000 }
      local ok = c:download_content(video.id, { path = out, on_progress = function()
        if #during == 0 then during = H.ls(dir) end
      end })
      E:config{ video_bytes = require("cjson").null }
      assert.is_true(ok)
      assert.are.equal(1, #during)
      assert.matches("^progressive%.mp4%.sora%-", during[1])
      assert.are.same({ "progressive.mp4" }, H.ls(dir))
      local bytes = H.read(out)
      assert.are.equal(300000, #bytes)
      assert.are.equal(string.char(250, 0, 1), bytes:sub(251, 253))
    end)

    it("replaces an existing file on success", function()
      local out = dir .. "/exists.mp4"
      H.write(out, "old contents")
      assert(c:download_content(video.id, { path = out }))
      assert.are.equal(H.media("video.mp4"), H.read(out))
    end)

    for _, fault in ipairs{ { action = "reset_mid_body", after_bytes = 100 },
                            { action = "truncate" } } do
      it("leaves no file and no temporary file when the body is cut (" .. fault.action .. ")",
        function()
          local out = dir .. "/cut.mp4"
          fault.method, fault.path = "GET", "/content$"
          E:fault(fault)
          local ok, err = c:download_content(video.id, { path = out })
          assert.is_nil(ok)
          assert.is_true(sora.is_error(err))
          assert.are.same({}, H.ls(dir))

          H.write(out, "precious")
          E:fault(fault)
          ok, err = c:download_content(video.id, { path = out })
          assert.is_nil(ok)
          assert.is_true(sora.is_error(err))
          assert.are.equal("precious", H.read(out))
          assert.are.same({ "cut.mp4" }, H.ls(dir))
        end)
    end

    it("leaves no file when the server answers an error", function()
      local out = dir .. "/error.mp4"
      local queued = assert(c:create{ prompt = "queued for a path" })
      E:force_video(queued.id, { status = "queued" })
      local ok, err = c:download_content(queued.id, { path = out })
      assert.is_nil(ok)
      assert.are.equal("bad_request", err.kind)
      assert.are.same({}, H.ls(dir))
    end)

    it("retries a cut body and then writes the whole file", function()
      local retrying = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 1 }
      local out = dir .. "/retried.mp4"
      E:fault{ method = "GET", path = "/content$", action = "reset_mid_body", after_bytes = 100,
               headers = { ["retry-after-ms"] = "10" } }
      local ok, err = retrying:download_content(video.id, { path = out })
      retrying:close()
      assert.is_nil(err)
      assert.is_true(ok)
      assert.are.equal(H.media("video.mp4"), H.read(out))
      assert.are.same({ "retried.mp4" }, H.ls(dir))
      assert.are.equal(2, #H.matching(E, "GET", "/content$"))
    end)

    it("returns kind io for a directory that does not exist", function()
      local ok, err = c:download_content(video.id, { path = dir .. "/missing/out.mp4" })
      assert.is_nil(ok)
      assert.are.equal("io", err.kind)
      assert.matches("missing/out.mp4", err.message, 1, true)
      assert.are.equal(0, #H.matching(E, "GET", "/content$"))
    end)
  end)

  describe("to a sink", function()
    it("passes chunks that concatenate to the body", function()
      E:config{ video_bytes = 200000 }
      local chunks = {}
      local ok, err = c:download_content(video.id, { sink = function(chunk)
        chunks[#chunks + 1] = chunk
      end })
      E:config{ video_bytes = require("cjson").null }
      assert.is_nil(err)
      assert.is_true(ok)
      assert.is_true(#chunks > 1)
      local body = table.concat(chunks)
      assert.are.equal(200000, #body)
      for _, i in ipairs{ 0, 1, 250, 251, 199999 } do
        assert.are.equal(i % 251, body:byte(i + 1))
      end
    end)

    it("reports progress up to the total", function()
      local calls = {}
      local bytes = assert(c:download_content(video.id, { on_progress = function(received, total)
        calls[#calls + 1] = { received, total }
      end }))
      assert.is_true(#calls >= 1)
      local size = #H.media("video.mp4")
      for i, call in ipairs(calls) do
        assert.are.equal(size, call[2])
        if i > 1 then assert.is_true(call[1] > calls[i - 1][1]) end
      end
      assert.are.equal(size, calls[#calls][1])
      assert.are.equal(size, #bytes)
    end)

    it("gives a sink's error to the caller and leaks nothing", function()
      local ok, err = pcall(c.download_content, c, video.id, { sink = function()
        error("sink exploded")
      end })
      assert.is_false(ok)
      assert.matches("sink exploded", tostring(err))
      -- the client still works
      assert.are.equal(H.media("video.mp4"), assert(c:download_content(video.id)))
      local v = assert(c:retrieve(video.id))
      assert.are.equal(video.id, v.id)
    end)

    it("keeps an error object raised by a sink as it is", function()
      local thrown = { reason = "mine" }
      local ok, err = pcall(c.download_content, c, video.id, { sink = function() error(thrown) end })
      assert.is_false(ok)
      assert.are.equal(thrown, err)
    end)

    it("removes the temporary file when on_progress raises during a download to a path", function()
      local out = dir .. "/raised.mp4"
      local ok, err = pcall(c.download_content, c, video.id, { path = out, on_progress = function()
        error("stop here")
      end })
      assert.is_false(ok)
      assert.matches("stop here", tostring(err))
      assert.are.same({}, H.ls(dir))
    end)
  end)

  describe("argument checks", function()
    it("raises for path and sink together, before any request", function()
      assert.has_error(function()
        c:download_content(video.id, { path = dir .. "/x.mp4", sink = function() end })
      end)
      local ok, err = pcall(c.download_content, c, video.id,
        { path = dir .. "/x.mp4", sink = function() end })
      assert.is_false(ok)
      assert.matches("give 'path' or 'sink', not both", err, 1, true)
      assert.are.same({}, H.ls(dir))
      assert.are.equal(0, #E:requests())
    end)

    it("raises for unknown options and wrong types", function()
      assert.has_error(function() c:download_content(video.id, { varient = "thumbnail" }) end)
      assert.has_error(function() c:download_content(video.id, { path = 5 }) end)
      assert.has_error(function() c:download_content(video.id, { sink = "file" }) end)
      assert.has_error(function() c:download_content(video.id, { on_progress = true }) end)
      assert.has_error(function() c:download_content(video.id, "out.mp4") end)
      assert.are.equal(0, #E:requests())
    end)
  end)
end)
