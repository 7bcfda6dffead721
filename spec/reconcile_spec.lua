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

