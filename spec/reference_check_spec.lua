-- create's local check of a file input_reference: the image's size is read from its header
-- (PNG IHDR, JPEG start-of-frame, WebP VP8/VP8L/VP8X) and, when it is not `size` (the API's
-- default 720x1280 when none is given), create returns the API's own bad_request error
-- without sending anything. check_reference = false sends it anyway (and the server says the
-- same); what the check cannot read is uploaded as before, for the server to judge.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

local KEY = "sk-reference-test-0123456789"

local function u16le(n) return string.char(n % 256, math.floor(n / 256) % 256) end
local function u16be(n) return string.char(math.floor(n / 256) % 256, n % 256) end
local function u24le(n) return u16le(n % 65536) .. string.char(math.floor(n / 65536) % 256) end
local function u32le(n) return u16le(n % 65536) .. u16le(math.floor(n / 65536)) end

local function riff(chunk, payload)
  local body = "WEBP" .. chunk .. u32le(#payload) .. payload
  return "RIFF" .. u32le(#body) .. body
end

-- Headers as encoders write them: what the check reads, and all the emulator reads too.
local function webp_lossy(w, h)
  return riff("VP8 ", "\016\002\000" .. "\157\001\042" .. u16le(w) .. u16le(h) .. ("\0"):rep(20))
end
local function webp_extended(w, h)
  return riff("VP8X", "\016\0\0\0" .. u24le(w - 1) .. u24le(h - 1))
    .. "ALPH" .. u32le(4) .. ("\0"):rep(4)
end

-- The real JPEG fixture with a 60 KB APP1 segment (as large EXIF blocks are), a fill byte
-- before the next marker, and the frame made progressive (SOF2): the walk must skip them all.
local function jpeg_with_exif()
  local jpeg = H.fixture("ref-1280x720.jpg")
  local app1 = "\255\225" .. u16be(60002) .. "Exif\0\0" .. ("\0"):rep(59994)
  local rest = jpeg:sub(3):gsub("\255\192", "\255\255\194", 1)
  return "\255\216" .. app1 .. rest
end

local function message(w, h, size)
  return string.format("Inpaint image must match the requested width and height: "
    .. "input_reference is %dx%d, but size is %s.", w, h, size)
end

describe("create's reference image check", function()
  local E, c, dir

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.2, api_key = KEY }
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    if c then c:close() end
    if E then E:stop() end
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_requests()
  end)

  local function file(name, bytes)
    local path = dir .. "/" .. name
    H.write(path, bytes)
    return path
  end

  -- Every way of giving a 1280x720 image: fixtures of each format, and crafted headers.
  local function landscape_references()
    return {
      { "png path", H.FIXTURES .. "ref-1280x720.png" },
      { "jpeg path", H.FIXTURES .. "ref-1280x720.jpg" },
      { "webp lossless", H.FIXTURES .. "ref-1280x720.webp" },
      { "webp lossy", { data = webp_lossy(1280, 720), filename = "lossy.webp" } },
      { "webp extended", { path = file("extended.webp", webp_extended(1280, 720)) } },
      { "jpeg with exif, progressive", file("exif.jpg", jpeg_with_exif()) },
      { "png data", { data = H.fixture("ref-1280x720.png") } },
    }
  end

  it("returns the API's error without sending anything when the size differs", function()
    for _, case in ipairs(landscape_references()) do
      local video, err = c:create{ prompt = "mismatch", size = "720x1280", input_reference = case[2] }
      assert.is_nil(video, case[1])
      assert.are.equal("bad_request", err.kind, case[1])
      assert.are.equal("input_reference", err.param)
      assert.are.equal("invalid_value", err.code)
      assert.are.equal("invalid_request_error", err.type)
      assert.are.equal(message(1280, 720, "720x1280"), err.message, case[1])
      assert.are.equal(400, err.status) -- as the API answers it
      assert.is_nil(err.request_id) -- but no request was made
      assert.is_true(sora.is_error == nil or sora.is_error(err))
    end
    assert.are.equal(0, #E:requests())
  end)

  it("sends the image when the size matches, and the server takes it", function()
    for _, case in ipairs(landscape_references()) do
      local video, err = c:create{ prompt = "match", size = "1280x720", input_reference = case[2] }
      assert.is_nil(err, case[1] .. ": " .. tostring(err))
      assert.are.equal("1280x720", video.size)
    end
    assert.are.equal(#landscape_references(), #E:requests())
    assert(c:create{ prompt = "portrait", size = "720x1280", input_reference = H.FIXTURES .. "ref-720x1280.png" })
  end)

  it("compares with the API's default size, 720x1280, when none is given", function()
    local _, err = c:create{ prompt = "default size", input_reference = H.FIXTURES .. "ref-1280x720.png" }
    assert.are.equal(message(1280, 720, "720x1280"), err.message)
    assert(c:create{ prompt = "default size", input_reference = H.FIXTURES .. "ref-720x1280.png" })
    assert.are.equal(1, #E:requests())
  end)

  it("check_reference = false uploads it, and the server's answer is the same error", function()
    for _, case in ipairs(landscape_references()) do
      local _, here = c:create{ prompt = "mismatch", size = "720x1280", input_reference = case[2] }
      local _, there = c:create{ prompt = "mismatch", size = "720x1280", input_reference = case[2],
                                 check_reference = false }
      assert.are.equal(400, there.status, case[1])
      assert.matches("^req_", there.request_id)
      assert.are.equal(there.status, here.status, case[1])
      assert.are.equal(there.message, here.message, case[1])
      assert.are.equal(there.kind, here.kind)
      assert.are.equal(there.param, here.param)
      assert.are.equal(there.code, here.code)
      assert.are.equal(there.type, here.type)
    end
    assert.are.equal(#landscape_references(), #E:requests())
  end)

  it("uploads what it cannot read, for the server to judge", function()
    local png = H.fixture("ref-1280x720.png")
    local cases = {
      { "truncated png header", { data = png:sub(1, 20), filename = "cut.png" } },
      { "png without IHDR first", { data = png:sub(1, 12) .. "gAMA" .. png:sub(17), filename = "odd.png" } },
      { "jpeg without a frame", { data = "\255\216\255\224\000\004ab\255\217", filename = "empty.jpg" } },
      { "jpeg with a broken segment", { data = "\255\216\255\224\000\001", filename = "bad.jpg" } },
      { "webp of an unknown chunk", { data = riff("VP9 ", ("\0"):rep(20)), filename = "x.webp" } },
      { "zero width", { data = webp_lossy(0, 720), filename = "z.webp" } },
      { "another format, typed by the caller", { data = "GIF89a" .. ("\0"):rep(20), filename = "x.gif",
                                                 content_type = "image/png" } },
    }
    for i, case in ipairs(cases) do
      local _, err = c:create{ prompt = "unreadable", size = "1280x720", input_reference = case[2] }
      assert.are.equal(i, #E:requests(), case[1]) -- it was sent
      assert.are.equal(400, err and err.status, case[1]) -- and the server judged it
    end
  end)

  it("leaves a size of another shape to the server", function()
    local _, err = c:create{ prompt = "odd size", size = "big", input_reference = H.FIXTURES .. "ref-1280x720.png" }
    assert.are.equal(1, #E:requests())
    assert.are.equal("size", err.param)
  end)

  it("does not check object references (image_url, file_id): there is no file to read", function()
    c:create{ prompt = "url", size = "720x1280", input_reference = { image_url = "https://example.com/a.png" } }
    c:create{ prompt = "file id", size = "720x1280", input_reference = { file_id = "file_123" } }
    assert.are.equal(2, #E:requests())
  end)

  it("holds in create_and_wait and inside a task, where create yields", function()
    local video, err = c:create_and_wait({ prompt = "wait", size = "720x1280",
                                           input_reference = H.FIXTURES .. "ref-1280x720.jpg" }, { timeout = 5 })
    assert.is_nil(video)
    assert.are.equal("input_reference", err.param)
    video, err = c:generate{ prompt = "generate", size = "1280x720", output = dir .. "/out.mp4",
                             input_reference = H.FIXTURES .. "ref-720x1280.png" }
    assert.is_nil(video)
    assert.are.equal(message(720, 1280, "1280x720"), err.message)
    assert.is_false(H.exists(dir .. "/out.mp4"))
    local seen
    c:spawn(function()
      local v, e = c:create{ prompt = "task", size = "720x1280", input_reference = H.FIXTURES .. "ref-1280x720.webp" }
      seen = { v, e }
    end)
    c:run()
    assert.is_nil(seen[1])
    assert.are.equal(message(1280, 720, "720x1280"), seen[2].message)
    assert.are.equal(0, #E:requests())
  end)

  it("ends only its own job in a batch", function()
    local videos, errors = c:generate_many{
      { prompt = "fits", size = "1280x720", input_reference = H.FIXTURES .. "ref-1280x720.png",
        output = dir .. "/batch-1.mp4" },
      { prompt = "does not fit", size = "1280x720", input_reference = H.FIXTURES .. "ref-720x1280.png",
        output = dir .. "/batch-2.mp4" },
    }
    assert.is_truthy(videos[1], tostring(errors[1]))
    assert.is_false(videos[2])
    assert.are.equal(message(720, 1280, "1280x720"), errors[2].message)
    assert.are.equal(1, #H.matching(E, "POST", "^/v1/videos$"))
  end)

  it("an unopenable path is still the upload's argument error", function()
    local ok, err = pcall(c.create, c, { prompt = "missing", input_reference = dir .. "/missing.png" })
    assert.is_false(ok)
    assert.matches("cannot open", err, 1, true)
    ok, err = pcall(c.create, c, { prompt = "bad flag", input_reference = H.FIXTURES .. "ref-720x1280.png",
                                   check_reference = "no" })
    assert.is_false(ok)
    assert.matches("check_reference", err, 1, true)
    assert.are.equal(0, #E:requests())
  end)
end)
