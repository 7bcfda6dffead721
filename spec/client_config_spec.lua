-- sora.new: options, environment variables, the headers every request carries, close.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

describe("sora.new", function()
  local E

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = H.KEY }
  end)

  lazy_teardown(function()
    if E then E:stop() end
  end)

  before_each(function()
    E:clear_requests()
  end)

  local function last_headers()
    return E:last_request().headers
  end

  describe("headers", function()
    it("sends Authorization: Bearer, Accept and a User-Agent naming sora", function()
      local c = sora.new{ api_key = H.KEY, base_url = E.url }
      local v, err = c:create{ prompt = "headers" }
      assert.is_nil(err)
      assert.is_truthy(v)
      local h = last_headers()
      assert.are.equal(E.bearer(H.KEY), h.authorization)
      assert.are.equal("application/json", h.accept)
      assert.matches("^sora%-lua/", h["user-agent"])
      assert.is_nil(h["openai-organization"])
      assert.is_nil(h["openai-project"])
      c:close()
    end)

    it("sends OpenAI-Organization and OpenAI-Project from the options", function()
      local c = sora.new{ api_key = H.KEY, base_url = E.url, organization = "org_123",
                          project = "proj_456" }
      c:retrieve("video_missing")
      local h = last_headers()
      assert.are.equal("org_123", h["openai-organization"])
      assert.are.equal("proj_456", h["openai-project"])
      c:close()
    end)

    it("sends custom headers on every kind of request", function()
      local c = sora.new{ api_key = H.KEY, base_url = E.url,
                          headers = { ["X-Custom"] = "one", ["X-Other"] = "two words" } }
      c:retrieve("video_missing")
      c:create{ prompt = "json" }
      c:create{ prompt = "multipart", input_reference = H.FIXTURES .. "ref-720x1280.png" }
      local requests = E:requests()
      assert.are.equal(3, #requests)
      for _, r in ipairs(requests) do
        assert.are.equal("one", r.headers["x-custom"])
        assert.are.equal("two words", r.headers["x-other"])
      end
      c:close()
    end)

    it("sends a header with an empty value, empty, as the server receives it", function()
      local S = require("support.rawserver").start[[
        return function()
          local body = '{"error": {"message": "no such video", "type": "invalid_request_error"}}'
          return head("404 Not Found", { "Content-Type: application/json",
            "Content-Length: " .. #body, "Connection: close" }) .. body
        end
      ]]
      local env = "X-Env-Empty:\nX-Env-Blank:   \nX-Env-Full: yes"
      local c = sora.new{ api_key = H.KEY, base_url = S.url, max_retries = 0,
                          headers = { ["X-Empty"] = "", ["X-Blank"] = " ", ["X-Full"] = "v",
                                      ["User-Agent"] = "" } }
      local ok, err = pcall(function()
        c:retrieve("video_missing")
        c:create{ prompt = "json" }
        c:create{ prompt = "multipart", input_reference = H.FIXTURES .. "ref-720x1280.png" }
        local out, exited = H.run_child([[require("sora").new{ max_retries = 0 }:retrieve("video_x")]],
          { OPENAI_CUSTOM_HEADERS = env, OPENAI_API_KEY = H.KEY, OPENAI_BASE_URL = S.url })
        assert.is_true(exited, out)
        local requests = S:requests()
        assert.are.equal(4, #requests)
        for i = 1, 3 do
          local h = requests[i].headers
          assert.are.equal("", h["x-empty"])
          assert.are.equal("", h["x-blank"])
          assert.are.equal("v", h["x-full"])
          assert.are.equal("", h["user-agent"]) -- the user's, empty, instead of sora's
          assert.are.equal("Bearer " .. H.KEY, h.authorization)
        end
        local h = requests[4].headers
        assert.are.equal("", h["x-env-empty"])
        assert.are.equal("", h["x-env-blank"])
        assert.are.equal("yes", h["x-env-full"])
      end)
      c:close()
      S:stop()
      assert(ok, err)
    end)

    it("accepts a base_url with a trailing slash", function()
      local c = sora.new{ api_key = H.KEY, base_url = E.url .. "/" }
      assert.are.equal(E.url, c:base_url())
      local v, err = c:create{ prompt = "slash" }
      assert.is_nil(err)
      assert.are.equal("/v1/videos", E:last_request().path)
      local again = assert(c:retrieve(v.id))
      assert.are.equal(v.id, again.id)
      assert.are.equal("/v1/videos/" .. v.id, E:last_request().path)
      c:close()
    end)
  end)

  describe("argument checks", function()
    it("raises for an unknown option, naming it", function()
      assert.has_error(function() sora.new{ api_key = H.KEY, bse_url = E.url } end,
        "bad argument #1 to 'new' (unknown option 'bse_url' (did you mean 'base_url'?))")
    end)

    it("raises for options of the wrong type", function()
      local cases = {
        { { api_key = 42 }, "option 'api_key' must be a string" },
        { { api_key = H.KEY, base_url = true }, "option 'base_url' must be a string" },
        { { api_key = H.KEY, organization = {} }, "option 'organization' must be a string" },
        { { api_key = H.KEY, project = 1 }, "option 'project' must be a string" },
        { { api_key = H.KEY, timeout = "10" }, "option 'timeout' must be a number" },
        { { api_key = H.KEY, connect_timeout = "1" }, "option 'connect_timeout' must be a number" },
        { { api_key = H.KEY, stall_timeout = {} }, "option 'stall_timeout' must be a number" },
        { { api_key = H.KEY, max_retries = "2" }, "option 'max_retries' must be a number" },
        { { api_key = H.KEY, headers = "X: y" }, "option 'headers' must be a table" },
        { { api_key = H.KEY, headers = { ["X-A"] = 1 } }, "option 'headers' must map names to strings" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(sora.new, case[1])
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find(case[2], 1, true), tostring(err))
      end
    end)

    it("raises for a non-table argument, naming 'new' at the caller's line", function()
      for _, value in ipairs{ "sk-test", 5, true } do
        local ok, err = pcall(sora.new, value)
        assert.is_false(ok)
        assert.matches("^spec/client_config_spec%.lua:%d+: bad argument #1 to 'new' %(table expected, got "
          .. type(value) .. "%)$", err)
      end
    end)

    it("raises for out-of-range numbers", function()
      assert.has_error(function() sora.new{ api_key = H.KEY, timeout = 0 } end)
      assert.has_error(function() sora.new{ api_key = H.KEY, max_retries = -1 } end)
    end)

    it("raises for a base_url that is not http(s)", function()
      local ok, err = pcall(sora.new, { api_key = H.KEY, base_url = "ftp://example.com/v1" })
      assert.is_false(ok)
      assert.matches("base_url must start with http", err)
    end)

    it("raises for a header sora writes itself per request (framing, content type, idempotency)", function()
      -- a client-wide Content-Length cut a create's body short (or hung it to its timeout),
      -- Content-Type broke multipart creates, one Idempotency-Key made every later create 422
      for _, name in ipairs{ "Content-Length", "transfer-encoding", "CONTENT-TYPE", "Idempotency-Key" } do
        local ok, err = pcall(sora.new, { api_key = H.KEY, base_url = E.url, headers = { [name] = "5" } })
        assert.is_false(ok, name)
        assert.matches("^spec/client_config_spec%.lua:%d+: bad argument #1 to 'new' %(header '"
          .. name:gsub("%-", "%%-") .. "' is sora's to set", err)
      end
      local out = H.run_child([[require("sora").new{}]],
        { OPENAI_CUSTOM_HEADERS = "X-Fine: 1\nContent-Length: 5", OPENAI_API_KEY = H.KEY })
      assert.matches("header 'Content%-Length' is sora's to set", out)
      assert.are.equal(0, #E:requests())
    end)

    it("raises for a header value with any other control character; a tab is text", function()
      for _, bad in ipairs{ "a\1b", "a\127b", "\27[31mred", "a\11b" } do
        local ok, err = pcall(sora.new, { api_key = H.KEY, headers = { ["X-A"] = bad } })
        assert.is_false(ok, bad)
        assert.matches("bad argument #1 to 'new' %(a header value contains a control character", err)
      end
      local ok, err = pcall(sora.new, { api_key = H.KEY .. "\127" })
      assert.is_false(ok)
      assert.matches("control character", err)
      assert.is_nil(tostring(err):find(H.KEY, 1, true)) -- the key is not in its own error
      sora.new{ api_key = H.KEY, headers = { ["X-A"] = "a\tb", ["X-U"] = "caf\195\169" } }:close()
    end)

    it("raises for header values and names with CR or LF", function()
      local ok, err = pcall(sora.new, { api_key = H.KEY, headers = { ["X-A"] = "a\r\nX-Evil: 1" } })
      assert.is_false(ok)
      assert.matches("CR, LF or NUL", err)
      ok, err = pcall(sora.new, { api_key = H.KEY, headers = { ["X-A\r\nX-Evil"] = "1" } })
      assert.is_false(ok)
      assert.matches("invalid header name", err)
      ok, err = pcall(sora.new, { api_key = H.KEY, headers = { ["Bad Name"] = "1" } })
      assert.is_false(ok)
      assert.matches("invalid header name", err)
      ok, err = pcall(sora.new, { api_key = H.KEY, organization = "org\nX-Evil: 1" })
      assert.is_false(ok)
      assert.matches("CR, LF or NUL", err)
      ok, err = pcall(sora.new, { api_key = H.KEY, project = "p\r" })
      assert.is_false(ok)
      assert.matches("CR, LF or NUL", err)
      ok, err = pcall(sora.new, { api_key = "sk\nX-Evil: 1" })
      assert.is_false(ok)
      assert.matches("CR, LF or NUL", err)
    end)

    it("raises for an empty API key", function()
      local ok, err = pcall(sora.new, { api_key = "" })
      assert.is_false(ok)
      assert.matches("no API key", err)
    end)
  end)

  describe("environment", function()
    -- The child creates a client from the environment, makes one request to the emulator,
    -- and prints the outcome; the parent checks what the emulator received.
    local CHILD = [[
      local sora = require "sora"
      local ok, c = pcall(sora.new, OPTIONS)
      if not ok then print("RAISED " .. tostring(c)) return end
      local v, err = c:retrieve("video_from_env")
      print("KIND " .. tostring(err and err.kind) .. " URL " .. c:base_url())
    ]]

    local function child(env, options)
      return H.run_child(CHILD:gsub("OPTIONS", options or "nil"), env)
    end

    it("reads OPENAI_API_KEY and OPENAI_BASE_URL", function()
      local out = child{ OPENAI_API_KEY = H.KEY, OPENAI_BASE_URL = E.url .. "/" }
      assert.matches("KIND not_found URL " .. E.url:gsub("%p", "%%%0"), out)
      local r = E:last_request()
      assert.are.equal("/v1/videos/video_from_env", r.path)
      assert.are.equal(E.bearer(H.KEY), r.headers.authorization)
    end)

    it("reads OPENAI_ORG_ID, OPENAI_PROJECT_ID and OPENAI_CUSTOM_HEADERS", function()
      local out = child{ OPENAI_API_KEY = H.KEY, OPENAI_BASE_URL = E.url,
                         OPENAI_ORG_ID = "org_env", OPENAI_PROJECT_ID = "proj_env",
                         OPENAI_CUSTOM_HEADERS = "X-One: 1\nX-Two:   second value\r\n" }
      assert.matches("KIND not_found", out)
      local h = E:last_request().headers
      assert.are.equal("org_env", h["openai-organization"])
      assert.are.equal("proj_env", h["openai-project"])
      assert.are.equal("1", h["x-one"])
      assert.are.equal("second value", h["x-two"])
    end)

    it("lets options win over the environment", function()
      local out = child({ OPENAI_API_KEY = "sk-wrong", OPENAI_BASE_URL = "http://127.0.0.1:1/v1",
                          OPENAI_ORG_ID = "org_env" },
        string.format("{ api_key = %q, base_url = %q, organization = 'org_opt' }", H.KEY, E.url))
      assert.matches("KIND not_found", out)
      local h = E:last_request().headers
      assert.are.equal(E.bearer(H.KEY), h.authorization)
      assert.are.equal("org_opt", h["openai-organization"])
    end)

    it("raises without any API key", function()
      local out = child({ OPENAI_BASE_URL = E.url }, "{}")
      assert.matches("RAISED .*no API key", out)
      assert.are.equal(0, #E:requests())
    end)

    it("raises for a custom header with an invalid name from the environment", function()
      local out = child{ OPENAI_API_KEY = H.KEY, OPENAI_BASE_URL = E.url,
                         OPENAI_CUSTOM_HEADERS = "Bad Name: x" }
      assert.matches("RAISED .*invalid header name", out)
    end)
  end)

  describe("latency", function()
    -- A request whose answer arrives while libcurl is still sending must not then wait for
    -- the drive loop's one-second poll to time out.
    it("answers every request from a local server without a one-second stall", function()
      local socket = require "socket"
      local c = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
      local slowest = 0
      for _ = 1, 30 do
        local t = socket.gettime()
        c:retrieve("video_latency")
        slowest = math.max(slowest, socket.gettime() - t)
        E:clear_requests()
        socket.sleep(0.01)
      end
      c:close()
      assert.is_true(slowest < 0.5, string.format("slowest request took %.3f s", slowest))
    end)
  end)

  describe("close", function()
    it("makes later calls raise 'closed', and can be called twice", function()
      local c = sora.new{ api_key = H.KEY, base_url = E.url }
      assert.matches("sora.Client %(http://127.0.0.1", tostring(c))
      c:close()
      assert.are.equal("sora.Client (closed)", tostring(c))
      local ok, err = pcall(c.retrieve, c, "video_x")
      assert.is_false(ok)
      assert.matches("closed", err)
      ok, err = pcall(function() return c:create{ prompt = "x" } end)
      assert.is_false(ok)
      assert.matches("closed", err)
      assert.has_no_error(function() c:close() end)
      assert.are.equal(0, #E:requests())
    end)

    it("makes a video's methods raise once its client is closed", function()
      local c = sora.new{ api_key = H.KEY, base_url = E.url }
      local v = assert(c:create{ prompt = "orphan" })
      c:close()
      local ok, err = pcall(v.refresh, v)
      assert.is_false(ok)
      assert.matches("closed", err)
      assert.are.equal("orphan", v.prompt) -- the fields stay readable
    end)
  end)
end)
