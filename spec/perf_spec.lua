-- What the performance work (issue 9, docs/performance.md) must not change, and what it must
-- keep: connections reused across bursts of tasks, the key redacted however a body spells it
-- (the walk over decoded strings is skipped only for bodies that cannot hold it), Videos
-- normalized and checked as before when their fields are vetted in one pass.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

local KEY = "sk-PERF-" .. string.rep("W", 40) .. "-END"

describe("performance invariants", function()
  local E, c, video

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.2, api_key = KEY }
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
    video = assert(c:create{ prompt = "perf" })
    E:force_video(video.id, { status = "completed" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
  end)

  -- TASKS tasks at once, each `per_task` retrieves; returns how many connections the emulator
  -- accepted meanwhile (less the one of the control request that asks afterwards).
  local function burst(client, tasks, per_task)
    local before = E:stats().connections_accepted
    local spawned = {}
    for i = 1, tasks do
      spawned[i] = client:spawn(function()
        for _ = 1, per_task do assert(client:retrieve(video.id)) end
      end)
    end
    client:run()
    for _, task in ipairs(spawned) do assert(task:result() ~= false) end
    return E:stats().connections_accepted - before - 1
  end

  it("a burst of 16 tasks opens 16 connections, and the next burst reuses them all", function()
    local client = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
    local first = burst(client, 16, 4)
    local second = burst(client, 16, 4)
    client:close()
    assert.are.equal(16, first, "connections opened by the first burst")
    assert.are.equal(0, second, "the second burst opened new connections")
  end)

  it("a request after a create that was only checked goes with its own method", function()
    -- a handle remembers the method it last set (transfer.c set_method), and a checked create
    -- unsets its body at its end, which makes libcurl's method a POST again: the next GET on
    -- that handle must not go as a POST
    local client = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0, timeout = 3 }
    assert(client:retrieve(video.id))
    client:_check("create", { prompt = "checked, never sent" })
    local v, err = client:retrieve(video.id)
    client:close()
    assert.is_nil(err)
    assert.are.equal(video.id, v.id)
  end)

  it("redacts the key that a body spells through a JSON escape", function()
    local escaped = "\\u0073" .. KEY:sub(2) -- "s" as \u0073: the body never holds the key as is
    local body = string.format('{"id":"%s","object":"video","status":"completed","prompt":"say %s",'
      .. '"progress":100,"created_at":1767225600,"seconds":"8","error":null}', video.id, escaped)
    E:fault{ method = "GET", action = "respond", status = 200, body = body }
    local v = assert(c:retrieve(video.id))
    assert.are.equal("say [redacted key]", v.prompt)
  end)

  it("redacts the key held as it is by an item of a page", function()
    local body = string.format('{"object":"list","has_more":false,"first_id":"%s","last_id":"%s",'
      .. '"data":[{"id":"%s","object":"video","status":"completed","prompt":"%s","progress":100}]}',
      video.id, video.id, video.id, KEY)
    E:fault{ method = "GET", action = "respond", status = 200, body = body }
    local page = assert(c:list_page{ limit = 1 })
    assert.are.equal("[redacted key]", page.data[1].prompt)
  end)

  it("normalizes a Video's fields in one pass: integers, seconds as text, nulls gone", function()
    local body = string.format('{"id":"%s","object":"video","status":"failed","progress":100.0,'
      .. '"created_at":1767225600,"completed_at":null,"seconds":8,"size":"1280x720","extra":[1,2],'
      .. '"error":{"code":"moderation","message":"no","param":null}}', video.id)
    E:fault{ method = "GET", action = "respond", status = 200, body = body }
    local v = assert(c:retrieve(video.id))
    assert.are.equal(math.type and "integer" or "number", math.type and math.type(v.progress) or type(v.progress))
    assert.are.equal(100, v.progress)
    assert.are.equal("8", v.seconds)
    assert.is_nil(v.completed_at)
    assert.are.equal("moderation", v.error.code)
    assert.is_nil(v:to_table().error.param)
    assert.are.same({ 1, 2 }, v.extra)
  end)

  it("still names the field of a Video that has the wrong type", function()
    local cases = {
      { '"status":"completed","progress":"full"', "the video's 'progress' is not a number" },
      { '"status":7', "the video's 'status' is not a string" },
      { '"progress":1', "the video's 'status' is not a string" },
      { '"status":"failed","error":{"code":5}', "the video's error's 'code' is not a string" },
    }
    for _, case in ipairs(cases) do
      E:fault{ method = "GET", action = "respond", status = 200,
               body = string.format('{"id":"%s",%s}', video.id, case[1]) }
      local v, err = c:retrieve(video.id)
      assert.is_nil(v)
      assert.are.equal("invalid_response", err.kind)
      assert.matches(case[2], err.message, 1, true)
    end
  end)
end)

-- A large download is handed over in slices: a drive pauses a transfer whose slice of time is
-- spent (libcurl keeps its chunk) and the next drive resumes it, handing that chunk over first.
describe("content in slices", function()
  local MB = 1024 * 1024
  local SIZE = 8 * MB
  local E, c, video

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.1, api_key = KEY, video_bytes = SIZE }
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
    video = assert(c:create_and_wait({ prompt = "large" }, { interval = 0.05 }))
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  it("a step(0) hands a slow sink a chunk or two, not all that waits in the socket", function()
    -- a sink that takes 1 ms a chunk spends each slice at once: unsliced, a step would hand
    -- over everything the socket holds meanwhile (up to 100 buffers)
    local calls = 0
    local task = c:spawn(function()
      return c:download_content(video.id, { sink = function()
        calls = calls + 1
        local until_t = sora.now() + 0.001
        while sora.now() < until_t do end
        if calls == 40 then error("sink gave up") end
      end })
    end)
    local most, before = 0, 0
    while not task:done() do
      c:step(0)
      most = math.max(most, calls - before)
      before = calls
    end
    local ok, err = task:result()
    -- nearly every chunk after a step's first came from the resume that starts the next step:
    -- the error raised on one of them fails the download, as any sink's error does
    assert.is_nil(ok)
    assert.matches("sink gave up", tostring(err))
    assert.are.equal(40, calls)
    assert.is_true(most <= 3, "one step(0) handed over " .. most .. " chunks")
    -- the client and its handles still work
    assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
  end)

  it("a download to a file, paused and resumed, is whole and byte for byte the server's", function()
    local dir = H.tempdir()
    local path, copy = dir .. "/big.mp4", dir .. "/curl.mp4"
    local task = c:spawn(function() return c:download_content(video.id, { path = path }) end)
    local steps = 0
    while not task:done() do
      c:step(0)
      steps = steps + 1
    end
    assert(task:result())
    -- the same bytes fetched by the curl command line, independently of the module
    assert(os.execute(string.format("curl -sf -H 'Authorization: Bearer %s' -o %s %s/videos/%s/content",
      KEY, copy, E.url, video.id)))
    local p = io.popen("sha256sum " .. path .. " " .. copy)
    local a, b = p:read("*l"):match("^(%x+)"), p:read("*l"):match("^(%x+)")
    p:close()
    H.rmdir(dir)
    assert.are.equal(b, a)
    assert.is_true(steps > 2)
  end)
end)
