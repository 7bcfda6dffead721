-- Specs for the Videos API emulator, over real sockets on 127.0.0.1.

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local emulator = require "support.emulator"

local KEY = "sk-test"
local FIXTURES = "spec/fixtures/"

local function read_fixture(name)
  local f = assert(io.open(FIXTURES .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local E

-- One request with socket.http; returns status, headers, body (decoded when JSON).
local function request(method, path, opts)
  opts = opts or {}
  local headers = opts.headers or {}
  if opts.key ~= false and not headers.authorization then
    headers.authorization = "Bearer " .. (opts.key or KEY)
  end
  local body = opts.body
  if opts.json ~= nil then
    body = cjson.encode(opts.json)
    headers["content-type"] = "application/json"
  end
  if body then headers["content-length"] = #body end
  local chunks = {}
  local ok, status, rheaders = http.request{
    url = (opts.base or E.url) .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks),
  }
  assert(ok, status)
  local text = table.concat(chunks)
  local decoded = text
  if not opts.raw and (rheaders["content-type"] or ""):find("json") then decoded = cjson.decode(text) end
  return status, rheaders, decoded, text
end

-- A multipart body from an array of { name, value, filename?, content_type? }.
local function multipart(fields)
  local boundary = "----spec" .. tostring(math.random(1e9))
  local out = {}
  for _, f in ipairs(fields) do
    out[#out + 1] = "--" .. boundary .. "\r\n"
    local disp = 'Content-Disposition: form-data; name="' .. f[1] .. '"'
    if f.filename then disp = disp .. '; filename="' .. f.filename .. '"' end
    out[#out + 1] = disp .. "\r\n"
    if f.content_type then out[#out + 1] = "Content-Type: " .. f.content_type .. "\r\n" end
    out[#out + 1] = "\r\n" .. f[2] .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

local function post_form(path, fields, opts)
  local body, ct = multipart(fields)
  opts = opts or {}
  opts.body, opts.headers = body, { ["content-type"] = ct }
  return request("POST", path, opts)
end

local function create(prompt, extra)
  local fields = extra or {}
  fields.prompt = prompt
  local status, _, video = request("POST", "/videos", { json = fields })
  assert.are.equal(200, status)
  return video
end

local function wait_status(id, wanted)
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline do
    local _, _, v = request("GET", "/videos/" .. id)
    if v.status == wanted then return v end
    socket.sleep(0.05)
  end
  error("video " .. id .. " never became " .. wanted)
end

local function completed_video()
  local v = create("a completed clip")
  E:force_video(v.id, { status = "completed" })
  return v
end

-- A raw connection for what socket.http cannot express.
local function raw_connect()
  local host, port = E.url:match("^http://([^:/]+):(%d+)")
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect(host, tonumber(port)))
  return c
end

-- Reads one response from a raw connection: status, headers, body.
local function raw_response(c)
  local line = assert(c:receive("*l"))
  local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    headers[k:lower()] = v
  end
  local body = ""
  local n = tonumber(headers["content-length"] or 0)
  if n > 0 then body = assert(c:receive(n)) end
  return status, headers, body
end


describe("sora emulator", function()
  setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = KEY }
  end)
  teardown(function()
    if E then E:stop() end
  end)
  before_each(function()
    E:reset()
  end)

  describe("auth", function()
    it("rejects a missing key with OpenAI's message", function()
      local status, h, body = request("GET", "/videos", { key = false })
      assert.are.equal(401, status)
      assert.truthy(body.error.message:find("^You didn't provide an API key"))
      assert.are.equal(cjson.null, body.error.code)
      assert.truthy(h["x-request-id"]:match("^req_%x+$"))
    end)

    it("rejects a wrong key without echoing it", function()
      local status, _, body, text = request("GET", "/videos", { key = "sk-wrong-secret" })
      assert.are.equal(401, status)
      assert.are.equal("invalid_api_key", body.error.code)
      assert.are.equal("invalid_request_error", body.error.type)
      assert.falsy(text:find("wrong", 1, true))
    end)

    it("records a fingerprint of the Authorization header, never the credential", function()
      local secret = "sk-proj-recorded-secret-0123456789"
      request("GET", "/videos")
      request("GET", "/videos", { key = secret })
      request("GET", "/videos", { headers = { authorization = "Basic " .. secret } })
      local list = E:requests()
      assert.are.equal(E.bearer(KEY), list[1].headers.authorization)
      assert.matches("^Bearer %[sha256:%x+%]$", list[2].headers.authorization)
      assert.are.equal(16, #list[2].headers.authorization:match("sha256:(%x+)"))
      assert.are_not.equal(E.bearer(KEY), list[2].headers.authorization)
      assert.matches("^%[sha256:%x+%]$", list[3].headers.authorization)
      -- the whole control API answer: no trace of either key
      local _, _, _, text = request("GET", "/requests", { base = E.control_url, raw = true })
      assert.falsy(text:find(secret, 1, true))
      assert.falsy(text:find(KEY, 1, true))
      -- the fingerprint is SHA-256 of the token, so a test can compute it
      assert.are.equal("Bearer [sha256:" .. require("sora.emulator.sha256").hex(secret):sub(1, 16)
        .. "]", list[2].headers.authorization)
    end)
  end)

  describe("create", function()
    it("creates a queued video from JSON with defaults and integer JSON", function()
      local status, h, v, text = request("POST", "/videos", { json = { prompt = "a cat" } })
      assert.are.equal(200, status)
      assert.truthy(v.id:match("^video_" .. ("%x"):rep(32)))
      assert.are.same({ "video", "sora-2", "queued", 0, "720x1280", "4", "a cat" },
        { v.object, v.model, v.status, v.progress, v.size, v.seconds, v.prompt })
      assert.are.equal(cjson.null, v.completed_at)
      assert.are.equal(cjson.null, v.expires_at)
      assert.are.equal(cjson.null, v.error)
      assert.are.equal(cjson.null, v.remixed_from_video_id)
      assert.truthy(text:find('"created_at":%d+,'))
      assert.falsy(text:find("e%+"))
      assert.truthy(tonumber(h["openai-poll-after-ms"]))
    end)

    it("creates from multipart with an image reference of the right size", function()
      for _, case in ipairs{ { "ref-1280x720.png", "image/png" },
          { "ref-1280x720.jpg", "image/jpeg" }, { "ref-1280x720.webp", "image/webp" } } do
        local status, _, v = post_form("/videos", {
          { "prompt", "ref" }, { "size", "1280x720" }, { "seconds", "8" }, { "model", "sora-2-pro" },
          { "input_reference", read_fixture(case[1]), filename = case[1], content_type = case[2] },
        })
        assert.are.equal(200, status, case[1])
        assert.are.same({ "1280x720", "8", "sora-2-pro" }, { v.size, v.seconds, v.model })
      end
      local parts = E:last_request().parts
      assert.are.equal("input_reference", parts[5].name)
      assert.are.equal(84, parts[5].size)
    end)

    it("accepts input_reference objects in JSON and multipart", function()
      local status = request("POST", "/videos", { json = { prompt = "x",
        input_reference = { image_url = "https://example.com/a.png" } } })
      assert.are.equal(200, status)
      status = post_form("/videos", { { "prompt", "x" }, { "input_reference[file_id]", "file-123" } })
      assert.are.equal(200, status)
      local _, _, body = request("POST", "/videos", { json = { prompt = "x",
        input_reference = { image_url = "https://e.com/a.png", file_id = "file-1" } } })
      assert.are.equal("input_reference", body.error.param)
    end)

    local function expect_400(fields, param, code, pattern)
      local status, _, body
      if fields.multipart then
        status, _, body = post_form("/videos", fields.multipart)
      else
        status, _, body = request("POST", "/videos", { json = fields })
      end
      assert.are.equal(400, status)
      assert.are.equal(param, body.error.param)
      if code then assert.are.equal(code, body.error.code) end
      if pattern then assert.truthy(body.error.message:find(pattern), body.error.message) end
      assert.are.equal("invalid_request_error", body.error.type)
    end

    it("validates fields with OpenAI's wording", function()
      expect_400({ model = "sora-2" }, "prompt", "missing_required_parameter",
        "^Missing required parameter: 'prompt'%.$")
      expect_400({ prompt = "" }, "prompt", "string_below_min_length")
      expect_400({ prompt = ("x"):rep(32001) }, "prompt", "string_above_max_length")
      expect_400({ prompt = "x", seconds = "10" }, "seconds", "invalid_value",
        "^Invalid value: '10'%. Supported values are: '4', '8', and '12'%.$")
      expect_400({ prompt = "x", seconds = 8 }, "seconds", "invalid_type",
        "but got an integer instead")
      expect_400({ prompt = "x", size = "640x480" }, "size", "invalid_value")
      expect_400({ prompt = "x", model = "dall-e-3" }, "model", "invalid_value")
      expect_400({ prompt = "x", video = "v" }, "video", "unknown_parameter",
        "^Unknown parameter: 'video'%.$")
    end)

    it("accepts the later durations and sizes", function()
      local v = create("x", { seconds = "20", size = "1920x1080" })
      assert.are.same({ "20", "1920x1080" }, { v.seconds, v.size })
    end)

    it("rejects bad input_reference uploads", function()
      local png = read_fixture("ref-1280x720.png")
      expect_400({ multipart = { { "prompt", "x" }, { "input_reference", png,
        content_type = "image/png" } } }, "input_reference", "invalid_type",
        "expected a file, but got a string")
      expect_400({ multipart = { { "prompt", "x" }, { "size", "1280x720" }, { "input_reference",
        png, filename = "a.png", content_type = "application/octet-stream" } } },
        "input_reference", nil, "unsupported mimetype")
      expect_400({ multipart = { { "prompt", "x" }, { "input_reference",
        read_fixture("not-an-image.txt"), filename = "a.png", content_type = "image/png" } } },
        "input_reference", "invalid_file")
      expect_400({ multipart = { { "prompt", "x" }, { "size", "1280x720" }, { "input_reference",
        read_fixture("ref-1280x720.jpg"), filename = "a.png", content_type = "image/png" } } },
        "input_reference", "invalid_file")
      expect_400({ multipart = { { "prompt", "x" }, { "input_reference", png, filename = "a.png",
        content_type = "image/png" } } }, "input_reference", nil,
        "^Inpaint image must match the requested width and height")
      local status = post_form("/videos", { { "prompt", "x" }, { "input_reference",
        read_fixture("ref-720x1280.png"), filename = "a.png", content_type = "image/png" } })
      assert.are.equal(200, status)
    end)

    it("answers malformed JSON with a parse error", function()
      local status, _, body = request("POST", "/videos", { body = "{nope",
        headers = { ["content-type"] = "application/json" } })
      assert.are.equal(400, status)
      assert.truthy(body.error.message:find("could not parse the JSON body"))
    end)
  end)

  describe("lifecycle", function()
    it("goes queued, in_progress, completed from the clock", function()
      -- a job of 1.5 s (the suite's 0.3 s left a loaded machine's 0.15 s sleep no margin: it
      -- once woke to a completed video)
      E:config{ job_seconds = 1.5 }
      finally(function() E:config{ job_seconds = 0.3 } end)
      local v = create("slow")
      local _, _, now = request("GET", "/videos/" .. v.id)
      assert.truthy(now.status == "queued" or now.status == "in_progress")
      socket.sleep(0.4)
      local _, h
      _, h, now = request("GET", "/videos/" .. v.id)
      assert.are.equal("in_progress", now.status)
      assert.truthy(now.progress > 0 and now.progress < 100)
      assert.truthy(h["openai-poll-after-ms"])
      local done = wait_status(v.id, "completed")
      assert.are.equal(100, done.progress)
      assert.are.equal("number", type(done.completed_at))
      assert.are.equal(done.completed_at + 3600, done.expires_at)
      _, h = request("GET", "/videos/" .. v.id)
      assert.is_nil(h["openai-poll-after-ms"])
    end)

    it("fails prompts with #fail", function()
      local v = create("please #fail")
      local failed = wait_status(v.id, "failed")
      assert.are.equal("moderation_blocked", failed.error.code)
      assert.are.equal("string", type(failed.error.message))
      local status, _, body = request("GET", "/videos/" .. v.id .. "/content")
      assert.are.equal(400, status)
      assert.truthy(body.error)
    end)

    it("lets tests force fields", function()
      local v = create("x")
      local forced = E:force_video(v.id, { status = "in_progress", progress = 42 })
      assert.are.same({ "in_progress", 42 }, { forced.status, forced.progress })
      local _, _, now = request("GET", "/videos/" .. v.id)
      assert.are.same({ "in_progress", 42 }, { now.status, now.progress })
    end)

    it("uses the configured poll interval", function()
      E:config{ poll_after_ms = 1234 }
      local _, h = request("POST", "/videos", { json = { prompt = "x" } })
      assert.are.equal("1234", h["openai-poll-after-ms"])
    end)
  end)

  describe("list, retrieve, delete", function()
    it("pages in both orders without repeats", function()
      local ids = {}
      for i = 1, 7 do ids[i] = create("v" .. i).id end
      for _, order in ipairs{ "desc", "asc" } do
        local seen, after, pages = {}, nil, 0
        repeat
          local q = "?limit=3&order=" .. order .. (after and ("&after=" .. after) or "")
          local status, _, page = request("GET", "/videos" .. q)
          assert.are.equal(200, status)
          assert.are.equal("list", page.object)
          for _, v in ipairs(page.data) do
            assert.is_nil(seen[v.id]); seen[v.id] = true
            seen[#seen + 1] = v.id
          end
          after, pages = page.last_id, pages + 1
        until not page.has_more
        assert.are.equal(3, pages)
        assert.are.equal(7, #seen)
        assert.are.equal(order == "asc" and ids[1] or ids[7], seen[1])
      end
    end)

    it("returns an empty page with null ids and validates params", function()
      local _, _, page, text = request("GET", "/videos")
      assert.truthy(text:find('"data":[]', 1, true))
      assert.are.equal(cjson.null, page.first_id)
      assert.are.equal(cjson.null, page.last_id)
      assert.are.equal(false, page.has_more)
      for _, q in ipairs{ "?limit=101", "?limit=-1", "?limit=abc", "?order=up",
          "?after=video_unknown" } do
        local status = request("GET", "/videos" .. q)
        assert.are.equal(400, status, q)
      end
    end)

    it("retrieves, deletes, then 404s", function()
      local v = completed_video()
      local status, _, got = request("GET", "/videos/" .. v.id)
      assert.are.equal(200, status)
      assert.are.equal(v.id, got.id)
      local _, _, deleted = request("DELETE", "/videos/" .. v.id)
      assert.are.same({ id = v.id, object = "video.deleted", deleted = true }, deleted)
      local s404, _, body = request("GET", "/videos/" .. v.id)
      assert.are.equal(404, s404)
      assert.truthy(body.error.message:find(v.id, 1, true))
      assert.are.equal(404, (request("DELETE", "/videos/" .. v.id)))
    end)

    it("deletes completed and failed videos only, as OpenAI's spec says", function()
      local queued = create("still queued")
      E:force_video(queued.id, { status = "queued" })
      local running = create("still running")
      E:force_video(running.id, { status = "in_progress" })
      for _, v in ipairs{ queued, running } do
        local status, _, body = request("DELETE", "/videos/" .. v.id)
        assert.are.equal(400, status)
        assert.are.equal("invalid_request_error", body.error.type)
        assert.are.equal(cjson.null, body.error.code)
        assert.matches("only completed or failed videos can be deleted", body.error.message, 1, true)
        assert.matches(v.id, body.error.message, 1, true)
        assert.are.equal(200, (request("GET", "/videos/" .. v.id)))   -- still there
      end
      local failed = create("#fail soon")
      E:force_video(failed.id, { status = "failed" })
      local status, _, body = request("DELETE", "/videos/" .. failed.id)
      assert.are.equal(200, status)
      assert.is_true(body.deleted)
      -- a job that finishes by the clock becomes deletable
      local finished = create("finishes")
      wait_status(finished.id, "completed")
      assert.are.equal(200, (request("DELETE", "/videos/" .. finished.id)))
      -- the control API can still make the server lose a running job
      E:forget_video(running.id)
      assert.are.equal(404, (request("GET", "/videos/" .. running.id)))
    end)

    it("percent-decodes ids in paths", function()
      local v = create("x")
      local encoded = v.id:gsub("_", "%%5F")
      assert.are.equal(200, (request("GET", "/videos/" .. encoded)))
    end)

    it("answers unknown routes 404 and wrong methods 405, in JSON", function()
      local status, h, body = request("GET", "/nothing")
      assert.are.equal(404, status)
      assert.truthy(body.error.message:find("Invalid URL"))
      status, h, body = request("PUT", "/videos")
      assert.are.equal(405, status)
      assert.truthy(h["content-type"]:find("application/json"))
    end)
  end)

  describe("derived videos", function()
    it("remixes completed videos only", function()
      local v = create("x", { seconds = "8" })
      local status = request("POST", "/videos/" .. v.id .. "/remix", { json = { prompt = "y" } })
      assert.are.equal(400, status)
      E:force_video(v.id, { status = "completed" })
      local _, _, r = request("POST", "/videos/" .. v.id .. "/remix", { json = { prompt = "y" } })
      assert.are.same({ v.id, "queued", "8", "y" },
        { r.remixed_from_video_id, r.status, r.seconds, r.prompt })
      assert.are.equal(404, (request("POST", "/videos/video_nope/remix", { json = { prompt = "y" } })))
    end)

    it("edits by id (JSON) and by upload (multipart)", function()
      local v = completed_video()
      local status, _, e = request("POST", "/videos/edits",
        { json = { video = { id = v.id }, prompt = "bluer" } })
      assert.are.equal(200, status)
      assert.are.equal("bluer", e.prompt)
      status = post_form("/videos/edits", { { "prompt", "p" }, { "video[id]", v.id } })
      assert.are.equal(200, status)
      status = post_form("/videos/edits", { { "prompt", "p" },
        { "video", read_fixture("clip.mp4"), filename = "clip.mp4", content_type = "video/mp4" } })
      assert.are.equal(200, status)
      local _, _, body = post_form("/videos/edits", { { "prompt", "p" }, { "video",
        read_fixture("not-an-image.txt"), filename = "c.mp4", content_type = "video/mp4" } })
      assert.are.equal("video", body.error.param)
    end)

    it("extends to the stitched total duration", function()
      local v = completed_video()
      local status, _, x = request("POST", "/videos/extensions",
        { json = { video = { id = v.id }, prompt = "more", seconds = "8" } })
      assert.are.equal(200, status)
      assert.are.equal("12", x.seconds)
      local s400, _, body = request("POST", "/videos/extensions",
        { json = { video = { id = v.id }, prompt = "more" } })
      assert.are.equal(400, s400)
      assert.are.equal("seconds", body.error.param)
    end)

    it("creates and reads characters", function()
      local status, _, c = post_form("/videos/characters", { { "name", "Ada" },
        { "video", read_fixture("clip.mp4"), filename = "clip.mp4", content_type = "video/mp4" } })
      assert.are.equal(200, status)
      assert.truthy(c.id:match("^char_%x+$"))
      assert.are.equal("Ada", c.name)
      local _, _, got = request("GET", "/videos/characters/" .. c.id)
      assert.are.same(c, got)
      assert.are.equal(404, (request("GET", "/videos/characters/char_nope")))
      local s400 = post_form("/videos/characters", { { "name", ("n"):rep(81) },
        { "video", read_fixture("clip.mp4"), filename = "clip.mp4", content_type = "video/mp4" } })
      assert.are.equal(400, s400)
    end)
  end)

  describe("content", function()
    it("serves real media per variant", function()
      local v = completed_video()
      local cases = {
        { "", "video/mp4", function(b) return b:sub(5, 8) == "ftyp" end },
        { "?variant=video", "video/mp4", function(b) return b:sub(5, 8) == "ftyp" end },
        { "?variant=thumbnail", "image/webp", function(b) return b:sub(9, 12) == "WEBP" end },
        { "?variant=spritesheet", "image/jpeg", function(b) return b:sub(1, 3) == "\255\216\255" end },
      }
      for _, case in ipairs(cases) do
        local status, h, body = request("GET", "/videos/" .. v.id .. "/content" .. case[1],
          { headers = { accept = "application/binary" } })
        assert.are.equal(200, status)
        assert.are.equal(case[2], h["content-type"])
        assert.are.equal(#body, tonumber(h["content-length"]))
        assert.truthy(case[3](body), case[1])
      end
      assert.are.equal(400, (request("GET", "/videos/" .. v.id .. "/content?variant=gif")))
      assert.are.equal(404, (request("GET", "/videos/video_nope/content")))
    end)

    it("refuses content before completion", function()
      local v = create("x")
      local status, _, body = request("GET", "/videos/" .. v.id .. "/content")
      assert.are.equal(400, status)
      assert.are.equal("video_not_ready", body.error.code)
    end)

    it("serves byte ranges", function()
      local v = completed_video()
      local _, _, full = request("GET", "/videos/" .. v.id .. "/content")
      local status, h, part = request("GET", "/videos/" .. v.id .. "/content",
        { headers = { range = "bytes=10-19" } })
      assert.are.equal(206, status)
      assert.are.equal(full:sub(11, 20), part)
      assert.are.equal("bytes 10-19/" .. #full, h["content-range"])
      status, h, part = request("GET", "/videos/" .. v.id .. "/content",
        { headers = { range = "bytes=100-" } })
      assert.are.equal(206, status)
      assert.are.equal(full:sub(101), part)
      status, h = request("GET", "/videos/" .. v.id .. "/content",
        { headers = { range = "bytes=" .. #full .. "-" } })
      assert.are.equal(416, status)
      assert.are.equal("bytes */" .. #full, h["content-range"])
    end)

    it("expires content after expires_at", function()
      local v = completed_video()
      E:force_video(v.id, { expires_at = os.time() - 1 })
      local status, _, body = request("GET", "/videos/" .. v.id .. "/content")
      assert.are.equal(410, status)
      assert.are.equal("video_expired", body.error.code)
    end)

    it("streams a synthetic body of video_bytes", function()
      E:config{ video_bytes = 3 * 1024 * 1024 + 7 }
      local v = completed_video()
      local status, h, body = request("GET", "/videos/" .. v.id .. "/content")
      assert.are.equal(200, status)
      assert.are.equal(3 * 1024 * 1024 + 7, #body)
      assert.are.equal(tostring(#body), h["content-length"])
      for _, i in ipairs{ 0, 250, 251, 65536, #body - 1 } do
        assert.are.equal(i % 251, body:byte(i + 1))
      end
      local _, _, tail = request("GET", "/videos/" .. v.id .. "/content",
        { headers = { range = "bytes=1000000-1000009" } })
      assert.are.equal(1000000 % 251, tail:byte(1))
    end)
  end)

  describe("faults", function()
    it("responds as scripted, for `times` requests, then normally", function()
      E:fault{ path = "^/v1/videos$", method = "GET", action = "respond", status = 429,
        headers = { ["retry-after"] = "1" }, times = 2 }
      local status, h, body = request("GET", "/videos")
      assert.are.equal(429, status)
      assert.are.equal("1", h["retry-after"])
      assert.are.equal("rate_limit_exceeded", body.error.code)
      assert.are.equal(429, (request("GET", "/videos")))
      assert.are.equal(200, (request("GET", "/videos")))
      E:fault{ action = "respond", status = 503, body = { error = { message = "busy" } } }
      local s503, _, b503 = request("GET", "/videos")
      assert.are.equal(503, s503)
      assert.are.equal("busy", b503.error.message)
      assert.are.equal(4, #E:requests())   -- faulted requests are recorded too
    end)

    it("resets the connection", function()
      E:fault{ action = "reset" }
      local ok, err = http.request(E.url .. "/videos")
      assert.is_nil(ok)
      assert.truthy(err)
    end)

    it("resets mid-body and truncates", function()
      local v = completed_video()
      for _, action in ipairs{ "reset_mid_body", "truncate" } do
        E:fault{ action = action, after_bytes = 100 }
        local c = raw_connect()
        c:send("GET /v1/videos/" .. v.id .. "/content HTTP/1.1\r\nHost: x\r\n"
          .. "Authorization: Bearer " .. KEY .. "\r\n\r\n")
        local line = c:receive("*l")
        assert.are.equal("HTTP/1.1 200 OK", line)
        local length
        repeat
          local h = c:receive("*l")
          length = length or tonumber(h:match("^content%-length: (%d+)"))
        until h == ""
        local data, err, partial = c:receive(length)
        assert.is_nil(data)
        assert.truthy(err == "closed" or err == "connection reset by peer", err)
        assert.are.equal(100, #partial)
        c:close()
      end
    end)

    it("sends malformed JSON and HTML error pages", function()
      E:fault{ action = "malformed_json" }
      local status, h, text = request("GET", "/videos", { raw = true })
      assert.are.equal(200, status)
      assert.are.equal("application/json", h["content-type"])
      assert.are.equal('{"id": "video_', text)
    end)

    it("stalls one connection without blocking others", function()
      E:fault{ action = "stall", path = "^/v1/videos$" }
      local stalled = raw_connect()
      stalled:send("GET /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY .. "\r\n\r\n")
      socket.sleep(0.05)
      local t0 = socket.gettime()
      local status = request("GET", "/videos")
      assert.are.equal(200, status)
      assert.truthy(socket.gettime() - t0 < 1)
      stalled:settimeout(0.2)
      local line, err = stalled:receive("*l")
      assert.is_nil(line)
      assert.are.equal("timeout", err)
      stalled:close()
    end)

    it("delays an answer", function()
      E:fault{ action = "delay", delay_ms = 200 }
      local t0 = socket.gettime()
      assert.are.equal(200, (request("GET", "/videos")))
      assert.truthy(socket.gettime() - t0 >= 0.19)
    end)
  end)

    it("answers a 502 proxy page", function()
      E:fault{ action = "html" }
      local status, h, body = request("GET", "/videos")
      assert.are.equal(502, status)
      assert.are.equal("text/html", h["content-type"])
      assert.truthy(body:find("Bad Gateway"))
    end)

  describe("HTTP", function()
    it("keeps connections alive across requests", function()
      local c = raw_connect()
      for _ = 1, 3 do
        c:send("GET /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY .. "\r\n\r\n")
        local status, h = raw_response(c)
        assert.are.equal(200, status)
        assert.truthy(h["x-request-id"])
      end
      c:close()
    end)

    it("answers Expect: 100-continue and reads chunked bodies", function()
      local body = cjson.encode{ prompt = "continued" }
      local c = raw_connect()
      c:send("POST /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY
        .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body
        .. "\r\nExpect: 100-continue\r\n\r\n")
      assert.are.equal("HTTP/1.1 100 Continue", c:receive("*l"))
      assert.are.equal("", c:receive("*l"))
      c:send(body)
      local status, _, text = raw_response(c)
      assert.are.equal(200, status)
      assert.are.equal("continued", cjson.decode(text).prompt)
      c:send("POST /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY
        .. "\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "5\r\n{\"pro\r\n" .. string.format("%x", #body - 5) .. "\r\n" .. body:sub(6)
        .. "\r\n0\r\n\r\n")
      status, _, text = raw_response(c)
      assert.are.equal(200, status)
      assert.are.equal("continued", cjson.decode(text).prompt)
      c:close()
    end)

    it("serves many connections at once", function()
      local conns = {}
      for i = 1, 64 do
        conns[i] = raw_connect()
        conns[i]:send("GET /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY
          .. "\r\n\r\n")
      end
      for i = 64, 1, -1 do
        assert.are.equal(200, (raw_response(conns[i])))
        conns[i]:close()
      end
    end)

    it("records query, json and multipart details", function()
      E:clear_requests()
      request("GET", "/videos?limit=2&order=asc")
      post_form("/videos", { { "prompt", "hello" } })
      local list = E:requests()
      assert.are.equal(2, #list)
      assert.are.same({ limit = "2", order = "asc" }, list[1].query)
      assert.are.equal("/v1/videos", list[1].path)
      assert.are.equal("prompt", list[2].parts[1].name)
      assert.are.equal("hello", list[2].parts[1].data)
      assert.are.equal(cjson.null, list[2].parts[1].filename)
    end)
  end)
end)
