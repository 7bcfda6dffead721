-- Never pay twice (issue 17, items 1 and 2): an Idempotency-Key on every create-type POST, the
-- same on every attempt of a call; a create whose answer was lost is looked for (listed and
-- adopted) before it is sent again. Through the real stack: the module, libcurl, the emulator.
local sora = require "sora"
local reconcile = require "sora.reconcile"
local H = require "support.client"

-- The key a recorded request carried, without the sf-string's quotes.
local function key_of(request)
  local value = request.headers["idempotency-key"]
  return value and value:match('^"(.*)"$')
end

local function posts(E, pattern)
  return H.matching(E, "POST", pattern or "^/v1/videos")
end

describe("reconcile.new_key", function()
  it("is 32 lower-case hex digits, fresh each time", function()
    local seen = {}
    for _ = 1, 200 do
      local key = reconcile.new_key()
      assert.is_truthy(key:match("^%x+$") and key == key:lower() and #key == 32, key)
      assert.is_nil(seen[key])
      seen[key] = true
    end
  end)
end)

describe("reconcile.parse_date", function()
  it("reads an IMF-fixdate as Unix seconds, in UTC", function()
    assert.are.equal(784111777, reconcile.parse_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.are.equal(0, reconcile.parse_date("Thu, 01 Jan 1970 00:00:00 GMT"))
    assert.are.equal(951782400, reconcile.parse_date("Tue, 29 Feb 2000 00:00:00 GMT"))
    assert.is_nil(reconcile.parse_date("yesterday"))
    assert.is_nil(reconcile.parse_date(nil))
  end)
end)

describe("idempotency keys", function()
  local E, c, source

  lazy_setup(function()
    E, c = H.start()
    source = H.completed_video(c, E, { prompt = "a source" })
  end)

  lazy_teardown(function() H.stop(E, c) end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  it("go on every create-type POST, one per call, never on GETs", function()
    assert(c:create{ prompt = "one" })
    assert(c:create{ prompt = "one" })
    assert(c:remix(source.id, { prompt = "remixed" }))
    assert(c:edit{ video = source.id, prompt = "edited" })
    assert(c:extend{ video = source.id, prompt = "extended", seconds = "4" })
    assert(c:create_character{ video = H.MEDIA .. "video.mp4", name = "Ada" })
    assert(c:retrieve(source.id))
    local keys = {}
    for _, r in ipairs(posts(E)) do
      local key = key_of(r)
      assert.is_truthy(key and #key == 32, r.path)
      assert.is_nil(keys[key], "a key used twice")
      keys[key] = true
    end
    assert.are.equal(6, #posts(E))
    for _, r in ipairs(H.matching(E, "GET")) do assert.is_nil(r.headers["idempotency-key"]) end
  end)

  it("are the call's own when given, and checked", function()
    assert(c:create{ prompt = "mine", idempotency_key = "job-17:attempt" })
    assert.are.equal("job-17:attempt", key_of(posts(E)[1]))
    for _, bad in ipairs({ "", "has \"quote\"", "line\nbreak", ("k"):rep(256) }) do
      local ok, err = pcall(c.create, c, { prompt = "x", idempotency_key = bad })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'create' %(field 'idempotency_key'", err)
    end
    local ok, err = pcall(c.create, c, { prompt = "x", idempotency_key = 17 })
    assert.is_false(ok)
    assert.matches("field 'idempotency_key' must be a string", err)
    assert.are.equal(1, #posts(E))
  end)

  it("stay the same on every retry of a call", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "respond", status = 500, times = 1 }
    E:fault{ method = "POST", path = "^/v1/videos$", action = "respond", status = 429, times = 1,
             headers = { ["retry-after-ms"] = "10" } }
    assert(c:create{ prompt = "retried" })
    local list = posts(E)
    assert.are.equal(3, #list)
    assert.are.equal(key_of(list[1]), key_of(list[2]))
    assert.are.equal(key_of(list[1]), key_of(list[3]))
  end)
end)

describe("a create whose answer is lost", function()
  local E, c

  lazy_setup(function() E, c = H.start() end)
  lazy_teardown(function() H.stop(E, c) end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  it("is looked for, then sent again with the same key when nothing was made", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "reset", times = 1 }
    local v, err = c:create{ prompt = "reset before anything was made" }
    assert.is_nil(err)
    local list = posts(E)
    assert.are.equal(2, #list)
    assert.are.equal(key_of(list[1]), key_of(list[2]))
    local looks = H.matching(E, "GET", "^/v1/videos$")
    assert.are.equal(2, #looks) -- one look, and one more after the pause
    assert.are.equal("desc", looks[1].query.order)
    assert.are.equal("reset before anything was made", v.prompt)
  end)

  it("with reconcile = false is sent again without looking", function()
    local blind = sora.new{ api_key = H.KEY, base_url = E.url, reconcile = false }
    E:fault{ method = "POST", path = "^/v1/videos$", action = "reset", times = 1 }
    assert(blind:create{ prompt = "blind" })
    assert.are.equal(2, #posts(E))
    assert.are.equal(0, #H.matching(E, "GET", "^/v1/videos$"))
    E:clear_requests()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "reset", times = 1 }
    assert(c:create{ prompt = "blind per call", reconcile = false })
    assert.are.equal(0, #H.matching(E, "GET", "^/v1/videos$"))
    blind:close()
  end)

  it("refuses a reconcile option that is not a boolean", function()
    assert.has_error(function() sora.new{ api_key = H.KEY, base_url = E.url, reconcile = "no" } end,
      "bad argument #1 to 'new' (option 'reconcile' must be a boolean, got string)")
    local ok, err = pcall(c.create, c, { prompt = "x", reconcile = 1 })
    assert.is_false(ok)
    assert.matches("field 'reconcile' must be a boolean", err)
  end)
end)

describe("reconcile.find", function()
  local E, c

  lazy_setup(function() E, c = H.start() end)
  lazy_teardown(function() H.stop(E, c) end)

  it("adopts the newest matching video not yet claimed, once", function()
    local since = os.time()
    local made = {}
    for i = 1, 3 do
      local v = assert(c:create{ prompt = "twin", model = "sora-2-pro", seconds = "8" })
      made[i] = v.id
    end
    -- what create returned is claimed already: nothing is left to adopt
    local found, resp = reconcile.find(c, "create", { prompt = "twin" }, since)
    assert.is_false(found)
    assert.is_table(resp)
    -- a client that never saw them adopts each once, newest first
    local other = sora.new{ api_key = H.KEY, base_url = E.url }
    for i = 3, 1, -1 do
      found = assert(reconcile.find(other, "create", { prompt = "twin", seconds = 8 }, since))
      assert.are.equal(made[i], found.id)
    end
    assert.is_false(reconcile.find(other, "create", { prompt = "twin" }, since))
    other:close()
  end)

  it("matches what was sent; what was not sent matches anything", function()
    local since = os.time()
    local v = assert(c:create{ prompt = "shape", size = "1280x720" })
    local fresh = sora.new{ api_key = H.KEY, base_url = E.url }
    assert.is_false(reconcile.find(fresh, "create", { prompt = "shape", size = "720x1280" }, since))
    assert.is_false(reconcile.find(fresh, "create", { prompt = "shape", model = "sora-2-pro" }, since))
    assert.is_false(reconcile.find(fresh, "create", { prompt = "other" }, since))
    local found = assert(reconcile.find(fresh, "create", { prompt = "shape", size = "1280x720" }, since))
    assert.are.equal(v.id, found.id)
    fresh:close()
  end)

  it("passes over videos made before the first send", function()
    local v = assert(c:create{ prompt = "old" })
    local fresh = sora.new{ api_key = H.KEY, base_url = E.url }
    assert.is_false(reconcile.find(fresh, "create", { prompt = "old" }, os.time() + 60))
    reconcile.claim(fresh, v.id)
    assert.is_false(reconcile.find(fresh, "create", { prompt = "old" }, os.time() - 60))
    fresh:close()
  end)

  it("returns nil, err when the listing fails", function()
    local fresh = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 400 }
    local found, err = reconcile.find(fresh, "create", { prompt = "x" }, os.time())
    assert.is_nil(found)
    assert.are.equal("bad_request", err.kind)
    fresh:close()
  end)
end)


-- The same promises against a server that honours Idempotency-Key (the emulator's default, as
-- a gateway implementing the IETF draft) and one that ignores it (OpenAI's API).
for _, honours in ipairs({ true, false }) do
  describe("a lost create answer, against a server that " .. (honours and "honours" or "ignores")
           .. " Idempotency-Key", function()
    local E, c

    lazy_setup(function()
      E, c = H.start()
      E:config{ idempotency = honours }
    end)
    lazy_teardown(function() H.stop(E, c) end)

    before_each(function()
      E:clear_faults()
      E:clear_requests()
    end)

    -- The emulator's count of what the create-type POSTs with this prompt made.
    local function made(prompt)
      local n, ids = 0, {}
      for _, entry in ipairs(E:creates()) do
        if entry.prompt == prompt then
          n = n + entry.made
          for _, id in ipairs(entry.ids) do ids[#ids + 1] = id end
        end
      end
      return n, ids
    end

    local function lose_next_answer(times, path)
      E:fault{ method = "POST", path = path or "^/v1/videos$", action = "lose_answer", times = times or 1 }
    end

    it("cut after the video was made: exactly one video, adopted, nothing sent again", function()
      lose_next_answer()
      local v, err = c:create{ prompt = "cut after made", seconds = "8" }
      assert.is_nil(err)
      local n, ids = made("cut after made")
      assert.are.equal(1, n)
      assert.are.equal(ids[1], v.id)
      assert.are.equal(1, #posts(E))
    end)

    it("cut with no retries left: adopted all the same", function()
      lose_next_answer()
      local v, err = c:create{ prompt = "no retries", max_retries = 0 }
      assert.is_nil(err)
      local n, ids = made("no retries")
      assert.are.equal(1, n)
      assert.are.equal(ids[1], v.id)
    end)

    it("reset before anything was made: sent again, one video", function()
      E:fault{ method = "POST", path = "^/v1/videos$", action = "reset", times = 1 }
      local v = assert(c:create{ prompt = "reset first" })
      local n, ids = made("reset first")
      assert.are.equal(1, n)
      assert.are.equal(ids[1], v.id)
      assert.are.equal(2, #posts(E))
    end)

    it("two identical creates in flight on one client never adopt the same video", function()
      lose_next_answer(2)
      local got = {}
      for i = 1, 2 do
        c:spawn(function()
          got[i] = assert(c:create{ prompt = "identical twins" })
        end)
      end
      c:run()
      assert.are_not.equal(got[1].id, got[2].id)
      local n, ids = made("identical twins")
      assert.are.equal(2, n)
      table.sort(ids)
      local returned = { got[1].id, got[2].id }
      table.sort(returned)
      assert.are.same(ids, returned)
    end)

    it("one lost, its twin's answer still on its way: each gets its own video", function()
      -- the first create's video is made and its answer lost; the second's is made at once and
      -- answered late: a look in between sees both videos, and the newest is the twin's
      E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer" }
      E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 1500 }
      local got = {}
      for i = 1, 2 do
        c:spawn(function()
          got[i] = assert(c:create{ prompt = "twin on its way" })
        end)
        c:step(0.2) -- the first is sent (and lost) before the second
      end
      c:run()
      assert.are_not.equal(got[1].id, got[2].id)
      local n = made("twin on its way")
      assert.are.equal(2, n)
    end)

    it("a twin sent while the lost one looks: the look is done again once it is answered", function()
      E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer" }
      E:fault{ method = "GET", path = "^/v1/videos$", action = "delay", delay_ms = 1000 }
      E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 1500 }
      local got = {}
      c:spawn(function() got[1] = assert(c:create{ prompt = "twin during the look" }) end)
      local until_time = sora.now() + 0.3
      while sora.now() < until_time do c:step(0.05) end -- lost, and its look held by the server
      c:spawn(function() got[2] = assert(c:create{ prompt = "twin during the look" }) end)
      c:run()
      assert.are_not.equal(got[1].id, got[2].id)
      assert.are.equal(2, (made("twin during the look")))
    end)

    it("with_response gives the listing's response, reconciled = true", function()
      lose_next_answer()
      local v, resp = c:create{ prompt = "with response", with_response = true }
      assert.is_true(resp.reconciled)
      assert.are.equal(200, resp.status)
      assert.is_string(resp.headers.date)
      local _, ids = made("with response")
      assert.are.equal(ids[1], v.id)
      -- an answer that was not lost is the create's own
      local _, own = c:create{ prompt = "with response, plain", with_response = true }
      assert.is_nil(own.reconciled)
    end)

    it("remix, edit and extend are looked for too", function()
      local source = H.completed_video(c, E, { prompt = "a source for " .. tostring(honours) })
      lose_next_answer(1, "/remix$")
      local remixed = assert(c:remix(source.id, { prompt = "remix lost" }))
      assert.are.equal(source.id, remixed.remixed_from_video_id)
      lose_next_answer(1, "^/v1/videos/edits$")
      local edited = assert(c:edit{ video = source.id, prompt = "edit lost" })
      lose_next_answer(1, "^/v1/videos/extensions$")
      local extended = assert(c:extend{ video = source.id, prompt = "extend lost", seconds = "4" })
      for prompt, v in pairs({ ["remix lost"] = remixed, ["edit lost"] = edited,
                               ["extend lost"] = extended }) do
        local n, ids = made(prompt)
        assert.are.equal(1, n, prompt)
        assert.are.equal(ids[1], v.id, prompt)
      end
    end)

    it("reconcile = false sends again blindly: one video only if the server honours the key", function()
      lose_next_answer()
      local v, err = c:create{ prompt = "blind resend", reconcile = false }
      assert.is_nil(err)
      local n, ids = made("blind resend")
      assert.are.equal(honours and 1 or 2, n)
      assert.are.equal(ids[#ids], v.id)
      assert.are.equal(0, #H.matching(E, "GET", "^/v1/videos$"))
    end)

    it("a late answer past the timeout: the video is found, not made again", function()
      E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 1500 }
      local v, err = c:create{ prompt = "late answer", timeout = 0.5 }
      assert.is_nil(err)
      local n, ids = made("late answer")
      assert.are.equal(1, n)
      assert.are.equal(ids[1], v.id)
    end)

    it("a 5xx without an API error body is looked for; one with it is retried at once", function()
      E:fault{ method = "POST", path = "^/v1/videos$", action = "html", status = 502 }
      assert(c:create{ prompt = "gateway page" })
      assert.are.equal(2, #H.matching(E, "GET", "^/v1/videos$"))
      E:clear_requests()
      E:fault{ method = "POST", path = "^/v1/videos$", action = "respond", status = 503 }
      assert(c:create{ prompt = "api error" })
      assert.are.equal(0, #H.matching(E, "GET", "^/v1/videos$"))
      assert.are.equal(1, (made("gateway page")))
      assert.are.equal(1, (made("api error")))
    end)

    it("a look that fails sends nothing again: the error says the create may have been made", function()
      lose_next_answer()
      E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 400 }
      local v, err = c:create{ prompt = "look fails" }
      assert.is_nil(v)
      assert.is_true(err.maybe_sent)
      assert.are.equal("connection", err.kind)
      assert.are.equal("bad_request", err.reconcile_error.kind)
      assert.are.equal(1, #posts(E))
    end)

    it("a listing garbled on the way is asked again: the look goes on", function()
      lose_next_answer()
      E:fault{ method = "GET", path = "^/v1/videos$", action = "malformed_json" }
      local v, err = c:create{ prompt = "garbled listing" }
      assert.is_nil(err)
      local n, ids = made("garbled listing")
      assert.are.equal(1, n)
      assert.are.equal(ids[1], v.id)
    end)

    it("a look stays within the call's deadline", function()
      lose_next_answer()
      E:fault{ method = "GET", path = "^/v1/videos$", action = "delay", delay_ms = 5000 }
      local v, err = c:create{ prompt = "deadline", deadline = 1.5 }
      assert.is_nil(v)
      assert.is_true(err.maybe_sent)
      assert.are.equal("timeout", err.reconcile_error.kind)
      assert.are.equal(1, #posts(E))
    end)

    if honours then
      it("the same key and body answer the first answer again; another body gets 422", function()
        local key = reconcile.new_key()
        local first = assert(c:create{ prompt = "keyed", idempotency_key = key })
        local again, resp = c:create{ prompt = "keyed", idempotency_key = key, with_response = true }
        assert.are.equal(first.id, again.id)
        assert.are.equal("true", resp.headers["idempotent-replayed"])
        assert.are.equal(1, (made("keyed")))
        local other, err = c:create{ prompt = "keyed, changed", idempotency_key = key }
        assert.is_nil(other)
        assert.are.equal("unprocessable_entity", err.kind)
        assert.are.equal(422, err.status)
        assert.are.equal(0, (made("keyed, changed")))
      end)
    else
      it("the same key makes a video each time", function()
        local key = reconcile.new_key()
        local first = assert(c:create{ prompt = "keyed, ignored", idempotency_key = key })
        local again = assert(c:create{ prompt = "keyed, ignored", idempotency_key = key })
        assert.are_not.equal(first.id, again.id)
        assert.are.equal(2, (made("keyed, ignored")))
      end)
    end
  end)
end

describe("a create attempt", function()
  local rawserver = require "support.rawserver"

  -- A server that keeps connections alive for GETs, and reads a POST then drops its
  -- connection without a word, as a server that dies under the request would.
  local S
  lazy_setup(function()
    S = rawserver.start[[
      local video = '{"id":"video_1","object":"video","status":"queued","prompt":"p","created_at":1}'
      return function(req)
        if req.method == "POST" then return nil, false end
        return head("200 OK", { "Content-Type: application/json", "Content-Length: " .. #video })
          .. video, true
      end
    ]]
  end)
  lazy_teardown(function() if S then S:stop() end end)

  it("is one attempt on a fresh connection: libcurl never resends it on a reused one", function()
    local c = sora.new{ api_key = H.KEY, base_url = S.url, max_retries = 0, reconcile = false }
    assert(c:retrieve("video_1")) -- leaves a connection alive in the pool
    local v, err = c:create{ prompt = "once" }
    assert.is_nil(v)
    assert.is_true(err.maybe_sent)
    local list, creates = S:requests(), {}
    for _, r in ipairs(list) do
      if r.method == "POST" then creates[#creates + 1] = r end
    end
    assert.are.equal(1, #creates)         -- reusing the GET's connection, libcurl sent it twice
    assert.are.equal(2, creates[1].connection)
    c:close()
  end)

  it("that cannot connect was not sent: retried at once, never looked for", function()
    local socket = require "socket"
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close() -- nothing listens there now
    local c = sora.new{ api_key = H.KEY, base_url = "http://127.0.0.1:" .. port .. "/v1",
                        max_retries = 1 }
    local v, err = c:create{ prompt = "nowhere" }
    assert.is_nil(v)
    assert.are.equal("COULDNT_CONNECT", err.curl_code)
    assert.is_nil(err.maybe_sent)
    assert.are.equal(2, err.attempts)
    c:close()
  end)
end)

-- Checked apart from the emulator: a fake server of its own that ignores Idempotency-Key,
-- makes each video it is sent, and loses or delays the answer of the first create; its clock
-- runs `offset` seconds off ours, and its Date header says so.
describe("against a separate fake server", function()
  local rawserver = require "support.rawserver"

  local function fake(offset, first_answer)
    return rawserver.start(([[
      local cjson = require "cjson"
      local socket = require "socket"
      local OFFSET, FIRST = %d, %q
      local videos = {}
      local function clock() return os.time() + OFFSET end
      local function answer(status, value)
        local body = cjson.encode(value)
        return head(status, { "Content-Type: application/json", "Content-Length: " .. #body,
          "Date: " .. os.date("!%%a, %%d %%b %%Y %%H:%%M:%%S GMT", clock()) }) .. body, true
      end
      return function(req)
        if req.method == "POST" then
          local p = cjson.decode(req.body)
          local v = { id = "video_" .. (#videos + 1), object = "video", status = "queued",
            progress = 0, prompt = p.prompt, model = p.model or "sora-2",
            size = p.size or "720x1280", seconds = p.seconds or "4", created_at = clock() }
          videos[#videos + 1] = v
          if #videos == 1 and FIRST == "lose" then return nil, false end
          if #videos == 1 and FIRST == "delay" then socket.sleep(1.5) end
          return answer("200 OK", v)
        end
        local data = {}
        for i = #videos, 1, -1 do data[#data + 1] = videos[i] end
        return answer("200 OK", { object = "list", data = data, has_more = false,
          first_id = data[1] and data[1].id, last_id = data[#data] and data[#data].id })
      end
    ]]):format(offset, first_answer))
  end

  local function creates(S)
    local n = 0
    for _, r in ipairs(S:requests()) do
      if r.method == "POST" then n = n + 1 end
    end
    return n
  end

  for _, case in ipairs({ { 0, "lose" }, { -40, "lose" }, { 40, "lose" }, { 0, "delay" } }) do
    local offset, first = case[1], case[2]
    it(("adopts the video whose answer it %s, the server's clock %+d s off"):format(
        first == "lose" and "lost" or "waited too long for", offset), function()
      local S = fake(offset, first)
      local c = sora.new{ api_key = H.KEY, base_url = S.url }
      local v, err = c:create{ prompt = "apart", seconds = 8, timeout = first == "delay" and 0.5 or nil }
      c:close()
      local made = creates(S)
      S:stop()
      assert.is_nil(err)
      assert.are.equal("video_1", v.id)
      assert.are.equal(1, made)
    end)
  end
end)
