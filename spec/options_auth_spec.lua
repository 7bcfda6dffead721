-- Other ways in: api_key_cmd (the key from a command's output, run once by sora.new, never
-- shown), Azure OpenAI's style (api_key_header = "api-key", api_version and
-- OPENAI_API_VERSION as the api-version query parameter of every request), and the User-Agent
-- and credential as entries of the prebuilt header lists (a user's header replaces them).
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

local KEY = "sk-auth-test-0123456789"

local function shell(s) return H.shell_quote(s) end

describe("sora.new", function()
  local E, dir

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.2, api_key = KEY }
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    if E then E:stop() end
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_requests()
    E:clear_faults()
  end)

  describe("api_key_cmd", function()
    it("takes the key from the first line of the command's output, trimmed, run once", function()
      local runs = dir .. "/runs"
      local cmd = "echo run >> " .. shell(runs) .. "; printf '  " .. KEY .. " \\r\\nsecond line\\n'"
      local c = sora.new{ api_key_cmd = cmd, base_url = E.url }
      local video = assert(c:create{ prompt = "key from a command" })
      assert(c:retrieve(video.id))
      assert.are.equal(E.bearer(KEY), E:last_request().headers.authorization)
      assert.are.equal("run\n", H.read(runs))
      assert.is_nil(tostring(c):find(KEY, 1, true))
      c:close()
    end)

    it("runs through the shell, and a key that the API refuses is still never shown", function()
      local lines = {}
      local c = sora.new{ api_key_cmd = "K=sk-wrong-key-987654321; echo \"$K\"", base_url = E.url,
                          max_retries = 0, log = function(line) lines[#lines + 1] = line end }
      local _, err = c:retrieve("video_x")
      assert.are.equal("authentication", err.kind)
      assert.are.equal(E.bearer("sk-wrong-key-987654321"), E:last_request().headers.authorization)
      for _, shown in ipairs{ tostring(err), tostring(c), table.concat(lines, "\n") } do
        assert.is_nil(shown:find("sk-wrong-key-987654321", 1, true), shown)
      end
      c:close()
    end)

    it("is not run when api_key is given (api_key > api_key_cmd > OPENAI_API_KEY)", function()
      local runs = dir .. "/not-run"
      local c = sora.new{ api_key = KEY, api_key_cmd = "echo run > " .. shell(runs) .. "; echo sk-other-key-0000",
                          base_url = E.url }
      assert(c:create{ prompt = "explicit key" })
      assert.are.equal(E.bearer(KEY), E:last_request().headers.authorization)
      assert.is_false(H.exists(runs))
      c:close()
      -- the command's key wins over the environment's
      local out, ok = H.run_child("local sora = require 'sora'\n"
        .. "local c = sora.new{ api_key_cmd = 'echo " .. KEY .. "', base_url = '" .. E.url .. "' }\n"
        .. "print(assert(c:create{ prompt = 'env' }).id)\n", { OPENAI_API_KEY = "sk-env-key-11111111" })
      assert(ok, out)
      assert.are.equal(E.bearer(KEY), E:last_request().headers.authorization)
    end)

    it("a failing command or empty output is an error naming the option, not the output", function()
      local cases = {
        { "echo sk-printed-secret-1234; exit 3", "option 'api_key_cmd': the command failed (exit status 3)" },
        { "printf ''", "option 'api_key_cmd': the command printed no key" },
        { "printf '   \\n'; echo sk-printed-secret-1234", "option 'api_key_cmd': the command printed no key" },
        { "echo sk-printed-secret-1234; kill -9 $$", "option 'api_key_cmd': the command was killed by signal 9" },
        { "exec 1>&-; echo sk-printed-secret-1234 >&2; exit 0", "option 'api_key_cmd': the command printed no key" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(sora.new, { api_key_cmd = "{ " .. case[1] .. "; } 2>/dev/null", base_url = E.url })
        assert.is_false(ok, case[1])
        assert.matches("bad argument #1 to 'new' (" .. case[2] .. ")", err, 1, true)
        assert.is_nil(err:find("sk-printed-secret", 1, true), err)
        assert.is_nil(err:find("echo", 1, true), err) -- the command is not quoted either
      end
      local ok, err = pcall(sora.new, { api_key_cmd = 42 })
      assert.is_false(ok)
      assert.matches("option 'api_key_cmd' must be a string, got number", err, 1, true)
    end)

    it("drains a long output, so the command is not killed by SIGPIPE", function()
      local c = sora.new{ api_key_cmd = "echo " .. KEY .. "; head -c 1000000 /dev/zero | tr '\\0' x",
                          base_url = E.url }
      assert(c:create{ prompt = "long output" })
      assert.are.equal(E.bearer(KEY), E:last_request().headers.authorization)
      c:close()
    end)
  end)

  describe("Azure OpenAI style", function()
    local function azure(extra)
      local opts = { api_key = KEY, base_url = E.url, api_key_header = "api-key",
                     api_version = "2025-04-01-preview" }
      for k, v in pairs(extra or {}) do opts[k] = v end
      return sora.new(opts)
    end

    it("sends the raw key as api-key and api-version on every endpoint", function()
      local c = azure()
      local video = assert(c:create{ prompt = "json create" })
      assert(c:create{ prompt = "multipart create", size = "1280x720",
                       input_reference = H.FIXTURES .. "ref-1280x720.png" })
      assert(c:retrieve(video.id))
      for _ in c:list{ limit = 1 } do end
      assert(video:wait{ timeout = 30, interval = 0.05 })
      assert(c:download_content(video.id, { variant = "thumbnail" }))
      assert(c:remix(video.id, { prompt = "remixed" }))
      assert(c:edit{ video = video.id, prompt = "edited" })
      local _, missing = c:get_character("char_missing")
      assert.are.equal("not_found", missing.kind)
      local seen = {}
      for _, r in ipairs(E:requests()) do
        seen[r.method .. " " .. r.path] = true
        assert.is_nil(r.headers.authorization, r.path)
        assert.are.equal(require("sora.emulator").fingerprint(KEY), r.headers["api-key"], r.path)
        assert.are.equal("2025-04-01-preview", r.query["api-version"], r.path)
      end
      for _, expected in ipairs{ "POST /v1/videos", "GET /v1/videos", "GET /v1/videos/" .. video.id,
                                 "GET /v1/videos/" .. video.id .. "/content",
                                 "POST /v1/videos/" .. video.id .. "/remix", "POST /v1/videos/edits",
                                 "GET /v1/videos/characters/char_missing" } do
        assert.is_true(seen[expected], expected)
      end
      local multipart = H.matching(E, "POST", "^/v1/videos$")
      assert.is_truthy(multipart[2].parts)
      -- list keeps its own query beside api-version
      assert.are.equal("1", H.matching(E, "GET", "^/v1/videos$")[1].query.limit)
      c:close()
    end)

    it("a wrong api-key is refused by the server: the header is what authenticates", function()
      local c = azure{ api_key = "sk-wrong-azure-key-0000", max_retries = 0 }
      local _, err = c:retrieve("video_x")
      assert.are.equal("authentication", err.kind)
      c:close()
    end)

    it("keeps the base URL's own query beside api-version; the option replaces its api-version", function()
      local c = azure{ base_url = E.url .. "?deployment=d1&api-version=2024-01-01" }
      c:retrieve("video_x")
      local q = E:last_request().query
      assert.are.equal("d1", q.deployment)
      assert.are.equal("2025-04-01-preview", q["api-version"])
      assert.are.equal("sora.Client (" .. E.url .. "?deployment=d1&api-version=2025-04-01-preview)", tostring(c))
      c:close()
      c = sora.new{ api_key = KEY, base_url = E.url, api_version = "a b&c=d" }
      c:retrieve("video_x")
      q = E:last_request().query
      assert.are.equal("a b&c=d", q["api-version"]) -- escaped: one parameter, not two
      assert.is_nil(q.c)
      c:close()
    end)

    it("OPENAI_API_VERSION fills the gap, never over the base URL's own", function()
      local code = "local sora = require 'sora'\n"
        .. "local c = sora.new{ api_key = '" .. KEY .. "', base_url = ... }\n"
        .. "local _, err = c:retrieve('video_x')\nprint(err.kind)\n"
      local function run(base)
        local out, ok = H.run_child(code:gsub("%.%.%.", string.format("%q", base)),
                                    { OPENAI_API_VERSION = "2024-10-21" })
        assert(ok and out:find("not_found"), out)
        return E:last_request().query["api-version"]
      end
      assert.are.equal("2024-10-21", run(E.url))
      assert.are.equal("2023-05-15", run(E.url .. "?api-version=2023-05-15"))
    end)

    it("a redirect to another origin gets neither api-key nor custom headers", function()
      local E2 = emulator.start{ job_seconds = 0.2 }
      local ok, failure = pcall(function()
        local c = azure{ headers = { ["x-secret"] = "s" } }
        local video = assert(c:create{ prompt = "redirected" })
        assert(video:wait{ timeout = 30, interval = 0.05 })
        E2:fault{ method = "GET", path = "^/v1/storage/", action = "respond", status = 200,
                  headers = { ["content-type"] = "video/mp4" }, body = "STORED" }
        E:fault{ method = "GET", path = "/content$", action = "respond", status = 302, body = "",
                 headers = { location = E2.url .. "/storage/abc" } }
        assert.are.equal("STORED", assert(c:download_content(video.id)))
        local r = E2:requests()[1]
        assert.is_nil(r.headers["api-key"])
        assert.is_nil(r.headers.authorization)
        assert.is_nil(r.headers["x-secret"])
        assert.matches("^sora%-lua/", r.headers["user-agent"])
        c:close()
      end)
      E2:stop()
      assert(ok, failure)
    end)

    it("refuses an api_key_header that is not a header name", function()
      for _, name in ipairs{ "api key", "api-key:", "", "x\r\ny" } do
        local ok, err = pcall(sora.new, { api_key = KEY, api_key_header = name })
        assert.is_false(ok, name)
        assert.matches("option 'api_key_header'", err, 1, true)
      end
    end)
  end)

  describe("the prebuilt header lists", function()
    it("go with the key again on the request after a redirect to another origin (the same handle)", function()
      local E2 = emulator.start{ job_seconds = 0.2 }
      local ok, failure = pcall(function()
        local c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
        local video = assert(c:create{ prompt = "redirected, then retrieved" })
        assert(video:wait{ timeout = 30, interval = 0.05 })
        E2:fault{ method = "GET", path = "^/v1/storage/", action = "respond", status = 200, times = 2,
                  headers = { ["content-type"] = "video/mp4" }, body = "STORED" }
        E:fault{ method = "GET", path = "/content$", action = "respond", status = 302, body = "", times = 2,
                 headers = { location = E2.url .. "/storage/abc" } }
        for _ = 1, 2 do
          assert.are.equal("STORED", assert(c:download_content(video.id)))
          assert.is_nil(E2:last_request().headers.authorization)
          assert(c:retrieve(video.id)) -- the emulator refuses a request without the key
          assert.are.equal(E.bearer(KEY), E:last_request().headers.authorization)
        end
        c:close()
      end)
      E2:stop()
      assert(ok, failure)
    end)

    it("carry exactly one User-Agent and one credential on every kind of request", function()
      local c = sora.new{ api_key = KEY, base_url = E.url }
      local video = assert(c:create{ prompt = "json" })
      assert(c:create{ prompt = "multipart", size = "1280x720", input_reference = H.FIXTURES .. "ref-1280x720.png" })
      assert(c:retrieve(video.id))
      for _, r in ipairs(E:requests()) do
        assert.matches("^sora%-lua/%S+ libcurl/%S+ Lua 5%.%d$", r.headers["user-agent"])
        assert.are.equal(E.bearer(KEY), r.headers.authorization)
      end
      c:close()
    end)

    it("a user's User-Agent or Authorization replaces sora's, not added beside it", function()
      local c = sora.new{ api_key = "sk-unused-key-0000000", base_url = E.url,
                          headers = { ["user-agent"] = "my-app/1.0", Authorization = "Bearer " .. KEY } }
      assert(c:create{ prompt = "user headers" })
      local h = E:last_request().headers
      assert.are.equal("my-app/1.0", h["user-agent"]) -- one value: two would be joined with ","
      assert.are.equal(E.bearer(KEY), h.authorization)
      c:close()
    end)
  end)
end)
