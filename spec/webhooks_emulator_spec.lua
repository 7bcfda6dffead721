-- The emulator's webhooks through the real stack: the emulator in its own process posts to a
-- LuaSocket receiver in this one, sora's client makes the jobs, sora.webhooks (libcrypto)
-- verifies what the emulator (pure-Lua HMAC) signed.
local socket = require "socket"
local cjson = require "cjson"
local sora = require "sora"
local emulator = require "support.emulator"

local API_KEY = "sk-webhooks"
local SECRET = "whsec_" .. require("sora.core").webhooks.base64_encode("emulator webhook secret, 32 B!!")

-- A receiver on a free port of 127.0.0.1: next(status) accepts one POST, answers it with
-- status (or holds the connection open with `false`) and returns the request.
local function receiver()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local R = { url = "http://127.0.0.1:" .. port .. "/hooks?source=sora", held = {} }
  function R:next(status, timeout)
    server:settimeout(timeout or 10)
    local conn = server:accept()
    if not conn then return nil end
    conn:settimeout(5)
    local req = { headers = {} }
    req.method, req.target = assert(conn:receive("*l")):match("^(%S+) (%S+) HTTP/1%.1$")
    while true do
      local line = assert(conn:receive("*l"))
      if line == "" then break end
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      req.headers[name] = value
    end
    req.body = assert(conn:receive(tonumber(req.headers["content-length"])))
    if status == false then
      self.held[#self.held + 1] = conn
    else
      conn:send(string.format("HTTP/1.1 %d Whatever\r\ncontent-length: 2\r\n\r\nok", status or 200))
      conn:close()
    end
    return req
  end
  function R:close()
    for _, conn in ipairs(self.held) do conn:close() end
    server:close()
  end
  return R
end

local function start(opts)
  opts.api_key = API_KEY
  local E = emulator.start(opts)
  -- a short timeout: an emulator held up by a webhook fails the spec instead of hanging it
  return E, sora.new{ api_key = API_KEY, base_url = E.url, max_retries = 0, timeout = 5 }
end

-- The request is a signed event of `kind` about video `id`.
local function assert_event(req, kind, id)
  assert.are.equal("POST", req.method)
  assert.are.equal("/hooks?source=sora", req.target)
  assert.are.equal("application/json", req.headers["content-type"])
  assert.matches("^wh_%x+$", req.headers["webhook-id"])
  local event = assert(sora.webhooks.verify(req.body, req.headers, SECRET, { tolerance = 5 }))
  assert.matches("^evt_%x+$", event.id)
  assert.are.equal("event", event.object)
  assert.are.equal(kind, event.type)
  assert.are.same({ id = id }, event.data)
  assert.is_true(math.abs(event.created_at - os.time()) <= 5)
  return event
end

-- The emulator's log of attempts (GET /__emulator/webhooks) once it holds n of them: an
-- attempt is logged when its answer has been read, a moment after the receiver sent it.
local function attempts(E, n)
  local deadline, log = socket.gettime() + 10
  repeat
    log = E:control("GET", "/webhooks")
    if #log >= n then return log end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return log
end

describe("emulator webhooks", function()
  local E, client, R

  after_each(function()
    if E then E:stop() end
    if client then client:close() end
    if R then R:close() end
    E, client, R = nil, nil, nil
  end)

  it("posts a signed video.completed when a job completes, video.failed when one fails", function()
    R = receiver()
    E, client = start{ job_seconds = 0.3, webhook_url = R.url, webhook_secret = SECRET }
    local done = assert(client:create{ prompt = "a paper boat" })
    local failing = assert(client:create{ prompt = "a storm #fail" })
    -- the failing job settles first (halfway), then the other
    assert_event(assert(R:next()), "video.failed", failing.id)
    local event = assert_event(assert(R:next()), "video.completed", done.id)
    assert.are.equal("completed", assert(client:retrieve(done.id)).status)
    local log = attempts(E, 2)
    assert.are.equal(2, #log)
    assert.are.equal(event.id, log[2].event_id)
    assert.are.same({ "video.failed", 200, 1 }, { log[1].type, log[1].status, log[1].attempt })
  end)

  it("retries a non-2xx answer with the same webhook-id, each attempt signed anew", function()
    R = receiver()
    E, client = start{ job_seconds = 0.2, webhook_url = R.url, webhook_secret = SECRET }
    local video = assert(client:create{ prompt = "a paper boat" })
    local first = assert(R:next(500))
    local second = assert(R:next(404))
    local third = assert(R:next(204))
    for _, req in ipairs{ first, second, third } do assert_event(req, "video.completed", video.id) end
    assert.are.equal(first.headers["webhook-id"], third.headers["webhook-id"])
    assert.are.equal(first.body, third.body)
    assert.is_nil(R:next(200, 0.8)) -- delivered: no fourth attempt
    local log = attempts(E, 3)
    assert.are.same({ 500, 404, 204 }, { log[1].status, log[2].status, log[3].status })
    assert.are.same({ 1, 2, 3 }, { log[1].attempt, log[2].attempt, log[3].attempt })
  end)

  it("gives up after four attempts at a receiver that is not there", function()
    local closed = assert(socket.bind("127.0.0.1", 0))
    local _, port = closed:getsockname()
    closed:close()
    E, client = start{ job_seconds = 0.1, webhook_url = "http://127.0.0.1:" .. port .. "/",
                       webhook_secret = SECRET }
    assert(client:create{ prompt = "a paper boat" })
    attempts(E, 4)
    socket.sleep(0.5) -- no fifth
    local log = E:control("GET", "/webhooks")
    assert.are.equal(4, #log)
    for i, attempt in ipairs(log) do
      assert.are.equal(i, attempt.attempt)
      assert.are.equal(cjson.null, attempt.status)
      assert.matches("refused", attempt.error)
    end
  end)

  it("keeps serving the API while a receiver holds its webhook unanswered", function()
    R = receiver()
    E, client = start{ job_seconds = 0.1, webhook_url = R.url, webhook_secret = SECRET }
    local video = assert(client:create{ prompt = "a paper boat" })
    assert(R:next(false)) -- read, never answered
    local fresh = assert(client:retrieve(video.id))
    assert.are.equal("completed", fresh.status)
    local another = assert(client:create{ prompt = "another boat" })
    assert.is_table(client:list_page{ limit = 5 })
    assert_event(assert(R:next()), "video.completed", another.id)
  end)

  it("sends the event of a video forced to a final status at once", function()
    R = receiver()
    E, client = start{ job_seconds = 600, webhook_url = R.url, webhook_secret = SECRET }
    local video = assert(client:create{ prompt = "a paper boat" })
    E:force_video(video.id, { status = "in_progress" })
    E:force_video(video.id, { status = "failed" })
    assert_event(assert(R:next()), "video.failed", video.id)
    E:force_video(video.id, { status = "completed" }) -- one event per video
    assert.is_nil(R:next(200, 0.3))
  end)

  it("sends nothing unless configured; the control API turns webhooks on and off", function()
    R = receiver()
    E, client = start{ job_seconds = 0.2 }
    local early = assert(client:create{ prompt = "a paper boat" })
    assert(early:wait{ timeout = 10 })
    assert.are.same({}, E:control("GET", "/webhooks"))
    assert.is_nil(R:next(200, 0.1))
    -- on: videos already running are watched too (those settled before are not)
    E:config{ job_seconds = 1.5 }
    local running = assert(client:create{ prompt = "a long boat" })
    E:config{ webhook_url = R.url, webhook_secret = SECRET }
    assert_event(assert(R:next()), "video.completed", running.id)
    assert.are.equal(1, #attempts(E, 1))
    E:config{ webhook_url = cjson.null }
    assert(assert(client:create{ prompt = "a third boat" }):wait{ timeout = 10 })
    assert.is_nil(R:next(200, 0.3))
    assert.are.equal(cjson.null, E:control("GET", "/config").webhook_url)
  end)

  it("refuses a webhook configuration that cannot work", function()
    E, client = start{ job_seconds = 0.2 }
    local function refused(fields, pattern)
      local ok, err = pcall(E.config, E, fields)
      assert.is_false(ok)
      assert.matches("400", err)
      assert.matches(pattern, err)
    end
    refused({ webhook_url = "https://example.com/hook", webhook_secret = SECRET }, "http:// URL")
    refused({ webhook_url = "http://127.0.0.1:9/hook" }, "needs a webhook_secret")
    refused({ webhook_url = "http://127.0.0.1:9/hook", webhook_secret = "whsec_%%%" }, "base64")
    refused({ webhook_url = "http://127.0.0.1:99999/", webhook_secret = SECRET }, "port")
    refused({ webhook_url = "http://127.0.0.1:8000.0/hook", webhook_secret = SECRET }, "http:// URL")
    refused({ webhook_url = "http://user@host/hook", webhook_secret = SECRET }, "http:// URL")
  end)

  it("drives examples/webhook_receiver.lua: it downloads the video when video.completed arrives", function()
    local H = require "support.client"
    local sha256 = require "sora.emulator.sha256"
    E, client = start{ job_seconds = 0.3 }
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local lua, cpath = H.interpreter()
    local out, pidfile = os.tmpname(), os.tmpname()
    os.execute(string.format("env LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s;;' "
      .. "OPENAI_API_KEY=%s OPENAI_BASE_URL=%s OPENAI_WEBHOOK_SECRET=%s %s "
      .. "examples/webhook_receiver.lua 0 %s >%s 2>&1 </dev/null & echo $! >%s",
      cpath, API_KEY, E.url, SECRET, lua, dir, out, pidfile))
    local pid = io.open(pidfile):read("*a"):match("%d+")
    os.remove(pidfile)
    local function output(pattern)
      local deadline = socket.gettime() + 10
      repeat
        local text = io.open(out):read("*a")
        if text:match(pattern) then return text end
        socket.sleep(0.05)
      until socket.gettime() > deadline
      return io.open(out):read("*a")
    end
    local ok, err = pcall(function()
      local port = assert(output("listening on"):match("127%.0%.0%.1:(%d+)/webhooks"))
      E:config{ webhook_url = "http://127.0.0.1:" .. port .. "/webhooks", webhook_secret = SECRET }
      local video = assert(client:create{ prompt = "a paper boat" })
      local failed = assert(client:create{ prompt = "a storm #fail" })
      local path = dir .. "/" .. video.id .. ".mp4"
      assert.matches("saved " .. path:gsub("%p", "%%%0"), output("saved "))
      assert.matches("video " .. failed.id .. " failed: moderation_blocked", output("failed: "))
      local bytes = io.open(path, "rb"):read("*a")
      assert.are.equal(E:digest(video.id).sha256, sha256.hex(bytes))
    end)
    os.execute("kill " .. pid)
    os.execute("rm -rf " .. dir)
    os.remove(out)
    assert(ok, err)
  end)

  it("takes --webhook-url and --webhook-secret on the command line, and checks them", function()
    local lua = os.getenv("SORA_EMULATOR_LUA") or "lua5.4"
    local out = os.tmpname()
    local status = os.execute(lua .. " bin/sora-emulator --port 0 --webhook-url ftp://x/ "
      .. "--webhook-secret " .. SECRET .. " 2>" .. out)
    local message = io.open(out):read("*a")
    os.remove(out)
    assert.is_true(status == 2 * 256 or status == false or status == nil)
    assert.matches("sora%-emulator: webhook_url must be an http:// URL", message)
    local help = io.popen(lua .. " bin/sora-emulator --help"):read("*a")
    assert.matches("%-%-webhook%-url URL", help)
    assert.matches("%-%-webhook%-secret", help)
  end)
end)
