-- Fault injection through the emulator: for each fault of the network, the server or the
-- disk, the outcome the client gives (client_errors_spec and client_content_spec hold the
-- basic cases; this file adds resumption, sinks, odd bodies, redirects and callbacks).
local sora = require "sora"
local cjson = require "cjson"
local emulator = require "support.emulator"
local H = require "support.client"
local F = require "support.faults"

local SIZE = 2500000 -- the synthetic body (byte i = i % 251) for content faults

describe("faults", function()
  local E, c, once, video, dir

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    once = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 1 }
    video = H.completed_video(c, E, { prompt = "faults" })
  end)

  lazy_teardown(function()
    if c then c:close() end
    if once then once:close() end
    if E then E:stop() end
  end)

  before_each(function()
    E:clear_faults()
    E:config{ video_bytes = cjson.null }
    E:clear_requests()
    dir = F.tempdir()
  end)

  after_each(function()
    H.rmdir(dir)
  end)

  local function content_requests()
    return H.matching(E, "GET", "/content$")
  end

  -- The Range of the second request, as a number (asserting its form).
  local function resumed_from()
    local list = content_requests()
    assert.are.equal(2, #list)
    assert.is_nil(list[1].headers.range)
    local range = list[2].headers.range
    assert.is_string(range)
    local n = tonumber(range:match("^bytes=(%d+)%-$"))
    assert.is_number(n, range)
    assert.is_true(n > 0 and n < SIZE, range)
    return n
  end

  describe("a reset before the headers", function()
    it("is retried", function()
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "reset", times = 1 }
      local v, err = once:retrieve(video.id)
      assert.is_nil(err)
      assert.are.equal(video.id, v.id)
      assert.are.equal(2, #E:requests())
    end)

    it("gives kind connection without retries", function()
      -- a new client: its first request opens a new connection
      local fresh = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
      E:fault{ method = "GET", action = "reset", times = 1 }
      local v, err = fresh:retrieve(video.id)
      fresh:close()
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.is_nil(err.status)
      assert.are.equal(1, err.attempts)
      assert.matches("^GET retrieve: ", err.message)
      assert.are.equal(1, #E:requests())
    end)

    it("sends a POST once with max_retries = 0, even on a reused connection", function()
      -- c's connection is warm (lazy_setup used it). libcurl by itself re-sends a request
      -- whose reused connection died before any answer; with max_retries = 0 a create must
      -- reach the server once: a second create is a second billed video.
      assert(c:retrieve(video.id))
      E:clear_requests()
      E:fault{ method = "POST", action = "reset", times = 1 }
      local v, err = c:create{ prompt = "exactly once" }
      assert.are.equal(1, #H.matching(E, "POST", "^/v1/videos$"))
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
    end)
  end)

  describe("a reset in the middle of a body", function()
    it("of JSON gives kind connection", function()
      E:fault{ method = "GET", action = "reset_mid_body", after_bytes = 20 }
      local v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.are.equal(1, #E:requests())
    end)

    it("of JSON is retried", function()
      E:fault{ method = "GET", action = "reset_mid_body", after_bytes = 20 }
      local v, err = once:retrieve(video.id)
      assert.is_nil(err)
      assert.are.equal(video.id, v.id)
      assert.are.equal(2, #E:requests())
    end)

    it("of a download to a path resumes with a Range request, byte-identical", function()
      E:config{ video_bytes = SIZE }
      local clean = dir .. "/clean.mp4"
      assert(c:download_content(video.id, { path = clean }))
      E:clear_requests()
      local out = dir .. "/resumed.mp4"
      E:fault{ method = "GET", path = "/content$", action = "reset_mid_body", after_bytes = 1000000 }
      local ok, err = once:download_content(video.id, { path = out })
      assert.is_nil(err)
      assert.is_true(ok)
      resumed_from()
      local bytes = H.read(out)
      F.assert_synthetic(bytes, SIZE)
      assert.is_true(bytes == H.read(clean), "the resumed file differs from a clean download")
      assert.are.same({ "clean.mp4", "resumed.mp4" }, H.ls(dir))
    end)

    it("of a download to a string resumes, byte-identical", function()
      E:config{ video_bytes = SIZE }
      E:fault{ method = "GET", path = "/content$", action = "reset_mid_body", after_bytes = 1000000 }
      local bytes, err = once:download_content(video.id)
      assert.is_nil(err)
      resumed_from()
      F.assert_synthetic_exact(bytes, SIZE)
    end)

    it("of a download to a sink resumes, each byte given once", function()
      E:config{ video_bytes = SIZE }
      E:fault{ method = "GET", path = "/content$", action = "reset_mid_body", after_bytes = 1000000 }
      local chunks, progress = {}, {}
      local ok, err = once:download_content(video.id, {
        sink = function(chunk) chunks[#chunks + 1] = chunk end,
        on_progress = function(received, total) progress[#progress + 1] = { received, total } end,
      })
      assert.is_nil(err)
      assert.is_true(ok)
      local from = resumed_from()
      local body = table.concat(chunks)
      F.assert_synthetic_exact(body, SIZE)
      -- progress ends at the whole size and the resumed part reports the whole total
      assert.are.same({ SIZE, SIZE }, progress[#progress])
      local before = 0
      for _, p in ipairs(progress) do
        if p[1] <= from then before = before + 1 end
      end
      assert.is_true(before >= 1)
    end)

    it("of a download without retries gives kind connection and leaves nothing", function()
      E:config{ video_bytes = SIZE }
      local out = dir .. "/cut.mp4"
      E:fault{ method = "GET", path = "/content$", action = "reset_mid_body", after_bytes = 100000 }
      local ok, err = c:download_content(video.id, { path = out })
      assert.is_nil(ok)
      assert.are.equal("connection", err.kind)
      assert.are.same({}, H.ls(dir))
    end)
  end)

  describe("a body shorter than its Content-Length", function()
    it("is resumed for a download to a path", function()
      E:config{ video_bytes = SIZE }
      local out = dir .. "/short.mp4"
      E:fault{ method = "GET", path = "/content$", action = "truncate" }
      local ok, err = once:download_content(video.id, { path = out })
      assert.is_nil(err)
      assert.is_true(ok)
      assert.are.equal(SIZE / 2, resumed_from())
      F.assert_synthetic_exact(H.read(out), SIZE)
      assert.are.same({ "short.mp4" }, H.ls(dir))
    end)

    it("is resumed for a download to a sink", function()
      E:config{ video_bytes = SIZE }
      E:fault{ method = "GET", path = "/content$", action = "truncate", after_bytes = 777777 }
      local chunks = {}
      assert(once:download_content(video.id, { sink = function(s) chunks[#chunks + 1] = s end }))
      assert.are.equal(777777, resumed_from())
      F.assert_synthetic_exact(table.concat(chunks), SIZE)
    end)

    it("gives kind connection without retries (content and JSON)", function()
      E:config{ video_bytes = SIZE }
      E:fault{ method = "GET", path = "/content$", action = "truncate" }
      local bytes, err = c:download_content(video.id)
      assert.is_nil(bytes)
      assert.are.equal("connection", err.kind)
      assert.matches("remaining to read", err.message, 1, true)
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "truncate" }
      local v
      v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
    end)

    it("is retried for JSON", function()
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "truncate" }
      local v, err = once:retrieve(video.id)
      assert.is_nil(err)
      assert.are.equal(video.id, v.id)
    end)

    it("whose bytes all came but Content-Length lied fails and leaves nothing", function()
      -- the server declares 100 bytes more than the body; the resumed Range is then beyond
      -- the end (today: api_status 416 after 2 attempts): an error, never a file that claims
      -- to be whole
      E:config{ video_bytes = 300000 }
      local out = dir .. "/lied.mp4"
      E:fault{ method = "GET", path = "/content$", action = "truncate", after_bytes = 300000 }
      local ok, err = once:download_content(video.id, { path = out })
      assert.is_nil(ok)
      assert.is_true(sora.is_error(err))
      assert.are.same({}, H.ls(dir))
    end)
  end)

  describe("a stalled server", function()
    it("gives kind timeout after the per-attempt timeout", function()
      E:fault{ method = "GET", action = "stall" }
      local elapsed, v, err = F.timed(c.retrieve, c, video.id, { timeout = 0.5 })
      assert.is_nil(v)
      assert.are.equal("timeout", err.kind)
      assert.is_nil(err.status)
      assert.is_true(elapsed >= 0.45 and elapsed < 2, tostring(elapsed))
    end)

    it("gives a stalled download kind timeout after stall_timeout", function()
      local stalling = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0, stall_timeout = 1 }
      local out = dir .. "/stalled.mp4"
      E:fault{ method = "GET", path = "/content$", action = "stall" }
      local elapsed, ok, err = F.timed(stalling.download_content, stalling, video.id, { path = out })
      stalling:close()
      assert.is_nil(ok)
      assert.are.equal("timeout", err.kind)
      assert.is_true(elapsed >= 0.9 and elapsed < 3, tostring(elapsed))
      assert.are.same({}, H.ls(dir))
    end)

    it("gives a download whose answer is slower than stall_timeout kind timeout", function()
      local stalling = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0, stall_timeout = 1 }
      E:fault{ method = "GET", path = "/content$", action = "delay", delay_ms = 4000 }
      local elapsed, bytes, err = F.timed(stalling.download_content, stalling, video.id)
      stalling:close()
      assert.is_nil(bytes)
      assert.are.equal("timeout", err.kind)
      assert.is_true(elapsed < 3, tostring(elapsed))
    end)

    it("does not cut a download that keeps receiving, whatever the timeout", function()
      local slow = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0, timeout = 0.2 }
      E:fault{ method = "GET", path = "/content$", action = "delay", delay_ms = 400 }
      local bytes, err = slow:download_content(video.id)
      slow:close()
      assert.is_nil(err)
      assert.are.equal(H.media("video.mp4"), bytes)
    end)
  end)

  describe("odd bodies", function()
    it("malformed JSON gives invalid_response", function()
      E:fault{ method = "GET", action = "malformed_json" }
      local v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("invalid_response", err.kind)
      assert.are.equal(200, err.status)
    end)

    it("an HTML proxy page gives internal_server with a readable message", function()
      E:fault{ method = "GET", path = "/content$", action = "html" }
      local bytes, err = c:download_content(video.id, { path = dir .. "/proxy.mp4" })
      assert.is_nil(bytes)
      assert.are.equal("internal_server", err.kind)
      assert.are.equal(502, err.status)
      assert.matches("^HTTP 502 from download_content", err.message)
      assert.matches("502 Bad Gateway", err.message, 1, true)
      assert.is_true(#err.message < 200, err.message)
      assert.is_nil(tostring(err):find("[\r\n]"))
      assert.are.same({}, H.ls(dir))
    end)

    it("a 10 MB JSON body is parsed, its unknown field kept", function()
      local t = video:to_table()
      t.padding = string.rep("p", 10 * 1024 * 1024)
      E:fault{ method = "GET", action = "respond", status = 200, body = t }
      local v, err = c:retrieve(video.id)
      assert.is_nil(err)
      assert.are.equal(video.id, v.id)
      assert.are.equal("completed", v.status)
      assert.are.equal(10 * 1024 * 1024, #v.padding)
      assert.are.equal(10 * 1024 * 1024, #v:to_table().padding)
      -- the client is fine afterwards
      assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
    end)

    it("unknown fields of every type are kept in to_table", function()
      local t = video:to_table()
      t.future = { nested = { 1, 2, 3 }, flag = true }
      t.watermark = "sora"
      E:fault{ method = "GET", action = "respond", status = 200, body = t }
      local v = assert(c:retrieve(video.id))
      local copy = v:to_table()
      assert.are.same({ 1, 2, 3 }, copy.future.nested)
      assert.is_true(copy.future.flag)
      assert.are.equal("sora", copy.watermark)
      assert.are.equal("sora", v.watermark)
    end)

    it("null fields are nil, and unknown fields of any type are kept as they come", function()
      local t = video:to_table()
      t.seconds = cjson.null
      t.size = cjson.null
      t.future_flag = false
      t.future_count = "50"
      E:fault{ method = "GET", action = "respond", status = 200, body = t }
      local v, err = c:retrieve(video.id)
      assert.is_nil(err)
      assert.is_nil(v.seconds)
      assert.is_nil(v.size)
      assert.is_false(v.future_flag)
      assert.are.equal("50", v.future_count)
      local copy = v:to_table()
      assert.is_nil(copy.seconds)
      assert.are.equal("50", copy.future_count)
    end)

    it("a video without a string id or status is invalid_response", function()
      local t = video:to_table()
      t.id = 12
      E:fault{ method = "GET", action = "respond", status = 200, body = t }
      local v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("invalid_response", err.kind)
    end)

    it("invalid UTF-8 inside a JSON string is decoded or invalid_response, never a crash", function()
      local body = '{"id":"' .. video.id .. '","object":"video","status":"completed",'
        .. '"progress":100,"created_at":1,"prompt":"a\255\254b\192"}'
      E:fault{ method = "GET", action = "respond", status = 200, body = body }
      local v, err = c:retrieve(video.id)
      if v then
        assert.are.equal(video.id, v.id)
        assert.are.equal("a\255\254b\192", v.prompt)
      else
        assert.are.equal("invalid_response", err.kind)
      end
      -- in an error body too
      E:fault{ method = "GET", action = "respond", status = 400,
               body = '{"error":{"message":"bad \255\254 bytes","type":"x","code":null}}' }
      v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("bad_request", err.kind)
      assert.is_string(tostring(err))
    end)

    it("an empty 200 body and a JSON array are invalid_response", function()
      E:fault{ method = "GET", action = "respond", status = 200, body = "" }
      local v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("invalid_response", err.kind)
      E:fault{ method = "GET", action = "respond", status = 200, body = "[1,2]" }
      v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("invalid_response", err.kind)
    end)
  end)

  describe("a redirect", function()
    local E2, custom

    lazy_setup(function()
      E2 = emulator.start{ job_seconds = 0.3 }
      custom = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0,
                         headers = { ["x-secret"] = "s" } }
    end)

    lazy_teardown(function()
      if custom then custom:close() end
      if E2 then E2:stop() end
    end)

    before_each(function()
      E2:clear_faults()
      E2:clear_requests()
    end)

    it("of content to another host is followed without the key or custom headers", function()
      -- the storage host answers anything (faults come before its auth check)
      E2:fault{ method = "GET", path = "^/v1/storage/", action = "respond", status = 200,
                headers = { ["content-type"] = "video/mp4" }, body = "STORED VIDEO BYTES" }
      E:fault{ method = "GET", path = "/content$", action = "respond", status = 302, body = "",
               headers = { location = E2.url .. "/storage/abc?sig=1" } }
      local bytes, err = custom:download_content(video.id)
      assert.is_nil(err)
      assert.are.equal("STORED VIDEO BYTES", bytes)
      local first = content_requests()[1]
      assert.are.equal(E.bearer(H.KEY), first.headers.authorization)
      assert.are.equal("s", first.headers["x-secret"])
      local list = E2:requests()
      assert.are.equal(1, #list)
      assert.are.equal("/v1/storage/abc", list[1].path)
      assert.are.equal("1", list[1].query.sig)
      assert.is_nil(list[1].headers.authorization)
      assert.is_nil(list[1].headers["api-key"])
      assert.is_nil(list[1].headers["x-secret"])
      for name, value in pairs(list[1].headers) do
        assert.is_nil(tostring(value):find(H.KEY, 1, true), name)
      end
    end)

    it("of content to the same origin keeps the key", function()
      E:fault{ method = "GET", path = "/content$", action = "respond", status = 307, body = "",
               headers = { location = E.url .. "/videos/" .. video.id .. "/content?variant=thumbnail" } }
      local bytes, err = custom:download_content(video.id)
      assert.is_nil(err)
      assert.are.equal(H.media("thumbnail.webp"), bytes)
      local list = content_requests()
      assert.are.equal(2, #list)
      assert.are.equal(E.bearer(H.KEY), list[2].headers.authorization)
    end)

    it("of content to another host keeps the key away on a retry too", function()
      E2:fault{ method = "GET", path = "^/v1/storage/", action = "respond", status = 503,
                headers = { ["retry-after-ms"] = "10" } }
      E2:fault{ method = "GET", path = "^/v1/storage/", action = "respond", status = 200,
                body = "SECOND TRY" }
      E:fault{ method = "GET", path = "/content$", action = "respond", status = 302, body = "",
               headers = { location = E2.url .. "/storage/retry" } }
      local bytes, err = custom:download_content(video.id, { max_retries = 1 })
      assert.is_nil(err)
      assert.are.equal("SECOND TRY", bytes)
      for _, r in ipairs(E2:requests()) do
        assert.is_nil(r.headers.authorization)
        assert.is_nil(r.headers["x-secret"])
      end
    end)

    it("of a JSON endpoint is not followed", function()
      E:fault{ method = "GET", action = "respond", status = 302, body = "",
               headers = { location = E2.url .. "/videos/" .. video.id } }
      local v, err = custom:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("api_status", err.kind)
      assert.are.equal(302, err.status)
      assert.are.equal(0, #E2:requests())
    end)
  end)

  describe("a callback that raises", function()
    before_each(function()
      E:config{ video_bytes = 300000 }
    end)

    local cases = {
      { "on_progress to a path", function(boom) return { path = dir .. "/cb.mp4", on_progress = boom } end },
      { "on_progress to a string", function(boom) return { on_progress = boom } end },
      { "a sink", function(boom) return { sink = boom } end },
    }

    for _, case in ipairs(cases) do
      it("(" .. case[1] .. ") aborts, reaches the caller as raised and leaves nothing", function()
        local thrown = setmetatable({}, { __tostring = function() return "thrown object" end })
        local calls = 0
        local function boom()
          calls = calls + 1
          if calls == 2 then error(thrown) end
        end
        local ok, err = pcall(once.download_content, once, video.id, case[2](boom))
        assert.is_false(ok)
        assert.are.equal(thrown, err)
        assert.are.equal(2, calls)
        assert.are.same({}, H.ls(dir))
        -- a raised error is not retried
        assert.are.equal(1, #content_requests())
        -- a string error keeps its text
        calls = 0
        ok, err = pcall(once.download_content, once, video.id, case[2](function()
          error("callback exploded")
        end))
        assert.is_false(ok)
        assert.matches("callback exploded", err, 1, true)
        assert.are.same({}, H.ls(dir))
        -- the client still works, for content and for JSON
        local bytes = assert(once:download_content(video.id))
        F.assert_synthetic(bytes, 300000)
        assert.are.equal(video.id, assert(once:retrieve(video.id)).id)
      end)
    end

    it("leaves an existing target untouched", function()
      local out = dir .. "/kept.mp4"
      H.write(out, "precious")
      local ok = pcall(c.download_content, c, video.id, { path = out, on_progress = function()
        error("no")
      end })
      assert.is_false(ok)
      assert.are.equal("precious", H.read(out))
      assert.are.same({ "kept.mp4" }, H.ls(dir))
    end)
  end)

  describe("a failed download", function()
    local failures = {
      { "reset", { action = "reset" } },
      { "reset_mid_body", { action = "reset_mid_body", after_bytes = 50000 } },
      { "truncate", { action = "truncate" } },
      { "html", { action = "html" } },
      { "503", { action = "respond", status = 503 } },
      { "404", { action = "respond", status = 404 } },
      { "stall", { action = "stall" } },
    }

    for _, case in ipairs(failures) do
      it("(" .. case[1] .. ") leaves no temporary file and never touches the target", function()
        E:config{ video_bytes = 200000 }
        local quick = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0, stall_timeout = 1 }
        local out = dir .. "/target.mp4"
        local spec = { method = "GET", path = "/content$", times = 1 }
        for k, v in pairs(case[2]) do spec[k] = v end
        -- no target yet: none afterwards
        E:fault(spec)
        local ok, err = quick:download_content(video.id, { path = out })
        assert.is_nil(ok)
        assert.is_true(sora.is_error(err))
        assert.are.same({}, H.ls(dir))
        -- an existing target: untouched, byte for byte, with its mode
        H.write(out, "precious bytes")
        os.execute("chmod 640 " .. H.shell_quote(out))
        E:fault(spec)
        ok, err = quick:download_content(video.id, { path = out })
        quick:close()
        assert.is_nil(ok)
        assert.is_true(sora.is_error(err))
        assert.are.equal("precious bytes", H.read(out))
        assert.are.same({}, F.temp_files(dir))
        assert.are.same({ "target.mp4" }, H.ls(dir))
      end)
    end
  end)

  describe("the disk", function()
    it("an unwritable directory gives kind io naming the path, before any request", function()
      local target
      local sys_probe = io.open("/sys/faults-probe", "wb")
      if sys_probe then
        sys_probe:close()
        os.remove("/sys/faults-probe")
        pending("/sys is writable here")
        return
      end
      -- root writes through permission bits, so use a directory nobody may create files in
      local ro = dir .. "/ro"
      os.execute("mkdir " .. H.shell_quote(ro) .. " && chmod 555 " .. H.shell_quote(ro))
      local probe = io.open(ro .. "/probe", "wb")
      if probe then
        probe:close()
        os.remove(ro .. "/probe")
        target = "/sys/faults-out.mp4" -- sysfs refuses new files even to root
      else
        target = ro .. "/out.mp4"
      end
      local ok, err = c:download_content(video.id, { path = target })
      assert.is_nil(ok)
      assert.are.equal("io", err.kind)
      assert.matches(target, err.message, 1, true)
      assert.matches("Permission denied", err.message, 1, true)
      assert.are.equal(0, #content_requests())
    end)

    it("a parent that is a file gives kind io naming the path", function()
      H.write(dir .. "/file", "x")
      local target = dir .. "/file/out.mp4"
      local ok, err = c:download_content(video.id, { path = target })
      assert.is_nil(ok)
      assert.are.equal("io", err.kind)
      assert.matches(target, err.message, 1, true)
      assert.matches("Not a directory", err.message, 1, true)
      assert.are.equal("x", H.read(dir .. "/file"))
    end)

    it("a target that is a directory gives kind io and leaves it", function()
      local target = dir .. "/adir"
      os.execute("mkdir " .. H.shell_quote(target))
      local ok, err = c:download_content(video.id, { path = target })
      assert.is_nil(ok)
      assert.are.equal("io", err.kind)
      assert.matches(target, err.message, 1, true)
      assert.are.same({ "adir" }, H.ls(dir))
      assert.are.same({}, H.ls(target))
    end)
  end)

  describe("wait", function()
    it("keeps polling through 503s and resets", function()
      local v = assert(c:create{ prompt = "survives" })
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "respond", status = 503, times = 2 }
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "reset", times = 1 }
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "malformed_json", times = 1 }
      local done, err = v:wait{ interval = 0.05, timeout = 10 }
      assert.is_nil(err)
      assert.are.equal("completed", done.status)
      assert.are.equal(0, #E:control("GET", "/faults"))
    end)

    it("keeps the last poll failure when the deadline comes", function()
      local v = assert(c:create{ prompt = "never answered" })
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "respond", status = 503, times = 100 }
      local done, err = v:wait{ interval = 0.05, timeout = 0.5 }
      assert.is_nil(done)
      assert.are.equal("timeout", err.kind)
      assert.is_true(sora.is_error(err.last_error))
      assert.are.equal("internal_server", err.last_error.kind)
      assert.are.equal(503, err.last_error.status)
    end)

    it("stops at a failure that is not transient", function()
      local v = assert(c:create{ prompt = "forbidden" })
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "respond", status = 401, times = 1 }
      local done, err = v:wait{ interval = 0.05, timeout = 5 }
      assert.is_nil(done)
      assert.are.equal("authentication", err.kind)
    end)
  end)
end)
