-- One argument layer: option tables read once (a proxy whose __index returns fresh strings and
-- runs the collector frees nothing in use), one message shape naming the public call, and a
-- base_url taken apart by libcurl: what cannot work is refused, a query is kept, userinfo is
-- never printed.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

-- Long enough that Lua never interns them: each copy is a fresh object the collector may free.
local LONG_KEY = "sk-proxy-" .. ("k"):rep(48)
local LONG_ORG = "org_" .. ("o"):rep(48)

-- A table with no fields of its own whose __index returns a fresh copy of each value of
-- `fields`, after a full collection: a string the core keeps without an anchor is freed.
local function proxy(fields)
  return setmetatable({}, { __index = function(_, key)
    collectgarbage()
    local value = fields[key]
    if type(value) == "string" then value = (value .. "#"):sub(1, -2) end
    return value
  end })
end

describe("arguments", function()
  local E, c

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = LONG_KEY }
    c = sora.new{ api_key = LONG_KEY, base_url = E.url, max_retries = 0 }
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  describe("option tables read through __index", function()
    it("sora.new keeps every string it reads", function()
      local base = E.url .. "?pad=" .. ("p"):rep(48)
      local proxied = sora.new(proxy{ api_key = LONG_KEY, base_url = base, organization = LONG_ORG,
                                      project = "proj_" .. ("q"):rep(48), timeout = 30 })
      collectgarbage()
      local _, err = proxied:retrieve("video_proxied")
      assert.are.equal("not_found", err.kind)
      local h = E:last_request().headers
      assert.are.equal(E.bearer(LONG_KEY), h.authorization)
      assert.are.equal(LONG_ORG, h["openai-organization"])
      assert.are.equal("proj_" .. ("q"):rep(48), h["openai-project"])
      assert.are.equal("sora.Client (" .. base .. ")", tostring(proxied))
      proxied:close()
    end)

    it("request options and an input_reference table keep every string they give", function()
      local prompt = "a proxied prompt " .. ("w"):rep(48)
      local ref = "./" .. ("./"):rep(24) .. H.FIXTURES .. "ref-720x1280.png"
      local video = assert(c:create(proxy{ prompt = prompt, size = "720x1280",
                                           input_reference = proxy{ path = ref } }))
      assert.are.equal(prompt, video.prompt)
      local r = E:last_request()
      assert.are.equal(H.fixture("ref-720x1280.png"), H.part(r, "input_reference").data)
      assert.are.equal("ref-720x1280.png", H.part(r, "input_reference").filename)
      E:force_video(video.id, { status = "completed" })
      local dir = H.tempdir()
      local out = dir .. "/" .. ("v"):rep(48) .. ".mp4"
      assert(c:download_content(video.id, proxy{ path = out }))
      assert.are.equal(H.media("video.mp4"), H.read(out))
      H.rmdir(dir)
    end)

    it("a value is checked as it is read: __index giving a wrong type is refused", function()
      local ok, err = pcall(c.create, c, proxy{ prompt = 42 })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'create' (field 'prompt' must be a string, got number)",
        err, 1, true)
    end)
  end)

  describe("messages", function()
    -- Each call must raise "<this file>:<line>: bad argument #N to 'NAME' (...)".
    local cases = {
      { function() sora.new{ api_key = LONG_KEY, timeout = "10" } end,
        "bad argument #1 to 'new' (option 'timeout' must be a number, got string)" },
      { function() sora.new{ api_key = LONG_KEY, timeout = 0 } end,
        "bad argument #1 to 'new' (option 'timeout' must be >= 0.001)" },
      { function() sora.new{ api_key = LONG_KEY, max_retries = -1 } end,
        "bad argument #1 to 'new' (option 'max_retries' must be >= 0)" },
      { function() sora.new{ api_key = LONG_KEY, tls_verify = 1 } end,
        "bad argument #1 to 'new' (option 'tls_verify' must be a boolean, got number)" },
      { function() sora.new{ api_key = LONG_KEY, [1] = true } end,
        "bad argument #1 to 'new' (option names must be strings)" },
      { function() sora.new{ api_key = "" } end,
        "bad argument #1 to 'new' (no API key: pass api_key or set OPENAI_API_KEY)" },
      { function() c:retrieve(42) end,
        "bad argument #1 to 'retrieve' (string expected, got number)" },
      { function() c:create{ prompt = "x", seconds = 1.5 } end,
        "bad argument #1 to 'create' (field 'seconds' must be a string or an integer, got number)" },
      { function() c:download_content("video_x", { sink = 1 }) end,
        "bad argument #2 to 'download_content' (field 'sink' must be a function or a callable, got number)" },
      { function() c:_drive(-1) end,
        "bad argument #1 to 'step' (non-negative number expected, got -1)" },
      { function() c:sleep(0 / 0) end,
        "bad argument #1 to 'sleep' (non-negative number expected, got NaN)" },
      { function() c:create{ prompt = "x", input_reference = { path = "a.png", data = "b" } } end,
        "bad argument #1 to 'create' (field 'input_reference' needs exactly one of path, data, image_url or file_id)" },
    }

    it("have one shape, name the public call and point at the caller's line", function()
      for _, case in ipairs(cases) do
        local ok, err = pcall(case[1])
        assert.is_false(ok)
        assert.are.equal("string", type(err))
        assert.matches("^spec/core_arguments_spec%.lua:%d+: ", err)
        assert.are.equal(case[2], err:gsub("^[^:]+:%d+: ", ""))
      end
    end)
  end)

  describe("base_url", function()
    local function new(base, extra)
      local opts = { api_key = LONG_KEY, base_url = base, max_retries = 0 }
      for k, v in pairs(extra or {}) do opts[k] = v end
      return sora.new(opts)
    end

    it("keeps a query at the end of every URL, after the endpoint's own", function()
      local lines = {}
      local q = new(E.url .. "?api-version=2025-01", { log = function(line) lines[#lines + 1] = line end })
      local video = assert(q:create{ prompt = "with a query" })
      local r = E:last_request()
      assert.are.equal("/v1/videos", r.path)
      assert.are.equal("2025-01", r.query["api-version"])
      assert(q:list_page{ limit = 2 })
      r = E:last_request()
      assert.are.equal("/v1/videos", r.path)
      assert.are.equal("2", r.query.limit)
      assert.are.equal("2025-01", r.query["api-version"])
      E:force_video(video.id, { status = "completed" }) -- only a finished video can be deleted
      assert(q:delete(video.id))
      r = E:last_request()
      assert.are.equal("DELETE", r.method)
      assert.are.equal("/v1/videos/" .. video.id, r.path)
      assert.are.equal("2025-01", r.query["api-version"])
      -- log lines show URLs without their query (it may carry a signature)
      assert.is_true(#lines >= 3)
      for _, line in ipairs(lines) do assert.is_nil(line:find("?", 1, true), line) end
      assert.are.equal(E.url .. "?api-version=2025-01", q:base_url())
      q:close()
    end)

    it("refuses what cannot work, without quoting a password", function()
      local cases = {
        { "http://127.0.0.1:1/v1#section", "has a fragment" },
        { "http:///v1", "has no host" },
        { "http:/v1", "has no host" },
        { "http://:8080/v1", "base_url" },
        { "ftp://user:s3cr3t-pass@example.com/v1", "must start with http:// or https://" },
        { "file:///etc/passwd", "must start with http:// or https://" },
        { "127.0.0.1:8080/v1", "base_url" },
        { "https://user:s3cr3t-pass@/v1", "base_url" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(new, case[1])
        assert.is_false(ok, case[1])
        assert.matches("bad argument #1 to 'new' (base_url ", err, 1, true)
        assert.matches(case[2], err, 1, true)
        assert.is_nil(err:find("s3cr3t", 1, true), err)
      end
    end)

    it("gives userinfo to libcurl but never prints it", function()
      local lines = {}
      local with_user = E.url:gsub("^http://", "http://someone:s3cr3t-pass@")
      local u = new(with_user, { log = function(line) lines[#lines + 1] = line end })
      local video = assert(u:create{ prompt = "userinfo" })
      local r = E:last_request()
      assert.are.equal("/v1/videos", r.path)
      assert.are.equal(E.bearer(LONG_KEY), r.headers.authorization) -- the key still goes
      local _, err = u:retrieve("video_missing")
      assert.are.equal("not_found", err.kind)
      E:fault{ action = "reset", times = 2 } -- libcurl resends once on a reused connection
      local _, reset = u:retrieve(video.id)
      assert.are.equal("connection", reset.kind)
      for _, shown in ipairs{ tostring(u), u:base_url(), tostring(err), err.message,
                              tostring(reset), table.concat(lines, "\n") } do
        assert.is_nil(shown:find("s3cr3t", 1, true), shown)
        assert.is_nil(shown:find("someone", 1, true), shown)
      end
      assert.are.equal("sora.Client (" .. E.url .. ")", tostring(u))
      assert.is_true(#lines >= 3)
      u:close()
    end)
  end)

  describe("request bodies", function()
    it("a JSON body over 1 MB is sent without Expect: 100-continue", function()
      local big = ("a long prompt "):rep(80000) -- 1.1 MB
      c:create{ prompt = big }
      local r = E:last_request()
      assert.are.equal("POST", r.method)
      assert.are.equal("application/json", r.headers["content-type"])
      assert.is_nil(r.headers.expect)
    end)
  end)
end)
