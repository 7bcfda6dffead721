-- generate_many (batches with a concurrency cap and a shared 429 back-off), the module's
-- small functions, and a download onto a full disk.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

describe("generate_many", function()
  local E, c, dir
  lazy_setup(function()
    E, c = H.start()
    dir = H.tempdir()
  end)
  lazy_teardown(function()
    c:close()
    E:stop()
    H.rmdir(dir)
  end)
  before_each(function()
    E:clear_requests()
    E:clear_faults()
  end)

  local function jobs(n, prefix)
    local list = {}
    for i = 1, n do
      list[i] = { prompt = prefix .. " " .. i, output = dir .. "/" .. prefix .. "-" .. i .. ".mp4",
                  interval = 0.05 }
    end
    return list
  end

  it("generates every job, indexes the results like the jobs, and reports each", function()
    local list = jobs(5, "batch")
    list[3].prompt = "#fail the third"
    local reported = {}
    local videos, errors = c:generate_many(list, { concurrency = 2, on_result = function(i, v, err)
      reported[i] = v and v.prompt or err.kind
    end })
    for i = 1, 5 do
      if i == 3 then
        assert.is_false(videos[3])
        assert.are.equal("failed", errors[3].kind)
        assert.are.equal("failed", reported[3])
      else
        assert.are.equal("batch " .. i, videos[i].prompt)
        assert.is_nil(errors[i])
        assert.are.equal("batch " .. i, reported[i])
        assert.are.equal("ftyp", H.read(list[i].output):sub(5, 8))
      end
    end
  end)

  it("starts no more than `concurrency` jobs before one has finished", function()
    c:generate_many(jobs(4, "capped"), { concurrency = 2 })
    -- the third create may only follow a finished job (its download)
    local posts, downloads_before_third = 0, nil
    local downloads = 0
    for _, r in ipairs(E:requests()) do
      if r.method == "POST" and r.path == "/v1/videos" then
        posts = posts + 1
        if posts == 3 then downloads_before_third = downloads end
      elseif r.path:match("/content$") then
        downloads = downloads + 1
      end
    end
    assert.are.equal(4, posts)
    assert.is_true(downloads_before_third >= 1, "the third job started before any had finished")
  end)

  it("backs off together when the server answers 429, then retries the refused jobs", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "respond", status = 429,
             headers = { ["retry-after"] = "1" }, times = 2 }
    local start = sora.now()
    local videos, errors = c:generate_many(jobs(3, "limited"), { concurrency = 3 })
    for i = 1, 3 do
      assert.is_truthy(videos[i], tostring(errors[i]))
    end
    local posts = H.matching(E, "POST", "^/v1/videos$")
    assert.are.equal(5, #posts) -- 3 jobs, 2 refused once
    -- every job waited for the one second the server asked for
    assert.is_true(sora.now() - start >= 1)
  end)

  it("gives up on a job after max_attempts refusals, keeping the server's error", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "respond", status = 429,
             headers = { ["retry-after-ms"] = "10" }, times = 10 }
    local videos, errors = c:generate_many({ { prompt = "refused" } }, { max_attempts = 2 })
    assert.is_false(videos[1])
    assert.are.equal("rate_limit", errors[1].kind)
    assert.are.equal(2, #H.matching(E, "POST", "^/v1/videos$"))
  end)

  it("yields inside a task", function()
    local task = c:spawn(function()
      local videos = c:generate_many({ { prompt = "in a task", interval = 0.05 } })
      return videos[1].prompt
    end)
    local steps = 0
    while c:step(0.01) > 0 do steps = steps + 1 end
    assert.are.equal("in a task", task:result())
    assert.is_true(steps > 1)
  end)

  it("raises for bad arguments, naming them", function()
    assert.has_error(function() c:generate_many("x") end,
      "bad argument #1 to 'generate_many' (table expected, got string)")
    assert.has_error(function() c:generate_many({}, { concurency = 2 }) end,
      "bad argument #2 to 'generate_many' (unknown option 'concurency' (did you mean 'concurrency'?))")
    assert.has_error(function() c:generate_many({ { prompt = "x", output = 5 } }) end)
  end)
end)

describe("module functions", function()
  it("sora.now is a monotonic clock in seconds; versions are strings", function()
    local a = sora.now()
    local b = sora.now()
    assert.is_number(a)
    assert.is_true(b >= a)
    assert.matches("^%d+%.%d+%.%d+$", sora._VERSION)
    assert.matches("^%d+%.%d+%.%d+", sora.curl_version)
  end)

  it("client:sleep waits outside a task and rejects bad durations", function()
    local c = sora.new{ api_key = H.KEY, base_url = "http://127.0.0.1:9/v1" }
    local start = sora.now()
    c:sleep(0.05)
    assert.is_true(sora.now() - start >= 0.05)
    assert.has_error(function() c:sleep(-1) end)
    assert.has_error(function() c:sleep("1") end)
    c:close()
    assert.has_error(function() c:sleep(0.01) end, "calling 'sleep' on a closed sora.Client")
  end)
end)

describe("a download onto a full disk", function()
  local E, c, mount
  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.1, api_key = H.KEY, video_bytes = 512 * 1024 }
    c = sora.new{ api_key = H.KEY, base_url = E.url }
    mount = H.tempdir()
  end)
  lazy_teardown(function()
    os.execute("umount " .. H.shell_quote(mount) .. " 2>/dev/null")
    c:close()
    E:stop()
    H.rmdir(mount)
  end)

  it("fails as kind io naming the path, and leaves nothing behind", function()
    local ok = os.execute("mount -t tmpfs -o size=64k tmpfs " .. H.shell_quote(mount) .. " 2>/dev/null")
    if not (ok == true or ok == 0) then
      pending("cannot mount a small tmpfs here (needs root)")
      return
    end
    local video = assert(c:create_and_wait({ prompt = "too big" }, { interval = 0.05 }))
    local target = mount .. "/video.mp4"
    local done, err = video:download{ path = target }
    assert.is_nil(done)
    assert.are.equal("io", err.kind)
    assert.matches("video.mp4", err.message, 1, true)
    assert.matches("No space left on device", err.message, 1, true)
    assert.are.same({}, H.ls(mount))
  end)
end)
