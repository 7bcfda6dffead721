-- generate_many with a journal: every step recorded before it goes ahead, a rerun that resumes
-- from the records (skips what is done, waits for what was made, looks for what may have been
-- made), and a create whose answer was lost retried without making a second video.
local cjson = require "cjson"
local sora = require "sora"
local H = require "support.client"

-- The records of a journal file, in order (a line that is not JSON is skipped).
local function records(path)
  local list = {}
  for line in (H.read(path) or ""):gmatch("[^\n]+") do
    local ok, record = pcall(cjson.decode, line)
    if ok then list[#list + 1] = record end
  end
  return list
end

-- The journal's text up to and including the first record for which keep_until(record) holds.
local function journal_until(path, keep_until)
  local kept = {}
  for line in H.read(path):gmatch("[^\n]+") do
    kept[#kept + 1] = line
    if keep_until(cjson.decode(line)) then break end
  end
  return table.concat(kept, "\n") .. "\n"
end

local function sha256sum(path)
  return (H.sh("sha256sum " .. H.shell_quote(path)):match("^(%x+)"))
end

-- How many videos the emulator holds with this prompt (every video, listed through the API).
local function made(c, prompt)
  local n = 0
  for v in c:list{ limit = 100 } do
    if v.prompt == prompt then n = n + 1 end
  end
  return n
end

describe("generate_many with a journal", function()
  local E, c, dir
  lazy_setup(function()
    E, c = H.start()
    E:config{ idempotency = false } -- as OpenAI's API: only the look-up keeps a video single
    dir = H.tempdir()
  end)
  lazy_teardown(function()
    H.stop(E, c)
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

  local function creates() return #H.matching(E, "POST", "^/v1/videos$") end
  local function contents() return #H.matching(E, "GET", "/content$") end

  it("records each job's send, video and file (size and SHA-256) as readable JSON lines", function()
    local path = dir .. "/records.journal"
    local list = jobs(2, "records")
    local videos, errors = c:generate_many(list, { journal = path })
    assert.is_nil(errors[1])
    assert.is_nil(errors[2])
    local events, text = {}, H.read(path)
    assert.are.equal("\n", text:sub(-1))
    for _, r in ipairs(records(path)) do
      events[#events + 1] = r.event
      assert.matches("^%x+$", r.job)
      if r.event == "send" then
        assert.matches("^%x+$", r.key)
        assert.is_true(math.abs(r.at - os.time()) < 60)
        assert.is_string(r.params.prompt)
      elseif r.event == "done" then
        local i = r.file == list[1].output and 1 or 2
        assert.are.equal(list[i].output, r.file)
        assert.are.equal(videos[i].id, r.video)
        assert.are.equal(#H.read(r.file), r.bytes)
        assert.are.equal(sha256sum(r.file), r.sha256)
      end
    end
    table.sort(events)
    assert.are.same({ "done", "done", "send", "send", "video", "video" }, events)
    -- one record a line, its event first, paths unescaped
    assert.matches('^{"event":"send","job":"%x+","index":%d', text)
    assert.truthy(text:find(list[1].output, 1, true))
  end)

  it("a rerun of a finished batch sends nothing and returns the recorded videos", function()
    local path = dir .. "/finished.journal"
    local list = jobs(3, "finished")
    local first = c:generate_many(list, { journal = path })
    E:clear_requests()
    local reported = {}
    local videos, errors = c:generate_many(list, { journal = path, on_result = function(i, v)
      reported[i] = v.id
    end })
    assert.are.same({}, E:requests())
    for i = 1, 3 do
      assert.is_nil(errors[i])
      assert.are.equal(first[i].id, videos[i].id)
      assert.are.equal("completed", videos[i].status)
      assert.are.equal("finished " .. i, videos[i].prompt)
      assert.are.equal(first[i].id, reported[i])
    end
  end)

  it("downloads again a finished job whose file changed or went, without a create", function()
    local path = dir .. "/changed.journal"
    local list = jobs(2, "changed")
    c:generate_many(list, { journal = path })
    local original = H.read(list[1].output)
    H.write(list[1].output, original:sub(1, 100) .. "X" .. original:sub(102))
    os.remove(list[2].output)
    E:clear_requests()
    local videos, errors = c:generate_many(list, { journal = path })
    assert.is_nil(errors[1])
    assert.is_nil(errors[2])
    assert.are.equal(0, creates())
    assert.are.equal(2, contents())
    assert.are.equal(original, H.read(list[1].output))
    assert.are.equal("ftyp", H.read(list[2].output):sub(5, 8))
    assert.are.equal("completed", videos[2].status)
  end)

  it("a job with a recorded video is waited for and downloaded, not created again", function()
    local path = dir .. "/made.journal"
    local list = jobs(1, "made")
    c:generate_many(list, { journal = path })
    -- the journal as a process killed before the download would have left it
    H.write(path, journal_until(path, function(r) return r.event == "video" end))
    os.remove(list[1].output)
    E:clear_requests()
    local videos, errors = c:generate_many(list, { journal = path })
    assert.is_nil(errors[1])
    assert.are.equal(0, creates())
    assert.are.equal(1, contents())
    assert.are.equal(1, made(c, "made 1"))
    assert.are.equal(videos[1].id, records(path)[#records(path)].video)
  end)

  it("a job whose create was sent unanswered is looked for, and its video adopted", function()
    local path = dir .. "/sent.journal"
    local list = jobs(1, "sent")
    c:generate_many(list, { journal = path })
    -- killed after the create was sent (and the video made), before the answer was recorded
    H.write(path, journal_until(path, function(r) return r.event == "send" end))
    os.remove(list[1].output)
    E:clear_requests()
    -- a new process: its client has returned no video yet
    local fresh = sora.new{ api_key = H.KEY, base_url = E.url }
    local videos, errors = fresh:generate_many(list, { journal = path })
    fresh:close()
    assert.is_nil(errors[1], tostring(errors[1]))
    assert.are.equal(0, creates())
    assert.are.equal(1, made(c, "sent 1"))
    assert.are.equal("sent 1", videos[1].prompt)
    assert.are.equal("ftyp", H.read(list[1].output):sub(5, 8))
  end)

  it("a job whose create was sent and made nothing is created, with the same key", function()
    local path = dir .. "/unmade.journal"
    local list = { { prompt = "unmade", output = dir .. "/unmade.mp4", interval = 0.05 } }
    local key = "0123456789abcdef0123456789abcdef"
    H.write(path, cjson.encode{ event = "send", job = require("sora.journal").job_id(
      { prompt = "unmade" }, list[1].output), index = 1, key = key, at = os.time() } .. "\n")
    local videos, errors = c:generate_many(list, { journal = path })
    assert.is_nil(errors[1], tostring(errors[1]))
    assert.are.equal(1, creates())
    assert.are.equal(1, made(c, "unmade"))
    assert.are.equal("unmade", videos[1].prompt)
    local sends = {}
    for _, r in ipairs(records(path)) do
      if r.event == "send" then sends[#sends + 1] = r.key end
    end
    assert.are.same({ key, key }, sends)
    -- a structured-field string, as the IETF draft writes it
    assert.are.equal('"' .. key .. '"', H.matching(E, "POST", "^/v1/videos$")[1].headers["idempotency-key"])
  end)

  it("ignores a torn last line, and writes its next record on a line of its own", function()
    local path = dir .. "/torn.journal"
    local list = jobs(2, "torn")
    c:generate_many(list, { journal = path })
    H.write(path, journal_until(path, function(r) return r.event == "done" end)
      .. '{"event":"done","job":"ab')
    E:clear_requests()
    local videos, errors = c:generate_many(list, { journal = path })
    assert.is_nil(errors[1])
    assert.is_nil(errors[2])
    assert.are.equal(0, creates())
    assert.truthy(videos[2])
    local lines = 0
    for line in H.read(path):gmatch("[^\n]+") do
      lines = lines + 1
      if line ~= '{"event":"done","job":"ab' then assert.has_no_error(function() cjson.decode(line) end) end
    end
    assert.is_true(lines >= 6)
  end)

  it("a changed job is a new job", function()
    local path = dir .. "/new.journal"
    local list = jobs(2, "new")
    c:generate_many(list, { journal = path })
    list[2].prompt = "new 2, changed"
    E:clear_requests()
    local videos = c:generate_many(list, { journal = path })
    assert.are.equal(1, creates())
    assert.are.equal("new 2, changed", videos[2].prompt)
  end)

  it("reports a failed job again as recorded, and runs it afresh with retry_failed", function()
    local path = dir .. "/failed.journal"
    local list = { { prompt = "#fail journaled", interval = 0.05 } }
    local videos, errors = c:generate_many(list, { journal = path })
    assert.is_false(videos[1])
    assert.are.equal("failed", errors[1].kind)
    E:clear_requests()
    videos, errors = c:generate_many(list, { journal = path })
    assert.are.same({}, E:requests())
    assert.is_false(videos[1])
    assert.are.equal("failed", errors[1].kind)
    assert.matches("as the journal recorded it", errors[1].message, 1, true)
    videos, errors = c:generate_many(list, { journal = path, retry_failed = true })
    assert.are.equal(1, creates())
    assert.are.equal("failed", errors[1].kind) -- the emulator fails it again
    assert.is_nil(errors[1].message:find("journal", 1, true))
  end)

  it("retries a create whose answer was cut after the video was made, making no second", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer" }
    local videos, errors = c:generate_many({ { prompt = "cut once", interval = 0.05 } })
    assert.is_nil(errors[1], tostring(errors[1]))
    assert.are.equal("cut once", videos[1].prompt)
    assert.are.equal(1, creates())
    assert.are.equal(1, made(c, "cut once"))
  end)

  it("retries a create reset before anything was made", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "reset" }
    local videos, errors = c:generate_many({ { prompt = "reset once", interval = 0.05 } })
    assert.is_nil(errors[1], tostring(errors[1]))
    assert.are.equal("reset once", videos[1].prompt)
    assert.are.equal(2, creates())
    assert.are.equal(1, made(c, "reset once"))
  end)

  it("identical jobs in flight together each get a video of their own", function()
    local list = {}
    for i = 1, 3 do list[i] = { prompt = "twin", output = dir .. "/twin-" .. i .. ".mp4", interval = 0.05 } end
    E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer", times = 3 }
    local videos, errors = c:generate_many(list, { concurrency = 3 })
    local ids = {}
    for i = 1, 3 do
      assert.is_nil(errors[i], tostring(errors[i]))
      ids[videos[i].id] = true
    end
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.are.equal(3, n)
    assert.are.equal(3, made(c, "twin"))
  end)

  it("a twin whose answer was lost waits for its twin's delayed answer before it looks", function()
    local list = {}
    for i = 1, 2 do list[i] = { prompt = "late twin", output = dir .. "/late-twin-" .. i .. ".mp4", interval = 0.05 } end
    -- the first create's video is made and its answer lost; the second's made at once and
    -- answered 1.5 s later: looking at once would adopt the second's video
    E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer" }
    E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 1500 }
    local videos, errors = c:generate_many(list, { concurrency = 2 })
    assert.is_nil(errors[1], tostring(errors[1]))
    assert.is_nil(errors[2], tostring(errors[2]))
    assert.are_not.equal(videos[1].id, videos[2].id)
    assert.are.equal(2, made(c, "late twin"))
  end)

  it("a twin does not send its create while a job of the same prompt is looking", function()
    local list = { { prompt = "racing twin", interval = 0.05 }, { prompt = "in between", interval = 1 },
                   { prompt = "racing twin", interval = 0.05 } }
    -- job 1's answer is lost; its look's listing is computed 2 s late; job 3 (its twin) starts
    -- once job 2 is done, within that time, its video made at once and answered 3 s later
    E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer" }
    E:fault{ method = "POST", path = "^/v1/videos$", action = "delay", delay_ms = 0 }
    E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 3000 }
    E:fault{ method = "GET", path = "^/v1/videos$", action = "delay", delay_ms = 2000 }
    local videos, errors = c:generate_many(list, { concurrency = 2 })
    for i = 1, 3 do assert.is_nil(errors[i], tostring(errors[i])) end
    assert.are_not.equal(videos[1].id, videos[3].id)
    assert.are.equal(2, made(c, "racing twin"))
  end)

  it("checks every output before the first create", function()
    local list = jobs(2, "unwritable")
    list[2].output = dir .. "/no/such/dir/x.mp4"
    assert.has_error(function() c:generate_many(list) end,
      "bad argument #1 to 'generate_many' (jobs[2]: option 'output': cannot write '"
      .. list[2].output .. "': no such directory)")
    assert.are.equal(0, creates())
  end)

  it("refuses a bad journal option by name", function()
    assert.has_error(function() c:generate_many({}, { journal = 5 }) end,
      "bad argument #2 to 'generate_many' (option 'journal' must be a string, got number)")
  end)
end)
