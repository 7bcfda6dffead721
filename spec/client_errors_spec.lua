-- Error objects for every kind the emulator can produce, and retries.
local sora = require "sora"
local socket = require "socket"
local emulator = require "support.emulator"
local H = require "support.client"

describe("errors", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function assert_one_line(err)
    local line = tostring(err)
    assert.is_nil(line:find("[\r\n]"), line)
    assert.matches("^sora: " .. err.kind, line)
    assert.is_truthy(line:find(err.message, 1, true), line)
    return line
  end

  it("400 gives bad_request with the API's fields", function()
    local v, err = c:create{ prompt = "x", seconds = "10" }
    assert.is_nil(v)
    assert.is_true(sora.is_error(err))
    assert.are.equal("bad_request", err.kind)
    assert.are.equal(400, err.status)
    assert.are.equal("invalid_value", err.code)
    assert.are.equal("seconds", err.param)
    assert.are.equal("invalid_request_error", err.type)
    assert.are.equal("Invalid value: '10'. Supported values are: '4', '8', and '12'.", err.message)
    assert.matches("^req_%x+$", err.request_id)
    assert.are.equal(1, err.attempts)
    local line = assert_one_line(err)
    assert.matches("%(400%)", line)
    assert.matches("code=invalid_value", line)
  end)

  it("401 with a wrong key gives authentication", function()
    local wrong = sora.new{ api_key = "sk-wrong", base_url = E.url, max_retries = 0 }
    local v, err = wrong:retrieve("video_x")
    wrong:close()
    assert.is_nil(v)
    assert.are.equal("authentication", err.kind)
    assert.are.equal(401, err.status)
    assert.are.equal(E.bearer("sk-wrong"), E:last_request().headers.authorization)
    assert_one_line(err)
  end)

  it("404 gives not_found", function()
    local v, err = c:retrieve("video_nope")
    assert.is_nil(v)
    assert.are.equal("not_found", err.kind)
    assert.are.equal(404, err.status)
    assert_one_line(err)
  end)

  for _, case in ipairs{ { 403, "permission_denied" }, { 409, "conflict" },
                         { 422, "unprocessable_entity" }, { 429, "rate_limit" },
                         { 500, "internal_server" }, { 503, "internal_server" },
                         { 418, "api_status" } } do
    it(case[1] .. " gives " .. case[2], function()
      E:fault{ method = "GET", action = "respond", status = case[1] }
      local v, err = c:retrieve("video_x")
      assert.is_nil(v)
      assert.are.equal(case[2], err.kind)
      assert.are.equal(case[1], err.status)
      assert.is_string(err.message)
      assert.are.equal(1, #E:requests())
      assert_one_line(err)
    end)
  end

  it("keeps the message of a hand-written error body", function()
    E:fault{ method = "GET", action = "respond", status = 403,
             body = { error = { message = "Your organization must be verified.", type = "invalid_request_error",
                                code = "unverified_organization" } } }
    local _, err = c:retrieve("video_x")
    assert.are.equal("permission_denied", err.kind)
    assert.are.equal("Your organization must be verified.", err.message)
    assert.are.equal("unverified_organization", err.code)
  end)

  it("a closed port gives connection", function()
    local gone = emulator.start{ api_key = H.KEY }
    local url = gone.url
    gone:stop()
    local dead = sora.new{ api_key = H.KEY, base_url = url, max_retries = 0 }
    local v, err = dead:retrieve("video_x")
    dead:close()
    assert.is_nil(v)
    assert.are.equal("connection", err.kind)
    assert.is_nil(err.status)
    assert.matches("retrieve", err.message)
    assert_one_line(err)
  end)

  it("an HTML 502 page gives internal_server with a readable message", function()
    E:fault{ method = "GET", action = "html" }
    local v, err = c:retrieve("video_x")
    assert.is_nil(v)
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(502, err.status)
    assert.matches("^HTTP 502 from retrieve", err.message)
    assert.is_true(#err.message < 200)
    assert_one_line(err)
  end)

  it("malformed JSON on 200 gives invalid_response", function()
    E:fault{ method = "GET", action = "malformed_json" }
    local v, err = c:retrieve("video_x")
    assert.is_nil(v)
    assert.are.equal("invalid_response", err.kind)
    assert.are.equal(200, err.status)
    assert.matches("malformed JSON", err.message)
    assert_one_line(err)
  end)

  it("a 200 that is not a video gives invalid_response", function()
    E:fault{ method = "GET", action = "respond", status = 200, body = { hello = "world" } }
    local v, err = c:retrieve("video_x")
    assert.is_nil(v)
    assert.are.equal("invalid_response", err.kind)
    assert.matches("the video's 'id'", err.message, 1, true)
  end)

  it("a stall gives timeout with a small timeout option", function()
    local quick = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0, timeout = 0.3 }
    E:fault{ method = "GET", action = "stall" }
    local t = socket.gettime()
    local v, err = quick:retrieve("video_x")
    local elapsed = socket.gettime() - t
    quick:close()
    assert.is_nil(v)
    assert.are.equal("timeout", err.kind)
    assert.is_nil(err.status)
    assert.is_true(elapsed >= 0.25 and elapsed < 2, tostring(elapsed))
    assert_one_line(err)
  end)

  it("sora.is_error tells error objects from other values", function()
    local _, err = c:retrieve("video_nope")
    assert.is_true(sora.is_error(err))
    assert.is_false(sora.is_error({ kind = "not_found" }))
    assert.is_false(sora.is_error("not_found"))
    assert.is_false(sora.is_error(nil))
    assert.is_false(sora.is_error(c))
  end)

  describe("retries", function()
    local retrying

    lazy_setup(function()
      retrying = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 2 }
    end)

    lazy_teardown(function()
      if retrying then retrying:close() end
    end)

    it("retries a 500 and succeeds", function()
      local v = assert(retrying:create{ prompt = "retry me" })
      E:clear_requests()
      E:fault{ method = "GET", action = "respond", status = 500, times = 1,
               headers = { ["retry-after-ms"] = "20" } }
      local again, err = retrying:retrieve(v.id)
      assert.is_nil(err)
      assert.are.equal(v.id, again.id)
      assert.are.equal(2, #E:requests())
    end)

    it("retries a connection reset", function()
      E:fault{ method = "GET", action = "reset", times = 1 }
      local _, err = retrying:retrieve("video_after_reset")
      -- libcurl itself may retry a request on a reused connection that died; either way the
      -- call ends with the server's answer
      assert.are.equal("not_found", err.kind)
      assert.are.equal(2, #E:requests())
    end)

    it("gives up after max_retries and reports the attempts", function()
      E:fault{ method = "GET", action = "respond", status = 503, times = 5,
               headers = { ["retry-after-ms"] = "10" } }
      local v, err = retrying:retrieve("video_x")
      assert.is_nil(v)
      assert.are.equal("internal_server", err.kind)
      assert.are.equal(3, err.attempts)
      assert.are.equal(3, #E:requests())
      assert.matches("attempts=3", tostring(err))
    end)

    it("honours retry-after in seconds", function()
      E:fault{ method = "GET", action = "respond", status = 429, times = 1,
               headers = { ["retry-after"] = "1" } }
      local t = socket.gettime()
      local _, err = retrying:retrieve("video_x")
      local elapsed = socket.gettime() - t
      assert.are.equal("not_found", err.kind)
      assert.are.equal(2, #E:requests())
      assert.is_true(elapsed >= 0.95 and elapsed < 3, tostring(elapsed))
    end)

    it("honours retry-after-ms", function()
      E:fault{ method = "GET", action = "respond", status = 429, times = 1,
               headers = { ["retry-after-ms"] = "300" } }
      local t = socket.gettime()
      retrying:retrieve("video_x")
      local elapsed = socket.gettime() - t
      assert.are.equal(2, #E:requests())
      assert.is_true(elapsed >= 0.28 and elapsed < 1.2, tostring(elapsed))
    end)

    it("does not retry when x-should-retry is false, nor a 400", function()
      E:fault{ method = "GET", action = "respond", status = 500, times = 3,
               headers = { ["x-should-retry"] = "false" } }
      local _, err = retrying:retrieve("video_x")
      assert.are.equal("internal_server", err.kind)
      assert.are.equal(1, #E:requests())
      E:clear_faults()
      E:clear_requests()
      _, err = retrying:create{ prompt = "x", seconds = "10" }
      assert.are.equal("bad_request", err.kind)
      assert.are.equal(1, #E:requests())
    end)

    it("retries a 400 when x-should-retry is true", function()
      E:fault{ method = "GET", action = "respond", status = 400, times = 1,
               headers = { ["x-should-retry"] = "true", ["retry-after-ms"] = "10" } }
      local _, err = retrying:retrieve("video_x")
      assert.are.equal("not_found", err.kind)
      assert.are.equal(2, #E:requests())
    end)

    it("does not retry when retry-after is above the cap", function()
      E:fault{ method = "GET", action = "respond", status = 429, times = 1,
               headers = { ["retry-after"] = "121" } }
      local t = socket.gettime()
      local _, err = retrying:retrieve("video_x")
      assert.are.equal("rate_limit", err.kind)
      assert.are.equal(1, #E:requests())
      assert.is_true(socket.gettime() - t < 1.5)
    end)
  end)
end)
