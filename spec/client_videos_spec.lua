-- create, retrieve, delete, remix, edit, extend, characters: results and what the server got.
local sora = require "sora"
local H = require "support.client"

describe("client endpoints", function()
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

  -- Asserts that f raises a message containing `text` and that nothing reached the server.
  local function raises_before_request(f, text)
    E:clear_requests()
    local ok, err = pcall(f)
    assert.is_false(ok, "expected an error")
    assert.is_truthy(tostring(err):find(text, 1, true), tostring(err))
    assert.are.equal(0, #E:requests())
  end

  describe("create", function()
    it("sends JSON when there is no file, with seconds as a string", function()
      local v, err = c:create{ prompt = "a cat on a skateboard", model = "sora-2-pro", seconds = 8,
                               size = "1280x720" }
      assert.is_nil(err)
      local r = E:last_request()
      assert.are.equal("POST", r.method)
      assert.are.equal("/v1/videos", r.path)
      assert.matches("^application/json", r.headers["content-type"])
      assert.are.same({ prompt = "a cat on a skateboard", model = "sora-2-pro", seconds = "8",
                        size = "1280x720" }, r.json)
      assert.are.equal("string", type(r.json.seconds))
      assert.is_nil(r.parts)
      assert.are.equal("8", v.seconds)
      assert.are.equal("sora-2-pro", v.model)
      assert.are.equal("1280x720", v.size)
      assert.are.equal("a cat on a skateboard", v.prompt)
      assert.are.equal("video", v.object)
      assert.are.equal("queued", v.status)
    end)

    it("sends only the fields given", function()
      local v = assert(c:create{ prompt = "defaults" })
      assert.are.same({ prompt = "defaults" }, E:last_request().json)
      assert.are.equal("4", v.seconds)
      assert.are.equal("720x1280", v.size)
    end)

    for _, case in ipairs{ { "ref-1280x720.png", "image/png" }, { "ref-1280x720.jpg", "image/jpeg" },
                           { "ref-1280x720.webp", "image/webp" } } do
      it("uploads input_reference given as a path (" .. case[2] .. ")", function()
        local path = H.FIXTURES .. case[1]
        local v, err = c:create{ prompt = "from an image", size = "1280x720", seconds = 12,
                                 input_reference = path }
        assert.is_nil(err)
        assert.are.equal("1280x720", v.size)
        assert.are.equal("12", v.seconds)
        local r = E:last_request()
        assert.are.equal("POST", r.method)
        assert.matches("^multipart/form%-data; boundary=", r.headers["content-type"])
        local part = H.part(r, "input_reference")
        assert.are.equal(case[1], part.filename)
        assert.are.equal(case[2], part.content_type)
        assert.are.equal(#H.read(path), part.size)
        assert.are.equal("from an image", H.part(r, "prompt").data)
        assert.are.equal("12", H.part(r, "seconds").data)
        assert.is_nil(H.part(r, "prompt").filename)
      end)
    end

    it("sniffs the type from the bytes, not the name", function()
      local dir = H.tempdir()
      local path = dir .. "/really-a-png.jpg"
      H.write(path, H.fixture("ref-1280x720.png"))
      local v, err = c:create{ prompt = "misnamed", size = "1280x720", input_reference = path }
      H.rmdir(dir)
      assert.is_nil(err)
      assert.is_truthy(v)
      local part = H.part(E:last_request(), "input_reference")
      assert.are.equal("really-a-png.jpg", part.filename)
      assert.are.equal("image/png", part.content_type)
    end)

    it("uploads input_reference given as {data, filename}", function()
      local data = H.fixture("ref-1280x720.jpg")
      local v, err = c:create{ prompt = "bytes", size = "1280x720",
                               input_reference = { data = data, filename = "mine.jpg" } }
      assert.is_nil(err)
      assert.is_truthy(v)
      local part = H.part(E:last_request(), "input_reference")
      assert.are.equal("mine.jpg", part.filename)
      assert.are.equal("image/jpeg", part.content_type)
      assert.are.equal(#data, part.size)
    end)

    it("names bytes without a filename after the field and their type", function()
      local data = H.fixture("ref-1280x720.webp")
      assert(c:create{ prompt = "bytes", size = "1280x720", input_reference = { data = data } })
      local part = H.part(E:last_request(), "input_reference")
      assert.are.equal("input_reference.webp", part.filename)
      assert.are.equal("image/webp", part.content_type)
      assert.are.equal(#data, part.size)
    end)

    it("uploads input_reference given as {path}", function()
      local path = H.FIXTURES .. "ref-720x1280.png"
      assert(c:create{ prompt = "path table", input_reference = { path = path } })
      local part = H.part(E:last_request(), "input_reference")
      assert.are.equal("ref-720x1280.png", part.filename)
      assert.are.equal("image/png", part.content_type)
      assert.are.equal(#H.read(path), part.size)
    end)

    it("sends {image_url} and {file_id} as nested JSON objects", function()
      local url = "https://example.com/ref.png"
      assert(c:create{ prompt = "by url", input_reference = { image_url = url } })
      local r = E:last_request()
      assert.matches("^application/json", r.headers["content-type"])
      assert.are.same({ prompt = "by url", input_reference = { image_url = url } }, r.json)
      assert(c:create{ prompt = "by file", input_reference = { file_id = "file_abc" } })
      assert.are.same({ prompt = "by file", input_reference = { file_id = "file_abc" } },
        E:last_request().json)
    end)

    it("returns nil, err with the server's message when the image size differs", function()
      local v, err = c:create{ prompt = "mismatch", size = "1280x720", check_reference = false,
                               input_reference = H.FIXTURES .. "ref-720x1280.png" }
      assert.is_nil(v)
      assert.is_true(sora.is_error(err))
      assert.are.equal("bad_request", err.kind)
      assert.are.equal(400, err.status)
      assert.are.equal("input_reference", err.param)
      assert.matches("Inpaint image must match the requested width and height", err.message)
      assert.matches("^req_", err.request_id)
    end)

    it("raises naming input_reference for a file that is not an image", function()
      raises_before_request(function()
        c:create{ prompt = "x", input_reference = H.FIXTURES .. "not-an-image.txt" }
      end, "input_reference")
      raises_before_request(function()
        c:create{ prompt = "x", input_reference = { data = "plain text", filename = "a.png" } }
      end, "is not a JPEG, PNG or WebP image")
      raises_before_request(function()
        c:create{ prompt = "x", input_reference = H.FIXTURES .. "clip.mp4" }
      end, "input_reference")
    end)

    it("raises for a path that cannot be read", function()
      raises_before_request(function()
        c:create{ prompt = "x", input_reference = H.FIXTURES .. "missing.png" }
      end, "cannot open '" .. H.FIXTURES .. "missing.png'")
    end)

    it("raises for unknown options, wrong types and a missing prompt", function()
      raises_before_request(function() c:create{ promt = "typo" } end, "unknown option 'promt'")
      raises_before_request(function() c:create{ prompt = 42 } end,
        "field 'prompt' must be a string")
      raises_before_request(function() c:create{ prompt = "x", seconds = 8.5 } end,
        "field 'seconds' must be a string or an integer")
      raises_before_request(function() c:create{ prompt = "x", seconds = true } end,
        "field 'seconds'")
      raises_before_request(function() c:create{ prompt = "x", size = 1280 } end,
        "field 'size' must be a string")
      raises_before_request(function() c:create{ prompt = "x", input_reference = 5 } end,
        "field 'input_reference' must be a path or a table")
      raises_before_request(function()
        c:create{ prompt = "x", input_reference = { url = "https://example.com/a.png" } }
      end, "unknown key 'url'")
      raises_before_request(function()
        c:create{ prompt = "x", input_reference = { image_url = "https://a/b.png", file_id = "f" } }
      end, "needs exactly one of")
      raises_before_request(function() c:create{ model = "sora-2" } end, "field 'prompt' is required")
      raises_before_request(function() c:create() end, "table expected")
      raises_before_request(function() c:create("a prompt") end, "table expected")
    end)
  end)

  describe("retrieve and delete", function()
    it("retrieves a video by id", function()
      local v = assert(c:create{ prompt = "to retrieve" })
      E:clear_requests()
      local again, err = c:retrieve(v.id)
      assert.is_nil(err)
      assert.are.equal(v.id, again.id)
      assert.are.equal("to retrieve", again.prompt)
      local r = E:last_request()
      assert.are.equal("GET", r.method)
      assert.are.equal("/v1/videos/" .. v.id, r.path)
    end)

    it("deletes a video, which is then not found", function()
      local v = H.completed_video(c, E, { prompt = "to delete" })
      local deleted, err = c:delete(v.id)
      assert.is_nil(err)
      assert.are.same({ id = v.id, object = "video.deleted", deleted = true }, deleted)
      local r = E:last_request()
      assert.are.equal("DELETE", r.method)
      assert.are.equal("/v1/videos/" .. v.id, r.path)
      local gone, gerr = c:retrieve(v.id)
      assert.is_nil(gone)
      assert.are.equal("not_found", gerr.kind)
      assert.are.equal(404, gerr.status)
      assert.matches("^req_%x+$", gerr.request_id)
      assert.matches(v.id, gerr.message, 1, true)
      local again, derr = c:delete(v.id)
      assert.is_nil(again)
      assert.are.equal("not_found", derr.kind)
    end)
  end)

  describe("remix", function()
    it("makes a new video from a completed one", function()
      local source = H.completed_video(c, E, { prompt = "source", seconds = "8", size = "1280x720" })
      E:clear_requests()
      local remixed, err = c:remix(source.id, { prompt = "now in winter" })
      assert.is_nil(err)
      assert.are_not.equal(source.id, remixed.id)
      assert.are.equal(source.id, remixed.remixed_from_video_id)
      assert.are.equal("now in winter", remixed.prompt)
      assert.are.equal("8", remixed.seconds)
      assert.are.equal("1280x720", remixed.size)
      local r = E:last_request()
      assert.are.equal("POST", r.method)
      assert.are.equal("/v1/videos/" .. source.id .. "/remix", r.path)
      assert.are.same({ prompt = "now in winter" }, r.json)
    end)

    it("returns the server's error for a video that is not complete", function()
      local v = assert(c:create{ prompt = "still queued" })
      E:force_video(v.id, { status = "queued" })
      local remixed, err = c:remix(v.id, { prompt = "too early" })
      assert.is_nil(remixed)
      assert.are.equal("bad_request", err.kind)
    end)

    it("raises for a missing prompt or an unknown option", function()
      raises_before_request(function() c:remix("video_x", {}) end, "field 'prompt' is required")
      raises_before_request(function() c:remix("video_x", { prompt = "p", seconds = "4" } ) end,
        "unknown option 'seconds'")
      raises_before_request(function() c:remix("video_x") end, "table expected")
    end)
  end)

  describe("edit", function()
    it("sends {video: {id}} as JSON for a video id", function()
      local source = H.completed_video(c, E, { prompt = "edit source", size = "1280x720",
                                               model = "sora-2-pro" })
      E:clear_requests()
      local edited, err = c:edit{ video = source.id, prompt = "make it red" }
      assert.is_nil(err)
      local r = E:last_request()
      assert.are.equal("POST", r.method)
      assert.are.equal("/v1/videos/edits", r.path)
      assert.are.same({ video = { id = source.id }, prompt = "make it red" }, r.json)
      assert.are_not.equal(source.id, edited.id)
      assert.are.equal("sora-2-pro", edited.model)
      assert.are.equal("1280x720", edited.size)
      assert(c:edit{ video = { id = source.id }, prompt = "as a table" })
      assert.are.same({ video = { id = source.id }, prompt = "as a table" }, E:last_request().json)
    end)

    it("uploads a path as a video/mp4 part", function()
      local path = H.FIXTURES .. "clip.mp4"
      local edited, err = c:edit{ video = path, prompt = "from a clip" }
      assert.is_nil(err)
      assert.are.equal("sora-2", edited.model)
      local r = E:last_request()
      assert.are.equal("/v1/videos/edits", r.path)
      assert.matches("^multipart/form%-data", r.headers["content-type"])
      local part = H.part(r, "video")
      assert.are.equal("clip.mp4", part.filename)
      assert.are.equal("video/mp4", part.content_type)
      assert.are.equal(#H.read(path), part.size)
      assert.are.equal("from a clip", H.part(r, "prompt").data)
    end)

    it("returns not_found for an unknown video id", function()
      local edited, err = c:edit{ video = "video_unknown", prompt = "x" }
      assert.is_nil(edited)
      assert.are.equal("not_found", err.kind)
    end)

    it("raises for an image given as the video, and for missing fields", function()
      raises_before_request(function()
        c:edit{ video = H.FIXTURES .. "ref-1280x720.png", prompt = "x" }
      end, "is not an MP4, QuickTime or WebM video")
      raises_before_request(function() c:edit{ prompt = "x" } end, "field 'video' is required")
      raises_before_request(function() c:edit{ video = "video_x" } end, "field 'prompt' is required")
      raises_before_request(function() c:edit{ video = 1, prompt = "x" } end, "field 'video'")
    end)
  end)

  describe("extend", function()
    it("sends seconds as a string and answers with the stitched length", function()
      local source = H.completed_video(c, E, { prompt = "extend source", seconds = "4" })
      E:clear_requests()
      local extended, err = c:extend{ video = source.id, prompt = "and then", seconds = 8 }
      assert.is_nil(err)
      local r = E:last_request()
      assert.are.equal("POST", r.method)
      assert.are.equal("/v1/videos/extensions", r.path)
      assert.are.same({ video = { id = source.id }, prompt = "and then", seconds = "8" }, r.json)
      assert.are.equal("12", extended.seconds)
    end)

    it("uploads a clip as multipart", function()
      local extended, err = c:extend{ video = H.FIXTURES .. "clip.mp4", prompt = "go on",
                                      seconds = "4" }
      assert.is_nil(err)
      assert.are.equal("4", extended.seconds)
      local r = E:last_request()
      assert.are.equal("video/mp4", H.part(r, "video").content_type)
      assert.are.equal("4", H.part(r, "seconds").data)
    end)

    it("requires seconds", function()
      raises_before_request(function() c:extend{ video = "video_x", prompt = "p" } end,
        "field 'seconds' is required")
    end)
  end)

  describe("characters", function()
    it("creates a character from a clip and reads it back", function()
      local path = H.FIXTURES .. "clip.mp4"
      local character, err = c:create_character{ video = path, name = "Ada" }
      assert.is_nil(err)
      assert.matches("^char_%x+$", character.id)
      assert.are.equal("Ada", character.name)
      assert.is_true(H.is_integer(character.created_at))
      local r = E:last_request()
      assert.are.equal("POST", r.method)
      assert.are.equal("/v1/videos/characters", r.path)
      local part = H.part(r, "video")
      assert.are.equal("clip.mp4", part.filename)
      assert.are.equal("video/mp4", part.content_type)
      assert.are.equal(#H.read(path), part.size)
      assert.are.equal("Ada", H.part(r, "name").data)

      local again, gerr = c:get_character(character.id)
      assert.is_nil(gerr)
      assert.are.same(character, again)
      r = E:last_request()
      assert.are.equal("GET", r.method)
      assert.are.equal("/v1/videos/characters/" .. character.id, r.path)
    end)

    it("uploads bytes given as {data}", function()
      local data = H.fixture("clip.mp4")
      assert(c:create_character{ video = { data = data }, name = "Bytes" })
      local part = H.part(E:last_request(), "video")
      assert.are.equal("video.mp4", part.filename)
      assert.are.equal("video/mp4", part.content_type)
      assert.are.equal(#data, part.size)
    end)

    it("returns not_found for an unknown character", function()
      local character, err = c:get_character("char_unknown")
      assert.is_nil(character)
      assert.are.equal("not_found", err.kind)
      assert.are.equal(404, err.status)
    end)

    it("raises for a missing name or a clip that is not a video", function()
      raises_before_request(function()
        c:create_character{ video = H.FIXTURES .. "clip.mp4" }
      end, "field 'name' is required")
      raises_before_request(function()
        c:create_character{ video = H.FIXTURES .. "not-an-image.txt", name = "x" }
      end, "field 'video'")
    end)
  end)

  describe("ids", function()
    local cases = {
      { "a/b", "a%2Fb" },
      { "x?limit=1", "x%3Flimit%3D1" },
      { "frag#1", "frag%231" },
      { "..", "%2E%2E" },
      { "../videos", "%2E%2E%2Fvideos" },
      { "a b", "a%20b" },
      { "caf\195\169", "caf%C3%A9" },
    }
    for _, case in ipairs(cases) do
      it("percent-encodes " .. string.format("%q", case[1]), function()
        local v, err = c:retrieve(case[1])
        assert.is_nil(v)
        assert.are.equal("not_found", err.kind)
        assert.are.equal("No video found with id '" .. case[1] .. "'.", err.message)
        local r = E:last_request()
        assert.are.equal("GET", r.method)
        assert.are.equal("/v1/videos/" .. case[2], r.path)
        assert.are.same({}, r.query)
      end)
    end

    it("percent-encodes ids in every endpoint", function()
      c:delete("../x")
      assert.are.equal("/v1/videos/%2E%2E%2Fx", E:last_request().path)
      c:remix("a/b", { prompt = "p" })
      assert.are.equal("/v1/videos/a%2Fb/remix", E:last_request().path)
      c:download_content("a?b")
      assert.are.equal("/v1/videos/a%3Fb/content", E:last_request().path)
      c:get_character("c/d")
      assert.are.equal("/v1/videos/characters/c%2Fd", E:last_request().path)
    end)

    it("raises for empty ids and ids with CR, LF or NUL before any request", function()
      raises_before_request(function() c:retrieve("") end, "the id is empty")
      raises_before_request(function() c:retrieve("video_1\r\nX-Evil: 1") end, "CR, LF or NUL")
      raises_before_request(function() c:retrieve("video_1\n") end, "CR, LF or NUL")
      raises_before_request(function() c:retrieve("video_1\0") end, "CR, LF or NUL")
      raises_before_request(function() c:delete("a\rb") end, "CR, LF or NUL")
      raises_before_request(function() c:remix("", { prompt = "p" }) end, "the id is empty")
      raises_before_request(function() c:download_content("a\0b") end, "CR, LF or NUL")
      raises_before_request(function() c:get_character("") end, "the id is empty")
      raises_before_request(function() c:retrieve() end, "string expected")
      raises_before_request(function() c:retrieve({}) end, "string expected")
    end)
  end)
end)
