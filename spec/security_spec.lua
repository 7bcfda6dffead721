-- The key never leaks (errors, tostring, logs, the emulator's log); ids and headers cannot
-- inject; TLS verification is on unless turned off by name.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"
local F = require "support.faults"
local tools = require "support.tools"

local KEY = "sk-SECRET-1234"

-- Asserts that the key is nowhere in s.
local function no_key(s, what)
  s = tostring(s)
  assert.is_nil(s:find(KEY, 1, true), (what or "text") .. " holds the key: " .. s)
  assert.is_nil(s:find("SECRET", 1, true), (what or "text") .. " holds part of the key: " .. s)
end

-- Every string in an error object, its tostring and its nested tables.
local function no_key_in_error(err, what)
  no_key(tostring(err), what)
  local seen = {}
  local function walk(t)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(v) == "table" then walk(v)
      elseif type(v) == "string" then no_key(v, what .. "." .. tostring(k))
      else no_key(tostring(v), what .. "." .. tostring(k)) end
    end
  end
  if type(err) == "table" then walk(err) end
end

describe("security", function()
  local E, lines, c, logfile, dir

  lazy_setup(function()
    dir = F.tempdir()
    logfile = dir .. "/emulator.log"
    -- without --quiet: the emulator logs each request to this file
    E = emulator.start{ job_seconds = 0.3, api_key = KEY, log = logfile }
    lines = {}
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 1,
                  log = function(line, level) lines[#lines + 1] = { line = line, level = level } end }
  end)

  lazy_teardown(function()
    H.stop(E, c)
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  describe("the key", function()
    it("is in no error message of any kind", function()
      local errors = {}
      local function keep(kind, v, err)
        assert.is_nil(v)
        assert.is_true(sora.is_error(err), kind)
        assert.are.equal(kind, err.kind)
        errors[#errors + 1] = err
      end
      local FAST = { ["retry-after-ms"] = "5" }
      keep("bad_request", c:create{ prompt = "x", seconds = "10" })
      for _, case in ipairs{ { 401, "authentication" }, { 403, "permission_denied" },
                             { 404, "not_found" }, { 409, "conflict" },
                             { 422, "unprocessable_entity" }, { 429, "rate_limit" },
                             { 500, "internal_server" }, { 418, "api_status" } } do
        E:fault{ method = "GET", action = "respond", status = case[1], times = 2, headers = FAST }
        keep(case[2], c:retrieve("video_x"))
        E:clear_faults()
      end
      local wrong = sora.new{ api_key = "sk-wrong", base_url = E.url, max_retries = 0 }
      local _, werr = wrong:retrieve("video_x")
      wrong:close()
      assert.are.equal("authentication", werr.kind)
      E:fault{ method = "GET", action = "malformed_json" }
      keep("invalid_response", c:retrieve("video_x", { max_retries = 0 }))
      E:fault{ method = "GET", action = "html" }
      keep("internal_server", c:retrieve("video_x", { max_retries = 0 }))
      E:fault{ method = "GET", action = "stall" }
      keep("timeout", c:retrieve("video_x", { timeout = 0.2, max_retries = 0 }))
      local gone = emulator.start{}
      local url = gone.url
      gone:stop()
      local dead = sora.new{ api_key = KEY, base_url = url, max_retries = 0 }
      keep("connection", dead:retrieve("video_x"))
      dead:close()
      keep("io", c:download_content("video_x", { path = dir .. "/missing/out.mp4" }))
      local failing = assert(c:create{ prompt = "#fail on purpose" })
      E:force_video(failing.id, { status = "failed" })
      keep("failed", failing:wait{ interval = 0.05, timeout = 5 })
      local pending_video = assert(c:create{ prompt = "slow" })
      E:force_video(pending_video.id, { status = "queued" })
      keep("timeout", pending_video:wait{ interval = 0.05, timeout = 0.1 })
      -- aborted: a transfer cancelled in flight
      local closing = sora.new{ api_key = KEY, base_url = E.url }
      local t = closing:_start("retrieve", "video_x")
      t:cancel()
      keep("aborted", t:result())
      closing:close()
      for i, err in ipairs(errors) do no_key_in_error(err, "error " .. i .. " (" .. err.kind .. ")") end
      no_key_in_error(werr, "wrong key error")
    end)

    it("is in no argument error", function()
      for _, call in ipairs{
        function() return c:retrieve("a\nb") end,
        function() return c:create{ promt = "x" } end,
        function() return c:download_content("v", { path = 5 }) end,
        function() return sora.new{ api_key = KEY, base_url = "ftp://x" } end,
        function() return sora.new{ api_key = KEY, nope = 1 } end,
        function() return sora.new{ api_key = KEY, headers = { ["x-a"] = "b\r\nc" } } end,
        function() return sora.new{ api_key = KEY .. "\r\n" } end,
      } do
        local ok, err = pcall(call)
        assert.is_false(ok)
        no_key(err, "argument error")
      end
    end)

    it("is in no tostring of a client, a video, a transfer or an error", function()
      no_key(tostring(c), "client")
      local v = assert(c:create{ prompt = "tostring" })
      no_key(tostring(v), "video")
      for k, value in pairs(v:to_table()) do no_key(tostring(value), "video." .. k) end
      local t = c:_start("retrieve", v.id)
      no_key(tostring(t), "transfer")
      t:wait()
      local closed = sora.new{ api_key = KEY, base_url = E.url }
      closed:close()
      no_key(tostring(closed), "closed client")
    end)

    it("is in no log line, and the log shows method, URL, status, attempt and timing", function()
      lines = {}
      local v = assert(c:create{ prompt = "logged" })
      E:fault{ method = "GET", action = "respond", status = 503, times = 1,
               headers = { ["retry-after-ms"] = "5" } }
      assert(c:retrieve(v.id))
      c:retrieve("video_nope")
      assert.is_true(#lines >= 4)
      for _, l in ipairs(lines) do
        no_key(l.line, "log line")
        assert.is_nil(l.line:find("[Bb]earer"), l.line)
        assert.is_nil(l.line:find("[\r\n]"), l.line)
      end
      local function find(pattern)
        for _, l in ipairs(lines) do
          if l.line:find(pattern) then return l end
        end
      end
      local url = E.url:gsub("%p", "%%%0")
      local post = find("POST " .. url .. "/videos %-> 200 %(attempt 1, %d+ ms")
      assert.is_table(post, "no POST line")
      assert.are.equal("debug", post.level)
      assert.is_table(find("GET " .. url .. "/videos/" .. v.id .. " %-> 503 %(attempt 1, %d+ ms"))
      assert.is_table(find("GET " .. url .. "/videos/" .. v.id .. " %-> 200 %(attempt 2, %d+ ms"))
      local retrying = find("retrying in %d+ ms")
      assert.is_table(retrying, "no retry line")
      assert.are.equal("info", retrying.level)
      assert.is_table(find("GET " .. url .. "/videos/video_nope %-> 404 %(attempt 1"))
    end)

    it("is in no log line on stderr (log = \"debug\" and OPENAI_LOG=debug)", function()
      local code = [[
        local sora = require "sora"
        local opts = { base_url = os.getenv("T_URL"), max_retries = 1 }
        if os.getenv("T_OPTION") then opts.log = "debug" end
        local c = sora.new(opts)
        local v = assert(c:create{ prompt = "stderr" })
        c:retrieve(v.id)
        c:retrieve("video_nope")
        io.stdout:write("done\n")
      ]]
      E:fault{ method = "GET", path = "^/v1/videos/video_", action = "respond", status = 500,
               times = 1, headers = { ["retry-after-ms"] = "5" } }
      local out, ok = H.run_child(code, { OPENAI_API_KEY = KEY, T_URL = E.url, OPENAI_LOG = "debug" })
      assert.is_true(ok, out)
      assert.matches("done", out)
      no_key(out, "stderr")
      assert.matches("POST http://127%.0%.0%.1:%d+/v1/videos %-> 200 %(attempt 1, %d+ ms", out)
      assert.matches("GET [^\n]*/v1/videos/video_%w+ %-> 500 %(attempt 1, %d+ ms", out)
      assert.matches("GET [^\n]*/v1/videos/video_%w+ %-> 200 %(attempt 2, %d+ ms", out)
      assert.matches("/v1/videos/video_nope %-> 404", out)
      out, ok = H.run_child(code, { OPENAI_API_KEY = KEY, T_URL = E.url, T_OPTION = "1" })
      assert.is_true(ok, out)
      no_key(out, "stderr")
      assert.matches("POST http://127%.0%.0%.1:%d+/v1/videos %-> 200 %(attempt 1, %d+ ms", out)
      -- and nothing without logging
      out, ok = H.run_child(code, { OPENAI_API_KEY = KEY, T_URL = E.url })
      assert.is_true(ok, out)
      assert.are.equal("done\n", out)
    end)

    it("is not in the emulator's request log", function()
      assert(c:create{ prompt = "emulator log" })
      local wrong = sora.new{ api_key = "sk-wrong", base_url = E.url, max_retries = 0 }
      wrong:retrieve("video_x")
      wrong:close()
      require("socket").sleep(0.1)
      local log = H.read(logfile)
      assert.matches("POST /v1/videos 200", log, 1, true)
      assert.matches("GET /v1/videos/video_x 401", log, 1, true)
      no_key(log, "emulator log")
      assert.is_nil(log:lower():find("bearer"))
      assert.is_nil(log:find("sk-wrong", 1, true))
    end)

    it("is redacted when a server echoes it in an error", function()
      -- a gateway that echoes the bearer token ("Incorrect API key provided: sk-...") must not
      -- carry the whole key into err.message, tostring(err) or a log line
      E:fault{ method = "GET", action = "respond", status = 401, body = { error = {
        message = "Incorrect API key provided: " .. KEY .. ".", type = "invalid_request_error",
        code = "invalid_api_key" } } }
      local _, err = c:retrieve("video_x")
      assert.are.equal("authentication", err.kind)
      no_key_in_error(err, "echoed key (JSON)")
      E:fault{ method = "GET", action = "html", status = 400, body = "<p>bad token " .. KEY .. "</p>" }
      _, err = c:retrieve("video_x")
      assert.are.equal("bad_request", err.kind)
      no_key_in_error(err, "echoed key (HTML)")
    end)
  end)

  describe("injection", function()
    it("rejects ids with CR, LF or NUL before any request", function()
      local methods = {
        { "retrieve" }, { "delete" }, { "download_content" }, { "get_character" },
        { "remix", { prompt = "x" } },
      }
      for _, id in ipairs{ "video_a\r\nX-Evil: 1", "video_a\nb", "video_a\rb", "video_a\0b", "\n" } do
        for _, m in ipairs(methods) do
          local ok, err = pcall(c[m[1]], c, id, m[2])
          assert.is_false(ok, m[1] .. " " .. string.format("%q", id))
          assert.matches("bad argument #1 to '" .. m[1] .. "'", err, 1, true)
          assert.matches("CR, LF or NUL", err, 1, true)
        end
      end
      assert.are.same({}, E:requests())
    end)

    it("rejects header values and a key with CR or LF before any request", function()
      for _, opts in ipairs{
        { headers = { ["x-a"] = "b\r\nx-injected: 1" } },
        { headers = { ["x-a"] = "b\nc" } },
        { headers = { ["x-a\r\nx-b"] = "c" } },
        { organization = "org\r\nx-injected: 1" },
        { project = "proj\n" },
        { api_key = "sk-a\r\nx-injected: 1" },
      } do
        opts.api_key = opts.api_key or KEY
        opts.base_url = E.url
        local ok = pcall(sora.new, opts)
        assert.is_false(ok)
      end
      local out, ok = H.run_child([[
        local ok = pcall(require("sora").new, { base_url = os.getenv("T_URL") })
        io.stdout:write(ok and "created" or "refused")
      ]], { OPENAI_API_KEY = KEY, T_URL = E.url, OPENAI_CUSTOM_HEADERS = "x-a: b\rx-injected: 1" })
      assert.is_true(ok, out)
      assert.are.equal("refused", out)
      assert.are.same({}, E:requests())
    end)

    for _, case in ipairs{
      { "../characters/x", "%2E%2E%2Fcharacters%2Fx" },
      { "x?variant=y", "x%3Fvariant%3Dy" },
      { "x#y", "x%23y" },
      { "..", "%2E%2E" },
      { "a b/../../c", "a%20b%2F%2E%2E%2F%2E%2E%2Fc" },
      { "%2e%2e", "%252e%252e" },
    } do
      it("percent-encodes the id " .. string.format("%q", case[1]), function()
        local v, err = c:retrieve(case[1])
        assert.is_nil(v)
        assert.are.equal("not_found", err.kind)
        assert.are.equal("No video found with id '" .. case[1] .. "'.", err.message)
        local list = E:requests()
        assert.are.equal(1, #list)
        assert.are.equal("/v1/videos/" .. case[2], list[1].path)
        assert.are.same({}, list[1].query)
        E:clear_requests()
        c:download_content(case[1])
        list = E:requests()
        assert.are.equal("/v1/videos/" .. case[2] .. "/content", list[1].path)
        assert.are.same({}, list[1].query)
        E:clear_requests()
        c:remix(case[1], { prompt = "x" })
        assert.are.equal("/v1/videos/" .. case[2] .. "/remix", E:requests()[1].path)
      end)
    end

    it("percent-encodes query values, CR and LF included", function()
      c:download_content("video_x", { variant = "video\r\nx-injected: 1&variant=thumbnail" })
      local r = E:requests()[1]
      assert.are.equal("/v1/videos/video_x/content", r.path)
      assert.are.same({ variant = "video\r\nx-injected: 1&variant=thumbnail" }, r.query)
      assert.is_nil(r.headers["x-injected"])
    end)
  end)

  describe("TLS", function()
    local tls_dir, cert, key, server, why_not

    lazy_setup(function()
      local ok
      ok, why_not = tools.require_tool("openssl", "the TLS server is openssl s_server")
      if not ok then return end
      tls_dir = F.tempdir()
      cert, key = F.make_cert(tls_dir)
      if cert then
        server = F.tls_server(tls_dir, cert, key)
      else
        why_not = select(2, tools.missing("a certificate", "openssl req could not make one"))
      end
    end)

    lazy_teardown(function()
      if server then server.stop() end
      H.rmdir(tls_dir)
    end)

    local function tls_client(opts)
      opts.api_key = KEY
      opts.max_retries = opts.max_retries or 0
      return sora.new(opts)
    end

    it("verifies the peer by default", function()
      if not server then return pending(why_not) end
      local client = tls_client{ base_url = "https://127.0.0.1:" .. server.port .. "/v1", max_retries = 2 }
      local v, err = client:retrieve("video_x")
      client:close()
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.matches("certificate", err.message, 1, true)
      -- a certificate that does not verify is not retried
      assert.are.equal(1, err.attempts)
      no_key_in_error(err, "TLS error")
    end)

    it("checks the host name against the certificate", function()
      if not server then return pending(why_not) end
      local client = tls_client{ base_url = "https://127.0.0.1:" .. server.port .. "/v1", ca_file = cert }
      local v, err = client:retrieve("video_x")
      client:close()
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.matches("127.0.0.1", err.message, 1, true)
    end)

    it("turns verification off only when asked by name (tls_verify = false)", function()
      if not server then return pending(why_not) end
      local client = tls_client{ base_url = "https://127.0.0.1:" .. server.port .. "/v1", tls_verify = false }
      local v, err = client:retrieve("video_x")
      client:close()
      -- the handshake succeeds; s_server -www then answers an HTML status page
      assert.is_nil(v)
      assert.are_not.equal("connection", err.kind)
      assert.is_nil(err.message:lower():find("certificate"), err.message)
      assert.is_nil(err.message:find("SSL"), err.message)
      assert.are.equal(200, err.status)
      assert.are.equal("invalid_response", err.kind)
      assert.has_error(function() sora.new{ api_key = KEY, tls_verify = 0 } end)
      assert.has_error(function() sora.new{ api_key = KEY, tls_verify = "no" } end)
    end)

    it("verifies against ca_file", function()
      if not server then return pending(why_not) end
      local client = tls_client{ base_url = "https://localhost:" .. server.port .. "/v1", ca_file = cert }
      local v, err = client:retrieve("video_x")
      client:close()
      assert.is_nil(v)
      assert.are.equal("invalid_response", err.kind) -- TLS verified; the page is not JSON
      assert.are.equal(200, err.status)
      -- the same server with a CA file that does not sign it fails
      local other_dir = F.tempdir()
      local other = F.make_cert(other_dir)
      local strict = tls_client{ base_url = "https://localhost:" .. server.port .. "/v1", ca_file = other }
      v, err = strict:retrieve("video_x")
      strict:close()
      H.rmdir(other_dir)
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.matches("certificate", err.message, 1, true)
    end)
  end)
end)
