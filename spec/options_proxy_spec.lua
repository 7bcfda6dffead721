-- sora.new{ proxy, no_proxy, proxy_tunnel } and the environment's proxies, through a real
-- proxy on loopback (Debian's tinyproxy, started here and stopped by its PID): plain HTTP
-- forwarding (tinyproxy adds a Via header the emulator records) and CONNECT tunnels (to the
-- emulator with proxy_tunnel, and to a TLS server as any https:// base URL goes), each seen in
-- tinyproxy's own log. Proxy credentials are never shown.
local sora = require "sora"
local emulator = require "support.emulator"
local proxy = require "support.proxy"
local F = require "support.faults"
local H = require "support.client"
local tools = require "support.tools"

local KEY = "sk-proxy-test-0123456789"

local function port_of(url) return tonumber(url:match("^https?://[^/]-:(%d+)")) end

local function via(request) return request.headers.via end

-- The proxy's logged request lines that contain `text`.
local function logged(P, text)
  local found = {}
  for _, line in ipairs(P:requests()) do
    if line:find(text, 1, true) then found[#found + 1] = line end
  end
  return found
end

describe("proxies", function()
  local E, P, emulator_port, why_not

  lazy_setup(function()
    local ok
    ok, why_not = tools.require_tool("tinyproxy", "the specs go through a real proxy")
    if not ok then return end
    E = emulator.start{ job_seconds = 0.2, api_key = KEY }
    emulator_port = port_of(E.url)
    P = proxy.start{ connect_ports = { emulator_port } }
  end)

  lazy_teardown(function()
    if P then P:stop() end
    if E then E:stop() end
  end)

  before_each(function()
    if not E then return pending(why_not) end
    E:clear_requests()
  end)

  describe("the proxy option", function()
    it("sends every kind of request through the proxy (plain HTTP forwarding)", function()
      if not E then return end
      local c = sora.new{ api_key = KEY, base_url = E.url, proxy = P.url, max_retries = 0 }
      local video = assert(c:create{ prompt = "through a proxy", size = "1280x720",
                                     input_reference = H.FIXTURES .. "ref-1280x720.png" })
      assert(c:retrieve(video.id))
      for _ in c:list{ limit = 2 } do end
      assert(video:wait{ timeout = 30, interval = 0.05 })
      local bytes = assert(c:download_content(video.id, { variant = "thumbnail" }))
      assert.is_true(#bytes > 0)
      local requests = E:requests()
      assert.is_true(#requests >= 4)
      for _, r in ipairs(requests) do
        assert.matches("tinyproxy", via(r) or "", 1, true)
      end
      local target = "http://127.0.0.1:" .. emulator_port .. "/v1/videos"
      assert.are.equal(1, #logged(P, "POST " .. target .. " HTTP"))
      assert.is_true(#logged(P, "GET " .. target .. "/" .. video.id .. "/content") == 1)
      c:close()
    end)

    it("does not go through a proxy without the option (the control case)", function()
      if not E then return end
      local c = sora.new{ api_key = KEY, base_url = E.url, proxy = false }
      assert(c:create{ prompt = "direct" })
      assert.is_nil(via(E:last_request()))
      c:close()
    end)

    it("no_proxy lists hosts reached directly", function()
      if not E then return end
      local before = #P:requests()
      local c = sora.new{ api_key = KEY, base_url = E.url, proxy = P.url, no_proxy = "example.com,127.0.0.1" }
      assert(c:create{ prompt = "no proxy for loopback" })
      assert.is_nil(via(E:last_request()))
      assert.are.equal(before, #P:requests())
      c:close()
    end)

    it("proxy_tunnel = true asks the proxy for a CONNECT tunnel, even to http://", function()
      if not E then return end
      local c = sora.new{ api_key = KEY, base_url = E.url, proxy = P.url, proxy_tunnel = true }
      local video = assert(c:create{ prompt = "tunnelled" })
      assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
      -- the bytes went through the tunnel untouched: no Via added, the CONNECT in the log
      assert.is_nil(via(E:last_request()))
      assert.is_true(#logged(P, "CONNECT 127.0.0.1:" .. emulator_port) >= 1)
      c:close()
    end)

    it("reaches an https:// server through CONNECT", function()
      if not E then return end
      local has_openssl, why = tools.require_tool("openssl", "the https:// server is openssl s_server")
      if not has_openssl then return pending(why) end
      local dir = F.tempdir()
      local cert, key_file = F.make_cert(dir)
      if not cert then
        H.rmdir(dir)
        return pending(select(2, tools.missing("a certificate", "openssl req could not make one")))
      end
      local server = F.tls_server(dir, cert, key_file)
      local tls_proxy = proxy.start{ connect_ports = { server.port } }
      local ok, failure = pcall(function()
        local c = sora.new{ api_key = KEY, base_url = "https://localhost:" .. server.port .. "/v1",
                            ca_file = cert, proxy = tls_proxy.url, max_retries = 0, timeout = 10 }
        -- `openssl s_server -www` answers any request with an HTML status page: the TLS
        -- handshake (verified against the certificate) and the request went through
        local _, err = c:retrieve("video_x")
        assert.are.equal("invalid_response", err.kind, tostring(err))
        c:close()
        assert.is_true(#logged(tls_proxy, "CONNECT localhost:" .. server.port) >= 1)
      end)
      tls_proxy:stop()
      server.stop()
      H.rmdir(dir)
      assert(ok, failure)
    end)

    it("refuses a proxy that cannot work, never quoting it", function()
      local cases = {
        { { proxy = 42 }, "option 'proxy' must be a string" },
        { { proxy = true }, "option 'proxy' must be a string" },
        { { proxy = "ftp://bob:pr0xy-s3cret@127.0.0.1:21" }, "option 'proxy' must start with http://" },
        { { proxy = "http://bob:pr0xy-s3cret@" }, "option 'proxy' " },
        { { proxy = "http://127.0.0.1:3128", no_proxy = 1 }, "option 'no_proxy' must be a string" },
        { { proxy = "http://127.0.0.1:3128", proxy_tunnel = "yes" }, "option 'proxy_tunnel' must be a boolean" },
      }
      for _, case in ipairs(cases) do
        case[1].api_key = KEY
        local ok, err = pcall(sora.new, case[1])
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'new' (" .. case[2], err, 1, true)
        assert.is_nil(err:find("s3cret", 1, true), err)
      end
    end)
  end)

  describe("proxy credentials", function()
    local AP

    lazy_setup(function()
      if E then AP = proxy.start{ user = "proxyuser", password = "pr0xy-s3cret" } end
    end)

    lazy_teardown(function()
      if AP then AP:stop() end
    end)

    local function never_shown(texts)
      for _, shown in ipairs(texts) do
        assert.is_nil(shown:find("pr0xy-s3cret", 1, true), shown)
        assert.is_nil(shown:find("proxyuser", 1, true), shown)
      end
    end

    it("are sent to the proxy from the URL's userinfo and never shown", function()
      if not E then return end
      local lines = {}
      local url = AP.url:gsub("^http://", "http://proxyuser:pr0xy-s3cret@")
      local c = sora.new{ api_key = KEY, base_url = E.url, proxy = url, max_retries = 0,
                          log = function(line) lines[#lines + 1] = line end }
      local video = assert(c:create{ prompt = "with proxy credentials" })
      assert.matches("tinyproxy", via(E:last_request()) or "", 1, true)
      -- the proxy credentials stay with the proxy: the API never sees them
      assert.is_nil(E:last_request().headers["proxy-authorization"])
      local _, missing = c:retrieve("video_missing")
      assert.are.equal("not_found", missing.kind)
      never_shown{ tostring(c), c:base_url(), tostring(video), tostring(missing), table.concat(lines, "\n") }
      c:close()
    end)

    it("a proxy that refuses them is an error that does not show them", function()
      if not E then return end
      local bad = AP.url:gsub("^http://", "http://proxyuser:wrong-pr0xy-s3cret@")
      local c = sora.new{ api_key = KEY, base_url = E.url, proxy = bad, max_retries = 0 }
      local _, err = c:retrieve("video_x")
      -- tinyproxy answers 401 (407 is what RFC 9110 names); the API never saw the request
      assert.is_true(err.status == 401 or err.status == 407, tostring(err))
      assert.are.equal(0, #E:requests())
      never_shown{ tostring(err), err.message, tostring(c) }
      c:close()
      local dead = "http://proxyuser:pr0xy-s3cret@127.0.0.1:" .. F.free_port()
      c = sora.new{ api_key = KEY, base_url = E.url, proxy = dead, max_retries = 0 }
      _, err = c:retrieve("video_x")
      assert.are.equal("connection", err.kind)
      never_shown{ tostring(err), err.message, tostring(c) }
      c:close()
    end)
  end)

  describe("the environment", function()
    -- a child process creates a video with the given environment; the parent reads what the
    -- emulator recorded
    local function create_in_child(env, options)
      local code = "local sora = require 'sora'\n"
        .. "local c = sora.new{ api_key = " .. string.format("%q", KEY) .. ", base_url = "
        .. string.format("%q", E.url) .. (options or "") .. " }\n"
        .. "assert(c:create{ prompt = 'env' })\nprint('created')\n"
      local out, ok = H.run_child(code, env)
      assert(ok and out:find("created"), out)
      return E:last_request()
    end

    it("libcurl honours http_proxy", function()
      if not E then return end
      local r = create_in_child{ http_proxy = P.url, HTTP_PROXY = false, no_proxy = false, NO_PROXY = false }
      assert.matches("tinyproxy", via(r) or "", 1, true)
    end)

    it("ignores upper-case HTTP_PROXY on purpose (httpoxy)", function()
      if not E then return end
      local r = create_in_child{ HTTP_PROXY = P.url, http_proxy = false, ALL_PROXY = false, all_proxy = false }
      assert.is_nil(via(r))
    end)

    it("the option wins over the environment; proxy = false turns it off", function()
      if not E then return end
      local dead = "http://127.0.0.1:" .. F.free_port()
      local r = create_in_child({ http_proxy = dead }, ", proxy = " .. string.format("%q", P.url))
      assert.matches("tinyproxy", via(r) or "", 1, true)
      r = create_in_child({ http_proxy = P.url }, ", proxy = false")
      assert.is_nil(via(r))
      r = create_in_child({ http_proxy = P.url }, ", no_proxy = '*'")
      assert.is_nil(via(r))
    end)
  end)
end)
