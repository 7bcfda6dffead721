-- Errors that say what to do: a base URL without /v1 that meets OpenAI's "Invalid URL" 404, a
-- base URL without a scheme, a misspelt option name (in the C core and the Lua layer alike).
-- Through the compiled core, libcurl and the emulator.
local sora = require "sora"
local H = require "support.client"

describe("errors that say what to do", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  describe("a base URL whose path does not end in /v1", function()
    it("turns OpenAI's 404 'Invalid URL' into one that names the fix", function()
      local root = E.url:gsub("/v1$", "")
      for _, base in ipairs{ root, root .. "/", root .. "/api" } do
        local client = sora.new{ api_key = H.KEY, base_url = base, max_retries = 0 }
        local video, err = client:create{ prompt = "a boat" }
        client:close()
        assert.is_nil(video)
        assert.are.equal("not_found", err.kind)
        local shown = base:gsub("/$", "")
        assert.are.equal("Invalid URL (POST " .. (shown:match("/api$") and "/api" or "") .. "/videos) "
          .. "(base_url " .. shown .. " does not end in /v1: try " .. shown .. "/v1)", err.message)
      end
    end)

    it("leaves a 404 alone when the base URL ends in /v1", function()
      local video, err = c:retrieve("video_none")
      assert.is_nil(video)
      assert.are.equal("not_found", err.kind)
      assert.is_nil(err.message:find("/v1:", 1, true), err.message)
      -- an "Invalid URL" for a base URL that ends in /v1 has another cause: no hint
      local client = sora.new{ api_key = H.KEY, base_url = E.url .. "/v1", max_retries = 0 }
      video, err = client:create{ prompt = "a boat" }
      client:close()
      assert.are.equal("Invalid URL (POST /v1/v1/videos)", err.message)
    end)
  end)

  describe("a base URL without a scheme", function()
    local function refused(base)
      local ok, err = pcall(sora.new, { api_key = H.KEY, base_url = base })
      assert.is_false(ok)
      return err
    end

    it("suggests https://host/v1", function()
      assert.matches("bad argument #1 to 'new' %(base_url .* %(did you mean 'https://api%.openai%.com/v1'%?%)%)$",
        refused("api.openai.com/v1"))
      assert.matches("%(did you mean 'https://localhost:8000/v1'%?%)%)$", refused("localhost:8000/v1"))
      assert.matches("%(did you mean 'https://gateway%.example/v1'%?%)%)$", refused("gateway.example"))
    end)

    it("never quotes a password it was given", function()
      local err = refused("alice:s3cret@gateway.example/v1")
      assert.is_nil(err:find("s3cret", 1, true), err)
      assert.matches("did you mean 'https://gateway%.example/v1'", err)
    end)

    it("gives no such hint for a URL with another scheme", function()
      assert.is_nil(refused("ftp://example.com/v1"):find("did you mean", 1, true))
    end)
  end)

  describe("an unknown option suggests the nearest known name", function()
    local function message(fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      return err
    end

    it("in the C core: an endpoint's options and new's", function()
      assert.matches("^spec/errors_hint_spec%.lua:%d+: bad argument #1 to 'create' %(unknown option 'promt' "
        .. "%(did you mean 'prompt'%?%)%)$", message(c.create, c, { promt = "x" }))
      assert.matches("unknown option 'modle' %(did you mean 'model'%?%)", message(c.create, c, { prompt = "x", modle = "m" }))
      assert.matches("to 'new' %(unknown option 'base_ulr' %(did you mean 'base_url'%?%)%)$",
        message(sora.new, { base_ulr = "http://x/v1" }))
      assert.matches("to 'download_content' %(unknown option 'varaint' %(did you mean 'variant'%?%)%)",
        message(c.download_content, c, "video_1", { varaint = "thumbnail" }))
    end)

    it("for generate: create's names (in C) and generate's own (output, interval...)", function()
      assert.matches("to 'generate' %(unknown option 'promt' %(did you mean 'prompt'%?%)%)$",
        message(c.generate, c, { promt = "x" }))
      assert.matches("^spec/errors_hint_spec%.lua:%d+: bad argument #1 to 'generate' %(unknown option 'outptu' "
        .. "%(did you mean 'output'%?%)%)$", message(c.generate, c, { prompt = "x", outptu = "x.mp4" }))
      assert.matches("unknown option 'intervall' %(did you mean 'interval'%?%)%)$",
        message(c.generate, c, { prompt = "x", intervall = 1 }))
    end)

    it("in the Lua layer: wait, list, webhooks", function()
      local video = H.completed_video(c, E, { prompt = "hint" })
      assert.matches("to 'wait' %(unknown option 'timout' %(did you mean 'timeout'%?%)%)$",
        message(video.wait, video, { timout = 1 }))
      assert.matches("to 'list' %(unknown option 'limt' %(did you mean 'limit'%?%)%)$",
        message(function() return c:list{ limt = 2 } end))
      assert.matches("to 'verify' %(unknown option 'tolerence' %(did you mean 'tolerance'%?%)%)$",
        message(sora.webhooks.verify, "{}", {}, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", { tolerence = 5 }))
    end)

    it("and nothing when no name is near", function()
      local err = message(c.create, c, { prompt = "x", zzzzzzzz = 1 })
      assert.matches("unknown option 'zzzzzzzz'%)$", err)
      err = message(function() return c:list{ qqqqqq = 1 } end)
      assert.matches("unknown option 'qqqqqq'%)$", err)
    end)
  end)
end)
