-- The retry policy: the official SDKs' vectors through core._retry_delay, and through the
-- emulator which statuses and headers are retried, how often, and for how long.
local sora = require "sora"
local core = require "sora.core"
local emulator = require "support.emulator"
local H = require "support.client"
local F = require "support.faults"

local delay = core._retry_delay

describe("retry policy (core._retry_delay)", function()
  -- WIRE.md "Retries": the Python SDK's test vectors (first retry, jitter 0)
  it("honours retry-after seconds between 0 and 120", function()
    assert.are.equal(20, delay("20", 0, 0))
    assert.are.equal(120, delay("120", 0, 0))
    assert.are.equal(1.5, delay("1.5", 0, 0))
  end)

  it("falls back to the backoff for 0 and negative values", function()
    assert.are.equal(0.5, delay("0", 0, 0))
    assert.are.equal(0.5, delay("-10", 0, 0))
  end)

  it("does not retry when the server asks for more than 120 s", function()
    assert.is_nil(delay("121", 0, 0))
    assert.is_nil(delay("3600", 2, 0))
    assert.is_nil(delay("121", 0, 0.5))
  end)

  it("ignores inf, nan, empty and garbage values", function()
    for _, header in ipairs{ "inf", "nan", "", "garbage", "-inf", "1e999", "20s", " ", "0x10" } do
      assert.are.equal(0.5, delay(header, 0, 0), "header " .. string.format("%q", header))
    end
  end)

  it("backs off exponentially from 0.5 s, capped at 8 s", function()
    assert.are.equal(0.5, delay(nil, 0, 0))
    assert.are.equal(1.0, delay(nil, 1, 0))
    assert.are.equal(2.0, delay(nil, 2, 0))
    assert.are.equal(4.0, delay(nil, 3, 0))
    assert.are.equal(8.0, delay(nil, 4, 0))
    assert.are.equal(8.0, delay(nil, 5, 0))
    assert.are.equal(8.0, delay(nil, 30, 0))
    assert.are.equal(1.0, delay("garbage", 1, 0))
  end)

  it("takes at most a quarter off the backoff with jitter", function()
    for retries = 0, 6 do
      local full = delay(nil, retries, 0)
      local jittered = delay(nil, retries, 0.999)
      assert.is_true(jittered >= 0.75 * full and jittered <= full, retries .. ": " .. jittered)
      local mid = delay(nil, retries, 0.5)
      assert.is_true(math.abs(mid - 0.875 * full) < 1e-9)
    end
  end)

  it("does not jitter a delay the server asked for", function()
    assert.are.equal(20, delay("20", 0, 0.999))
  end)

  it("reads an HTTP date as the seconds until then", function()
    local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 5)
    local d = delay(when, 0, 0)
    assert.is_number(d)
    assert.is_true(d >= 3.9 and d <= 5.1, tostring(d))
    -- a date in the past is no delay at all: the backoff applies
    local past = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 30)
    assert.are.equal(0.5, delay(past, 0, 0))
    -- a date beyond the cap is not retried
    local far = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 600)
    assert.is_nil(delay(far, 0, 0))
  end)
end)

describe("retries through the emulator", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 2 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local FAST = { ["retry-after-ms"] = "10" }

  for _, status in ipairs{ 408, 409, 429, 500, 502, 503, 504 } do
    it("retries " .. status .. " and then succeeds", function()
      local v = assert(c:create{ prompt = "retried " .. status })
      E:clear_requests()
      E:fault{ method = "GET", action = "respond", status = status, times = 1, headers = FAST }
      local again, err = c:retrieve(v.id)
      assert.is_nil(err)
      assert.are.equal(v.id, again.id)
      assert.are.equal(2, #E:requests())
    end)
  end

  for _, case in ipairs{ { 400, "bad_request" }, { 401, "authentication" },
                         { 403, "permission_denied" }, { 404, "not_found" },
                         { 422, "unprocessable_entity" } } do
    it("does not retry " .. case[1], function()
      E:fault{ method = "GET", action = "respond", status = case[1], times = 3, headers = FAST }
      local v, err = c:retrieve("video_x")
      assert.is_nil(v)
      assert.are.equal(case[2], err.kind)
      assert.are.equal(case[1], err.status)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #E:requests())
      assert.is_nil(err.message:find("attempts", 1, true))
    end)
  end

  it("retries a 400 that says x-should-retry: true", function()
    local v = assert(c:create{ prompt = "should retry" })
    E:clear_requests()
    E:fault{ method = "GET", action = "respond", status = 400, times = 1,
             headers = { ["x-should-retry"] = "true", ["retry-after-ms"] = "10" } }
    local again, err = c:retrieve(v.id)
    assert.is_nil(err)
    assert.are.equal(v.id, again.id)
    assert.are.equal(2, #E:requests())
  end)

  it("does not retry a 503 that says x-should-retry: false", function()
    E:fault{ method = "GET", action = "respond", status = 503, times = 3,
             headers = { ["x-should-retry"] = "false", ["retry-after-ms"] = "10" } }
    local v, err = c:retrieve("video_x")
    assert.is_nil(v)
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(503, err.status)
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, #E:requests())
  end)

  it("prefers retry-after-ms over retry-after", function()
    E:fault{ method = "GET", action = "respond", status = 429, times = 1,
             headers = { ["retry-after-ms"] = "200", ["retry-after"] = "3" } }
    local elapsed, _, err = F.timed(c.retrieve, c, "video_x", { max_retries = 1 })
    assert.are.equal("not_found", err.kind)
    assert.are.equal(2, err.attempts)
    assert.are.equal(2, #E:requests())
    assert.is_true(elapsed >= 0.18 and elapsed < 1.5, tostring(elapsed))
  end)

  it("uses retry-after when retry-after-ms is garbage", function()
    E:fault{ method = "GET", action = "respond", status = 429, times = 1,
             headers = { ["retry-after-ms"] = "soon", ["retry-after"] = "1" } }
    local elapsed, _, err = F.timed(c.retrieve, c, "video_x", { max_retries = 1 })
    assert.are.equal("not_found", err.kind)
    assert.are.equal(2, #E:requests())
    assert.is_true(elapsed >= 0.95 and elapsed < 2.5, tostring(elapsed))
  end)

  it("honours a retry-after HTTP date", function()
    -- whole seconds: the date is 2 s ahead, so the wait is between 1 and 2 s
    local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2)
    E:fault{ method = "GET", action = "respond", status = 503, times = 1,
             headers = { ["retry-after"] = when } }
    local elapsed, _, err = F.timed(c.retrieve, c, "video_x", { max_retries = 1 })
    assert.are.equal("not_found", err.kind)
    assert.are.equal(2, #E:requests())
    assert.is_true(elapsed >= 0.9 and elapsed < 3, tostring(elapsed))
  end)

  it("makes max_retries + 1 attempts and says so in the last error", function()
    E:fault{ method = "GET", action = "respond", status = 500, times = 10, headers = FAST }
    local v, err = c:retrieve("video_x")
    assert.is_nil(v)
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(3, err.attempts)
    assert.are.equal(3, #E:requests())
    assert.matches("after 3 attempts", err.message, 1, true)
    assert.matches("after 3 attempts", tostring(err), 1, true)
  end)

  it("takes max_retries per client", function()
    local five = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 5 }
    local none = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
    E:fault{ method = "GET", action = "respond", status = 503, times = 10, headers = FAST }
    local _, err = five:retrieve("video_x")
    assert.are.equal(6, err.attempts)
    assert.matches("after 6 attempts", err.message, 1, true)
    assert.are.equal(6, #E:requests())
    E:clear_requests()
    _, err = none:retrieve("video_x")
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, #E:requests())
    five:close()
    none:close()
  end)

  it("takes max_retries per call, over the client's", function()
    E:fault{ method = "GET", action = "respond", status = 503, times = 10, headers = FAST }
    local _, err = c:retrieve("video_x", { max_retries = 0 })
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, #E:requests())
    E:clear_requests()
    _, err = c:retrieve("video_x", { max_retries = 4 })
    assert.are.equal(5, err.attempts)
    assert.are.equal(5, #E:requests())
    -- the client's own setting is unchanged
    E:clear_faults()
    E:clear_requests()
    E:fault{ method = "GET", action = "respond", status = 503, times = 10, headers = FAST }
    _, err = c:retrieve("video_x")
    assert.are.equal(3, err.attempts)
    assert.are.equal(3, #E:requests())
  end)

  it("applies per-call max_retries to POST and to content too", function()
    E:fault{ method = "POST", action = "respond", status = 500, times = 10, headers = FAST }
    local v, err = c:create({ prompt = "no retries", max_retries = 0 })
    assert.is_nil(v)
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, #E:requests())
    E:clear_faults()
    E:clear_requests()
    E:fault{ method = "GET", path = "/content$", action = "respond", status = 502, times = 10,
             headers = FAST }
    local bytes
    bytes, err = c:download_content("video_x", { max_retries = 1 })
    assert.is_nil(bytes)
    assert.are.equal(2, err.attempts)
    assert.are.equal(2, #E:requests())
  end)

  it("retries a refused connection, then gives kind connection", function()
    local gone = emulator.start{ api_key = H.KEY }
    local url = gone.url
    gone:stop()
    local dead = sora.new{ api_key = H.KEY, base_url = url, max_retries = 1 }
    local elapsed, v, err = F.timed(dead.retrieve, dead, "video_x")
    dead:close()
    assert.is_nil(v)
    assert.are.equal("connection", err.kind)
    assert.is_nil(err.status)
    assert.are.equal(2, err.attempts)
    assert.matches("after 2 attempts", err.message, 1, true)
    -- one backoff of 0.5 s, less at most a quarter of jitter
    assert.is_true(elapsed >= 0.35 and elapsed < 2, tostring(elapsed))
  end)

  it("retries a timeout", function()
    local v = assert(c:create{ prompt = "slow once" })
    E:clear_requests()
    E:fault{ method = "GET", action = "stall", times = 1 }
    local again, err = c:retrieve(v.id, { timeout = 0.3, max_retries = 1 })
    assert.is_nil(err)
    assert.are.equal(v.id, again.id)
    assert.are.equal(2, #E:requests())
  end)

  it("stops retrying at the call's deadline", function()
    E:fault{ method = "GET", action = "respond", status = 503, times = 10,
             headers = { ["retry-after"] = "1" } }
    local elapsed, v, err = F.timed(c.retrieve, c, "video_x", { max_retries = 10, deadline = 1.5 })
    assert.is_nil(v)
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(2, err.attempts)
    assert.are.equal(2, #E:requests())
    assert.is_true(elapsed >= 0.9 and elapsed < 2, tostring(elapsed))
  end)

  it("cuts an attempt at the call's deadline", function()
    E:fault{ method = "GET", action = "stall", times = 1 }
    local elapsed, v, err = F.timed(c.retrieve, c, "video_x", { deadline = 0.5 })
    assert.is_nil(v)
    assert.are.equal("timeout", err.kind)
    assert.is_true(elapsed >= 0.4 and elapsed < 1.5, tostring(elapsed))
  end)

  it("takes a deadline per client", function()
    local bounded = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 10, deadline = 1.5 }
    E:fault{ method = "GET", action = "respond", status = 503, times = 10,
             headers = { ["retry-after"] = "1" } }
    local elapsed, v, err = F.timed(bounded.retrieve, bounded, "video_x")
    bounded:close()
    assert.is_nil(v)
    assert.are.equal(2, err.attempts)
    assert.is_true(elapsed < 2, tostring(elapsed))
  end)
end)
