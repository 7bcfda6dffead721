-- video:wait, client:create_and_wait and client:generate.
local sora = require "sora"
local socket = require "socket"
local H = require "support.client"

describe("waiting", function()
  local E, c, dir

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    H.stop(E, c)
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_requests()
  end)

  local function polls(id)
    return #H.matching(E, "GET", "^/v1/videos/" .. id .. "$")
  end

  describe("video:wait", function()
    it("returns the video itself once it completes", function()
      local v = assert(c:create{ prompt = "wait for me" })
      local done, err = v:wait{ interval = 0.05, timeout = 5 }
      assert.is_nil(err)
      assert.is_true(rawequal(v, done))
      assert.are.equal("completed", v.status)
      assert.are.equal(100, v.progress)
      assert.is_true(H.is_integer(v.completed_at))
      assert.is_true(polls(v.id) >= 1)
    end)

    it("returns at once for a video that is already complete", function()
      local v = H.completed_video(c, E, { prompt = "already done" })
      E:clear_requests()
      assert.are.equal(v, assert(v:wait()))
      assert.are.equal(0, #E:requests())
    end)

    it("returns nil, err of kind failed with the video's code for a failed video", function()
      local v = assert(c:create{ prompt = "a scene that will #fail" })
      local done, err = v:wait{ interval = 0.03, timeout = 5 }
      assert.is_nil(done)
      assert.is_true(sora.is_error(err))
      assert.are.equal("failed", err.kind)
      assert.are.equal("moderation_blocked", err.code)
      assert.are.equal(v, err.video)
      assert.are.equal("failed", err.video.status)
      assert.are.equal(50, err.video.progress)
      assert.matches(v.id, err.message, 1, true)
      assert.matches("Your request was blocked by our moderation system", err.message, 1, true)
      local line = tostring(err)
      assert.matches("failed", line)
      assert.is_nil(line:find("\n"))
    end)

    it("returns nil, err of kind timeout when the video takes too long", function()
      local v = assert(c:create{ prompt = "forever queued" })
      E:force_video(v.id, { status = "queued" })
      local t = socket.gettime()
      local done, err = v:wait{ timeout = 0.15, interval = 0.02 }
      local elapsed = socket.gettime() - t
      assert.is_nil(done)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(v, err.video)
      assert.matches("did not finish within", err.message)
      assert.is_true(elapsed >= 0.14 and elapsed < 1, tostring(elapsed))
      assert.is_true(polls(v.id) >= 3)
    end)

    it("calls on_progress with the video after each poll, progress rising", function()
      local v = assert(c:create{ prompt = "progress" })
      local seen, handles = {}, {}
      assert(v:wait{ interval = 0.02, timeout = 5, on_progress = function(video)
        seen[#seen + 1] = video.progress
        handles[#handles + 1] = video
      end })
      assert.is_true(#seen >= 3, "only " .. #seen .. " calls")
      for i = 2, #seen do assert.is_true(seen[i] >= seen[i - 1], table.concat(seen, ",")) end
      assert.are.equal(100, seen[#seen])
      assert.is_true(seen[1] < 100)
      assert.is_true(rawequal(v, handles[1]))
    end)

    it("honours the interval", function()
      local fast = assert(c:create{ prompt = "fast polls" })
      assert(fast:wait{ interval = 0.02, timeout = 5 })
      local slow = assert(c:create{ prompt = "slow polls" })
      local t = socket.gettime()
      assert(slow:wait{ interval = 0.2, timeout = 5 })
      local elapsed = socket.gettime() - t
      local n_fast, n_slow = polls(fast.id), polls(slow.id)
      assert.is_true(n_fast >= 6, "fast: " .. n_fast)
      assert.is_true(n_slow >= 1 and n_slow <= 3, "slow: " .. n_slow)
      assert.is_true(elapsed >= 0.2 * n_slow - 0.05, tostring(elapsed))
    end)

    it("follows the server's poll hint when no interval is given", function()
      local v = assert(c:create{ prompt = "hinted" })
      local t = socket.gettime()
      assert(v:wait{ timeout = 5 })
      -- job 0.3 s, hint 50 ms: well under the 1 s default
      assert.is_true(socket.gettime() - t < 0.9)
    end)

    it("returns the refresh error when the video disappears", function()
      local v = assert(c:create{ prompt = "deleted while waiting" })
      E:forget_video(v.id)
      local done, err = v:wait{ interval = 0.01, timeout = 5 }
      assert.is_nil(done)
      assert.are.equal("not_found", err.kind)
    end)

    it("raises for unknown options and wrong types", function()
      local v = assert(c:create{ prompt = "options" })
      assert.has_error(function() v:wait{ timeot = 1 } end,
        "bad argument #1 to 'wait' (unknown option 'timeot' (did you mean 'timeout'?))")
      assert.has_error(function() v:wait{ timeout = "1" } end,
        "bad argument #1 to 'wait' (option 'timeout' must be a number, got string)")
      assert.has_error(function() v:wait{ on_progress = true } end)
      assert.has_error(function() v:wait(5) end)
    end)
  end)

  describe("client:create_and_wait", function()
    it("returns the completed video", function()
      local v, err = c:create_and_wait({ prompt = "all at once", seconds = 8 }, { interval = 0.03 })
      assert.is_nil(err)
      assert.are.equal("completed", v.status)
      assert.are.equal("8", v.seconds)
      assert.are.equal("8", H.matching(E, "POST", "^/v1/videos$")[1].json.seconds)
    end)

    it("returns nil, err for a failure", function()
      local v, err = c:create_and_wait({ prompt = "#fail now" }, { interval = 0.03 })
      assert.is_nil(v)
      assert.are.equal("failed", err.kind)
      local bad, berr = c:create_and_wait({ prompt = "x", seconds = "10" })
      assert.is_nil(bad)
      assert.are.equal("bad_request", berr.kind)
    end)
  end)

  describe("client:generate", function()
    it("creates, waits and writes a valid MP4", function()
      local out = dir .. "/generated.mp4"
      local v, err = c:generate{ prompt = "generate me", output = out, interval = 0.03 }
      assert.is_nil(err)
      assert.are.equal("completed", v.status)
      local bytes = H.read(out)
      assert.are.equal("ftyp", bytes:sub(5, 8))
      assert.are.equal(#H.media("video.mp4"), #bytes)
      assert.are.same({ "generated.mp4" }, H.ls(dir))
      local create = H.matching(E, "POST", "^/v1/videos$")[1]
      assert.are.same({ prompt = "generate me" }, create.json)
      assert.are.equal(1, #H.matching(E, "GET", "/content$"))
      os.remove(out)
    end)

    it("downloads the variant asked for", function()
      local out = dir .. "/thumb.webp"
      assert(c:generate{ prompt = "a thumbnail", output = out, variant = "thumbnail",
                         interval = 0.03 })
      local bytes = H.read(out)
      assert.are.equal("RIFF", bytes:sub(1, 4))
      assert.are.equal("WEBP", bytes:sub(9, 12))
      assert.are.equal("thumbnail", H.matching(E, "GET", "/content$")[1].query.variant)
      os.remove(out)
    end)

    it("returns the video without output, and nil, err, video on failure", function()
      local v = assert(c:generate{ prompt = "no file", interval = 0.03 })
      assert.are.equal("completed", v.status)
      local bad, err, video = c:generate{ prompt = "#fail please", output = dir .. "/never.mp4",
                                          interval = 0.03 }
      assert.is_nil(bad)
      assert.are.equal("failed", err.kind)
      assert.are.equal("failed", video.status)
      assert.are.same({}, H.ls(dir))
    end)

    it("raises for wrong option types", function()
      assert.has_error(function() c:generate{ prompt = "x", output = 5 } end)
      assert.has_error(function() c:generate{ promt = "x" } end)
      assert.has_error(function() c:generate() end)
    end)
  end)
end)
