-- Issue 7 (the edges issue), tried from outside: one `it` per bullet, named after it, each
-- driving the public API (require "sora") against the emulator or a raw-socket server, as a
-- tester who has only the issue and the README would. The other specs prove each fix from
-- the inside; these are the outsider's probes, kept in the suite.
local socket = require "socket"
local cjson = require "cjson"
local sora = require "sora"
local H = require "support.client"
local rawserver = require "support.rawserver"

local KEY = H.KEY

local function now() return socket.gettime() end

-- Descriptors this process holds now, pipes left out (the `ls` that lists them is started
-- through a pipe, whose ends come and go). /proc/self would name that `ls`, so the pid is
-- read from our own /proc/self/stat.
local function open_fds()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("*l"):match("^%d+")
  f:close()
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd"))
  local n = 0
  for line in p:lines() do
    if line:find(" -> ", 1, true) and not line:find("pipe:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

-- Steps `client` until done() or `limit` seconds pass.
local function drive(client, done, limit)
  local stop = now() + (limit or 5)
  while not done() and now() < stop do
    client:step(0.01)
  end
  return done()
end

-- pcall(fn) and the message of what it raised, as a string.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(type(err) == "table" and (err.message or err) or err)
end

-- A raw server running `script` (see spec/support/rawserver.lua). Its answers say
-- "Connection: close", as it closes after each: libcurl then never sends a request on a
-- connection that the server is closing (a reset that would be the probe's own fault).
local function raw(script)
  return rawserver.start([[
    local plain_head = head
    function head(status, headers)
      headers = headers or {}
      headers[#headers + 1] = "Connection: close"
      return plain_head(status, headers)
    end
  ]] .. script)
end

describe("issue 7, independently", function()
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
    E:clear_faults()
    E:clear_requests()
  end)

  ------------------------------------------------------------------------------------------
  -- Rule 1
  it("rule 1: a client dropped with a transfer in flight is collected; descriptors return", function()
    local video = H.completed_video(c, E) -- c keeps its connection: part of the baseline
    collectgarbage(); collectgarbage()
    local baseline = open_fds()
    E:fault{ action = "stall", path = "^/v1/videos/video_stall", times = 40 }
    -- held while the transfers start (so that the precondition holds even when the collector
    -- runs all the time), then dropped; `seen` only watches them go
    local held, seen = {}, setmetatable({}, { __mode = "v" }) -- luacheck: ignore 241 (held only to keep them alive)
    for i = 1, 20 do
      local client = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
      client:spawn(function() return client:retrieve("video_stall") end)
      for _ = 1, 5 do client:step(0.01) end
      held[i], seen[i] = client, client
    end
    -- a download to a path cut off mid-body, by a client whose log function refers to it
    E:config{ video_bytes = 8 * 1024 * 1024 }
    E:fault{ action = "stall", path = "/content$", times = 5 }
    local target = dir .. "/dropped.mp4"
    for i = 21, 23 do
      local client
      client = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0,
        log = function() return client end }
      client:spawn(function() return client:download_content(video.id, { path = target }) end)
      for _ = 1, 5 do client:step(0.01) end
      held[i], seen[i] = client, client
    end
    assert.is_true(open_fds() >= baseline + 20, "the probe opened too few connections")
    held = nil
    collectgarbage(); collectgarbage(); collectgarbage()
    E:config{ video_bytes = cjson.null }
    assert.is_nil(next(seen), "a dropped client was not collected")
    assert.are.equal(baseline, open_fds())
    assert.is_false(H.exists(target))
  end)

  it("rule 1: cancelling a task cancels the tasks it spawned; nothing sent after cancel()", function()
    local jobs = {}
    for i = 1, 6 do jobs[i] = { prompt = "cancel me " .. i, output = dir .. "/c" .. i .. ".mp4" } end
    local task = c:spawn(function() return c:generate_many(jobs, { concurrency = 3 }) end)
    assert.is_true(drive(c, function() return #H.matching(E, "POST", "^/v1/videos$") >= 1 end, 10))
    task:cancel()
    socket.sleep(0.2)
    local sent = #E:requests()
    drive(c, function() return false end, 1.5)
    assert.are.equal(sent, #E:requests())
    assert.is_true(task:done())
    assert.are.equal("aborted", select(2, task:result()).kind)
    assert.are.equal(0, c:step(0))
    -- a task cancelled in the middle of generate's download leaves no file behind
    local video = H.completed_video(c, E)
    E:config{ video_bytes = 64 * 1024 * 1024 }
    local target = dir .. "/cancelled.mp4"
    local got = 0
    task = c:spawn(function()
      return c:download_content(video.id, { path = target, on_progress = function(n) got = n end })
    end)
    assert.is_true(drive(c, function() return got > 0 end, 10))
    task:cancel()
    E:config{ video_bytes = cjson.null }
    assert.are.equal("aborted", select(2, task:result()).kind)
    for _, name in ipairs(H.ls(dir)) do
      assert.is_nil(name:find("cancelled.mp4", 1, true), name)
    end
  end)

  ------------------------------------------------------------------------------------------
  -- Rule 2
  it("rule 2: close() inside a sink raises and changes nothing; step works after", function()
    local video = H.completed_video(c, E)
    local close_err
    local ok, err = c:download_content(video.id, { sink = function()
      local ok2, e = pcall(c.close, c)
      assert(not ok2)
      close_err = close_err or tostring(e)
    end })
    assert.is_truthy(ok, tostring(err))
    assert.matches("close", close_err)
    assert.matches("callback", close_err)
    assert.are.equal(0, c:step(0))
    local t = c:spawn(function() return c:retrieve(video.id) end)
    c:run()
    assert.are.equal(video.id, t:result().id)
    -- the same from on_progress, and from a log function, inside a task
    local lc
    local refused = {}
    lc = sora.new{ api_key = KEY, base_url = E.url, log = function()
      if not refused.log then refused.log = select(2, pcall(lc.close, lc)) or "closed!" end
    end }
    local task = lc:spawn(function()
      return lc:download_content(video.id, { on_progress = function()
        if not refused.progress then refused.progress = select(2, pcall(lc.close, lc)) or "closed!" end
      end })
    end)
    lc:run()
    assert.are.equal(H.media("video.mp4"), (task:result()))
    assert.matches("from inside a callback", tostring(refused.log), 1, true)
    assert.matches("from inside a callback", tostring(refused.progress), 1, true)
    task = lc:spawn(function() return lc:retrieve(video.id) end)
    lc:run()
    assert.are.equal(video.id, task:result().id)
    -- cancelling a running task from a sink of its own transfer: refused, nothing changed
    local cancel_err
    task = lc:spawn(function()
      return lc:download_content(video.id, { sink = function()
        if not cancel_err then cancel_err = select(2, pcall(task.cancel, task)) or "cancelled!" end
      end })
    end)
    lc:run()
    assert.matches("from inside a callback", tostring(cancel_err), 1, true)
    assert.are.equal(true, task:result())
    lc:close()
  end)

  it("rule 2: a sora call from inside a sink is a clear usage error, not a connection error", function()
    local video = H.completed_video(c, E)
    local pending = assert(c:create{ prompt = "still queued" })
    local seen = {}
    local calls = {
      retrieve = function() return c:retrieve(video.id) end,
      step = function() return c:step(0) end,
      sleep = function() return c:sleep(0.01) end,
      list_page = function() return c:list_page{} end,
      wait = function() return pending:wait{ timeout = 1 } end,
      close = function() return c:close() end,
    }
    assert.is_truthy(c:download_content(video.id, { sink = function()
      for name, call in pairs(calls) do
        if not seen[name] then
          local ok, e = pcall(call)
          seen[name] = ok and "returned" or tostring(type(e) == "table" and e.kind or e)
        end
      end
    end }))
    local seen_progress
    assert.is_truthy(c:download_content(video.id, { on_progress = function()
      if seen_progress then return end
      local ok, e = pcall(c.retrieve, c, video.id)
      seen_progress = ok and "returned" or tostring(e)
    end }))
    assert.matches("calling 'retrieve' from inside a callback", seen_progress, 1, true)
    for name in pairs(calls) do
      assert.matches("from inside a callback", seen[name], 1, true)
      assert.matches("'" .. name .. "'", seen[name], 1, true)
    end
  end)

  it("rule 2: what a callback raises never unwinds libcurl; the user's traceback is kept", function()
    local video = H.completed_video(c, E)
    local function my_failing_sink() error("sink says no") end
    local ok, err = pcall(c.download_content, c, video.id, { sink = my_failing_sink })
    assert.is_false(ok)
    assert.matches("sink says no", tostring(err))
    local line = debug.getinfo(my_failing_sink, "S").linedefined
    assert.matches("stack traceback:.*edges_independent_spec%.lua:" .. line .. ": in ", tostring(err))
    -- a non-string error object comes back as it is
    local obj = setmetatable({}, { __tostring = function() return "obj" end })
    local ok2, err2 = pcall(c.download_content, c, video.id, { on_progress = function() error(obj) end })
    assert.is_false(ok2)
    assert.are.equal(obj, err2)
    -- and the client still works
    assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
    -- inside a task, the task ends with that error, traceback included
    local t = c:spawn(function() return c:download_content(video.id, { sink = my_failing_sink }) end)
    c:run()
    local r, terr = t:result()
    assert.is_nil(r)
    assert.matches("sink says no", tostring(terr))
    assert.matches("stack traceback:.*edges_independent_spec%.lua:" .. line .. ": in ", tostring(terr))
    -- what a log function raises goes to stderr; the request goes on
    local out, ok3 = H.run_child([[
      local c = require("sora").new{ api_key = "sk-test", base_url = ]] .. string.format("%q", E.url) .. [[,
        log = function() error("log says no") end }
      local v, e = c:retrieve(]] .. string.format("%q", video.id) .. [[)
      print(v and v.id or tostring(e))
    ]])
    assert.is_true(ok3, out)
    assert.matches(video.id, out, 1, true)
    assert.matches("log says no", out, 1, true)
  end)

  it("rule 2: a call inside a task where it cannot yield blocks instead", function()
    local video = H.completed_video(c, E)
    local t = c:spawn(function()
      local got
      string.gsub("x", "x", function() got = assert(c:retrieve(video.id)).status end)
      local mt = setmetatable({}, { __index = function(_, id) return assert(c:retrieve(id)).id end })
      local list = { 2, 1 }
      table.sort(list, function(x, y) c:sleep(0.01); return x < y end)
      local shown = tostring(setmetatable({}, { __tostring = function()
        return assert(c:retrieve(video.id)).id end }))
      local waited
      string.gsub("y", "y", function() waited = assert(video:wait{ timeout = 5 }).status end)
      return got, mt[video.id], list[1], shown, waited
    end)
    c:run()
    local a, b, first, shown, waited = t:result()
    assert.are.equal("completed", a, tostring(b))
    assert.are.equal(video.id, b)
    assert.are.equal(1, first)
    assert.are.equal(video.id, shown)
    assert.are.equal("completed", waited)
    assert.are.equal(0, c:step(0))
  end)

  it("rule 2: callables are accepted wherever a function is", function()
    local video = H.completed_video(c, E)
    local chunks, progress, lines = {}, 0, 0
    local sink = setmetatable({}, { __call = function(_, chunk) chunks[#chunks + 1] = chunk end })
    local onp = setmetatable({}, { __call = function() progress = progress + 1 end })
    local log = setmetatable({}, { __call = function() lines = lines + 1 end })
    local lc = sora.new{ api_key = KEY, base_url = E.url, log = log }
    assert.is_truthy(lc:download_content(video.id, { sink = sink, on_progress = onp }))
    assert.are.equal(H.media("video.mp4"), table.concat(chunks))
    assert.is_true(progress > 0 and lines > 0)
    local t = lc:spawn(setmetatable({}, { __call = function(_, x) return x * 2 end }), 21)
    lc:run()
    assert.are.equal(42, t:result())
    local wp = 0
    assert.is_truthy(video:wait{ on_progress = setmetatable({}, { __call = function() wp = wp + 1 end }) })
    local res = c:generate_many({ { prompt = "callable result", output = dir .. "/cr.mp4" } },
      { on_result = setmetatable({}, { __call = function() wp = wp + 1 end }) })
    assert.is_truthy(res[1])
    assert.is_true(wp >= 1)
    -- a userdata with __call, where the Lua can make one (5.1, LuaJIT)
    local newproxy = rawget(_G, "newproxy")
    if newproxy then
      local u = newproxy(true)
      local got = {}
      getmetatable(u).__call = function(_, chunk) got[#got + 1] = chunk end
      assert.is_truthy(lc:download_content(video.id, { sink = u }))
      assert.are.equal(H.media("video.mp4"), table.concat(got))
    end
    lc:close()
  end)

  ------------------------------------------------------------------------------------------
  -- Rule 3
  it("rule 3: option tables whose __index returns fresh strings and collects are read safely", function()
    local function proxy(fields)
      return setmetatable({}, { __index = function(_, k)
        collectgarbage()
        local v = fields[k]
        if type(v) == "string" then v = (v .. "!"):sub(1, -2) end -- a fresh string
        collectgarbage()
        return v
      end })
    end
    local pc = sora.new(proxy{ api_key = KEY, base_url = E.url, organization = "org-x", project = "proj-y" })
    local png = H.fixture("ref-720x1280.png")
    local v = assert(pc:create(proxy{ prompt = "proxy", size = "720x1280",
      input_reference = proxy{ data = png, filename = "ref.png", content_type = "image/png" } }))
    local r = E:last_request()
    assert.are.equal("org-x", r.headers["openai-organization"])
    assert.are.equal("ref.png", H.part(r, "input_reference").filename)
    assert.are.equal(#png, H.part(r, "input_reference").size)
    assert.is_truthy(v.id)
    E:force_video(v.id, { status = "completed" })
    assert.are.equal(H.media("thumbnail.webp"),
      pc:download_content(v.id, proxy{ variant = "thumbnail" }))
    local target = dir .. "/proxy.mp4"
    assert.is_truthy(pc:download_content(v.id, proxy{ path = target }))
    assert.are.equal(H.media("video.mp4"), H.read(target))
    assert.is_truthy(pc:list_page(proxy{ order = "asc", limit = 1 }))
    assert.are.equal("asc", E:last_request().query.order)
    pc:close()
    local hc = sora.new{ api_key = KEY, base_url = E.url, headers = proxy{ ["x-proxy"] = "yes" } }
    assert.is_truthy(hc:list_page{})
    hc:close()
  end)

  it("rule 3: CR/LF/NUL in a multipart content_type or filename raises", function()
    local png = H.fixture("ref-720x1280.png")
    for _, bad in ipairs({ "a\r\nX-Injected: 1", "a\nb", "a\0b" }) do
      for _, field in ipairs({ "filename", "content_type" }) do
        local ref = { data = png, filename = "ref.png", content_type = "image/png" }
        ref[field] = bad
        local msg = raised(c.create, c, { prompt = "inject", size = "720x1280", input_reference = ref })
        assert.matches("bad argument", msg)
      end
    end
    -- a file whose name holds a line break
    local odd = dir .. "/ref\r\nX-Injected: 1.png"
    H.write(odd, png)
    local msg = raised(c.create, c, { prompt = "inject", size = "720x1280", input_reference = odd })
    assert.matches("bad argument", msg)
    msg = raised(c.edit, c, { prompt = "inject", video = { data = H.media("video.mp4"), filename = "v\n.mp4" } })
    assert.matches("bad argument", msg)
    assert.are.equal(0, #E:requests())
  end)

  it("rule 3: base_url with a query, fragment, userinfo or no host: refused or kept, never printed", function()
    for _, bad in ipairs({ E.url .. "#frag", "http:///v1", "http:/v1", "ftp://127.0.0.1/v1" }) do
      local ok, err = pcall(sora.new, { api_key = KEY, base_url = bad })
      assert.is_false(ok, bad)
      assert.matches("base_url", tostring(err))
    end
    local q = sora.new{ api_key = KEY, base_url = E.url .. "?api-version=2025-01" }
    local v = assert(q:create{ prompt = "query" })
    E:force_video(v.id, { status = "completed" })
    assert.is_truthy(q:delete(v.id))
    local del = H.matching(E, "DELETE")[1]
    assert.are.equal("/v1/videos/" .. v.id, del.path)
    assert.are.equal("2025-01", del.query["api-version"])
    assert.is_truthy(q:list_page{ limit = 2 })
    local lp = H.matching(E, "GET", "^/v1/videos$")[1]
    assert.are.equal("2", lp.query.limit)
    assert.are.equal("2025-01", lp.query["api-version"])
    v = assert(q:create{ prompt = "query, content" })
    E:force_video(v.id, { status = "completed" })
    assert.are.equal(H.media("thumbnail.webp"), q:download_content(v.id, { variant = "thumbnail" }))
    local content = H.matching(E, "GET", "/content$")[1]
    assert.are.equal("thumbnail", content.query.variant)
    assert.are.equal("2025-01", content.query["api-version"])
    q:close()
    -- a trailing slash and an upper-case scheme still work
    for _, ok_url in ipairs({ E.url .. "/", (E.url:gsub("^http", "HTTP")) }) do
      local oc = sora.new{ api_key = KEY, base_url = ok_url }
      assert.is_truthy(oc:list_page{}, ok_url)
      oc:close()
    end
    local lines = {}
    local u = sora.new{ api_key = KEY, base_url = E.url:gsub("//", "//alice:s3cr3tpw@"),
      log = function(line) lines[#lines + 1] = line end }
    assert.is_truthy(u:retrieve(v.id) or true)
    assert.is_nil(tostring(u):find("s3cr3tpw", 1, true))
    assert.is_nil(u:base_url():find("s3cr3tpw", 1, true))
    local dead = sora.new{ api_key = KEY, base_url = "http://bob:s3cr3tpw@127.0.0.1:9/v1", max_retries = 0 }
    local _, derr = dead:retrieve("video_x")
    assert.is_nil(tostring(derr):find("s3cr3tpw", 1, true))
    dead:close()
    local ok_bad, bad_err = pcall(sora.new, { api_key = KEY, base_url = "http://bob:s3cr3tpw@/v1" })
    assert.is_false(ok_bad)
    assert.is_nil(tostring(bad_err):find("s3cr3tpw", 1, true))
    assert.is_nil(table.concat(lines, "\n"):find("s3cr3tpw", 1, true))
    assert.is_true(#lines > 0)
    u:close()
  end)

  it("rule 3: generate_many concurrency/max_attempts and sleep(NaN) raise argument errors", function()
    local jobs = { { prompt = "never", output = dir .. "/never.mp4" } }
    -- every job is checked before anything is sent
    assert.matches("bad argument", raised(c.generate_many, c,
      { { prompt = "fine", output = dir .. "/fine.mp4" }, { promt = "typo" } }))
    local msg = raised(c.generate_many, c, { { prompt = "fine", output = dir .. "/fine.mp4" },
      { prompt = "bad file", input_reference = dir .. "/missing.png" } })
    assert.matches("jobs[2]", msg, 1, true)
    assert.matches("to 'generate_many'", msg, 1, true)
    assert.are.equal(0, #E:requests())
    for _, n in ipairs({ 0, -1, 1.5, 0 / 0 }) do
      assert.matches("concurrency", raised(c.generate_many, c, jobs, { concurrency = n }))
    end
    for _, n in ipairs({ 0, -2, 0.5, 0 / 0 }) do
      assert.matches("max_attempts", raised(c.generate_many, c, jobs, { max_attempts = n }))
    end
    assert.matches("bad argument", raised(c.sleep, c, 0 / 0))
    assert.matches("bad argument", raised(c.sleep, c, -1))
    assert.matches("bad argument", raised(c.step, c, 0 / 0))
    local t = c:spawn(function() return c:sleep(0 / 0) end)
    c:run()
    local ok, err = t:result()
    assert.is_nil(ok)
    assert.matches("bad argument", tostring(err))
    assert.are.equal(0, #E:requests())
  end)

  it("rule 3: one message shape naming the public call", function()
    local function line_of(msg) return msg:match("edges_independent_spec.lua:%d+") end
    local msg = raised(function() return c:list{ limit = 1.5 } end)
    assert.matches("bad argument #1 to 'list'", msg, 1, true)
    assert.truthy(line_of(msg), msg)
    msg = raised(function() return c:pages{ limit = 1.5 } end)
    assert.matches("to 'pages'", msg, 1, true)
    msg = raised(function() return c:list_page{ limit = 1.5 } end)
    assert.matches("bad argument #1 to 'list_page'", msg, 1, true)
    msg = raised(function() return c:create{ promt = "x" } end)
    assert.matches("bad argument #1 to 'create' (unknown option 'promt' (did you mean 'prompt'?))", msg, 1, true)
    msg = raised(function() return sora.new{ api_key = KEY, timeout = "x" } end)
    assert.matches("bad argument #1 to 'new'", msg, 1, true)
    msg = raised(function() return c:download_content("video_x", { sink = 3 }) end)
    assert.matches("bad argument #2 to 'download_content'", msg, 1, true)
    msg = raised(function() return c:generate_many({}, { concurrency = 0 }) end)
    assert.matches("bad argument #2 to 'generate_many'", msg, 1, true)
    local video = assert(c:create{ prompt = "shapes" })
    msg = raised(function() return video:wait{ timeout = -1 } end)
    assert.matches("bad argument #1 to 'wait'", msg, 1, true)
    assert.truthy(line_of(msg), msg)
    msg = raised(function() return c:retrieve(42) end)
    assert.matches("bad argument #1 to 'retrieve'", msg, 1, true)
    msg = raised(function() return c:spawn(5) end)
    assert.matches("bad argument #1 to 'spawn'", msg, 1, true)
    msg = raised(function() return c:step("soon") end)
    assert.matches("bad argument #1 to 'step'", msg, 1, true)
    msg = raised(function() return c:generate{ prompt = "x", timeout = "long" } end)
    assert.matches("bad argument #1 to 'generate'", msg, 1, true)
    msg = raised(function() return c:create_and_wait({ prompt = "x" }, { interval = -1 }) end)
    assert.matches("bad argument #2 to 'create_and_wait'", msg, 1, true)
  end)

  ------------------------------------------------------------------------------------------
  -- Rule 4
  it("rule 4: wait{timeout} returns within its timeout while a poll hangs", function()
    local slow = sora.new{ api_key = KEY, base_url = E.url } -- default timeout 600, 2 retries
    local v = assert(slow:create{ prompt = "hang" })
    E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_", times = 50 }
    local t0 = now()
    local ok, err = v:wait{ timeout = 1.5, interval = 0.1 }
    local took = now() - t0
    assert.is_nil(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(took < 3, "wait took " .. took)
    -- generate and create_and_wait too
    t0 = now()
    ok, err = slow:generate{ prompt = "hang too", output = dir .. "/hang.mp4", timeout = 1.5 }
    assert.is_nil(ok)
    assert.is_true(now() - t0 < 3, "generate took " .. (now() - t0))
    t0 = now()
    ok, err = slow:create_and_wait({ prompt = "hang three" }, { timeout = 1.5 })
    assert.is_nil(ok)
    assert.is_true(now() - t0 < 3, "create_and_wait took " .. (now() - t0))
    -- a batch job's timeout bounds its polls too
    t0 = now()
    local videos, errors = slow:generate_many({ { prompt = "hang four", output = dir .. "/h4.mp4",
      timeout = 1.5 } })
    assert.is_false(videos[1])
    assert.are.equal("timeout", errors[1].kind)
    assert.is_true(now() - t0 < 3, "generate_many took " .. (now() - t0))
    -- and a create that hangs is bounded by the wait's timeout in create_and_wait
    E:clear_faults()
    E:fault{ action = "stall", method = "POST", path = "^/v1/videos$" }
    t0 = now()
    ok, err = slow:create_and_wait({ prompt = "hang five" }, { timeout = 1 })
    assert.is_nil(ok)
    assert.is_true(now() - t0 < 2.5, "create_and_wait (create) took " .. (now() - t0))
    slow:close()
  end)

  it("rule 4: a 429 with retry-after 86400 in generate_many does not stall the batch", function()
    E:fault{ action = "respond", status = 429, method = "POST", path = "^/v1/videos$",
      headers = { ["retry-after"] = "86400" } }
    local jobs = {
      { prompt = "day one", output = dir .. "/d1.mp4" },
      { prompt = "day two", output = dir .. "/d2.mp4" },
    }
    local t0 = now()
    local videos, errors = c:generate_many(jobs, { concurrency = 2 })
    assert.is_true(now() - t0 < 15, "batch took " .. (now() - t0))
    local rate_limited, done = 0, 0
    for i = 1, 2 do
      if videos[i] then done = done + 1
      elseif errors[i] and errors[i].kind == "rate_limit" then rate_limited = rate_limited + 1 end
    end
    assert.are.equal(1, done)
    assert.are.equal(1, rate_limited)
    -- the same demand in milliseconds, or as a date a day away
    for _, demand in ipairs({ { ["retry-after-ms"] = "86400000" },
                              { ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 86400) } }) do
      E:fault{ action = "respond", status = 429, method = "POST", path = "^/v1/videos$", headers = demand }
      t0 = now()
      videos, errors = c:generate_many({ { prompt = "ms", output = dir .. "/ms.mp4" } })
      assert.is_true(now() - t0 < 10, "batch took " .. (now() - t0))
      assert.is_false(videos[1])
      assert.are.equal("rate_limit", errors[1].kind)
    end
    -- a single call is not retried after such a demand either
    local rc = sora.new{ api_key = KEY, base_url = E.url, max_retries = 3 }
    E:fault{ action = "respond", status = 429, headers = { ["retry-after"] = "86400" } }
    t0 = now()
    local ok, err = rc:retrieve("video_day")
    assert.is_nil(ok)
    assert.are.equal("rate_limit", err.kind)
    assert.are.equal(86400, err.retry_after)
    assert.is_true(now() - t0 < 2)
    rc:close()
  end)

  it("rule 4: retry jitter differs between processes", function()
    local code = [[
      local c = require("sora").new{ api_key = "sk-test", base_url = "http://127.0.0.1:9/v1" }
      local t = {}
      for i = 1, 6 do t[i] = string.format("%.17g", c:_jitter()) end
      print(table.concat(t, ","))
    ]]
    local a = H.run_child(code)
    local b = H.run_child(code)
    assert.matches("%d", a)
    assert.are_not.equal(a, b)
  end)

  ------------------------------------------------------------------------------------------
  -- Security and integrity
  it("security: the key never leaks when a server echoes it", function()
    local long_key = "sk-" .. string.rep("L", 120)
    local echo = sora.new{ api_key = long_key, base_url = E.url, max_retries = 0,
      log = "debug" }
    local lines = {}
    echo:close()
    echo = sora.new{ api_key = long_key, base_url = E.url, max_retries = 0,
      log = function(line) lines[#lines + 1] = line end }
    local function no_key(s, where)
      s = tostring(s)
      assert.is_nil(s:find(long_key, 1, true), where .. " leaks the key")
      assert.is_nil(s:find(string.rep("L", 20), 1, true), where .. " leaks part of the key")
    end
    E:fault{ action = "respond", status = 400, headers = { ["x-request-id"] = "req_" .. long_key },
      body = { error = { message = "bad " .. long_key, code = long_key, type = "t" .. long_key,
        param = long_key } } }
    local _, err = echo:retrieve("video_echo")
    for _, f in ipairs({ "message", "code", "type", "param", "request_id" }) do no_key(err[f], f) end
    no_key(tostring(err), "tostring(err)")
    -- tostring(err) stays one line whatever the server's message holds
    E:fault{ action = "respond", status = 400, body = { error = { message = "one\ntwo\r\nthree",
      code = "a\nb" } } }
    _, err = echo:retrieve("video_echo")
    assert.is_nil(tostring(err):find("[\r\n]"), tostring(err))
    assert.matches("one two", tostring(err), 1, true)
    -- a non-JSON page with a long key: redacted before the excerpt cuts it
    E:fault{ action = "respond", status = 502, headers = { ["content-type"] = "text/html" },
      body = string.rep("x", 150) .. long_key .. string.rep("y", 50) }
    _, err = echo:retrieve("video_echo")
    no_key(err.message, "html excerpt")
    no_key(tostring(err), "html tostring")
    -- a failed video whose error message echoes it
    E:config{ api_key = cjson.null } -- any key, so that the echoing client is served
    local v = assert(echo:create{ prompt = "fail" })
    E:force_video(v.id, { status = "failed", error = { code = "x", message = "key " .. long_key } })
    local ok, werr = v:wait{ timeout = 5 }
    E:config{ api_key = KEY }
    assert.is_nil(ok)
    no_key(werr.message, "failed video's message")
    no_key(v.error and v.error.message, "video.error.message")
    no_key(tostring(werr), "failed tostring")
    no_key(table.concat(lines, "\n"), "log lines")
    echo:close()
    -- successful answers that echo it: a video's strings, a field's name, a page, a
    -- character, the request id, a redirect's Location
    local S = raw([[
      local key = ]] .. string.format("%q", long_key) .. [[
      local video = '{"id":"video_' .. key .. '","object":"video","status":"completed",'
        .. '"progress":100,"prompt":"p ' .. key .. '","model":"' .. key .. '","x_' .. key .. '":"v ' .. key .. '"}'
      return function(req)
        local b
        if req.path:find("/content", 1, true) and not req.path:find("storage", 1, true) then
          return head("302 Found", { "Location: /storage/" .. key .. "?sig=" .. key, "Content-Length: 0",
            "x-request-id: req_" .. key })
        elseif req.path:find("storage", 1, true) then
          return head("200 OK", { "Content-Type: video/mp4", "Content-Length: 2" }) .. "ok"
        elseif req.path:find("characters", 1, true) then
          b = '{"id":"char_' .. key .. '","name":"' .. key .. '","created_at":1}'
        elseif req.path:find("^/v1/videos%?") then
          b = '{"object":"list","data":[' .. video .. '],"has_more":false,"first_id":"video_' .. key
            .. '","last_id":"video_' .. key .. '"}'
        else
          b = video
        end
        return head("200 OK", { "Content-Type: application/json", "Content-Length: " .. #b,
          "x-request-id: req_" .. key }) .. b
      end
    ]])
    lines = {}
    local rc = sora.new{ api_key = long_key, base_url = S.url, max_retries = 0,
      log = function(line) lines[#lines + 1] = line end }
    local function walk(v, where)
      if type(v) == "table" then
        for k, x in pairs(v) do no_key(k, where .. " key"); walk(x, where .. "." .. tostring(k)) end
      elseif type(v) == "string" then
        no_key(v, where)
      end
    end
    local got = assert(rc:retrieve("video_x"))
    no_key(tostring(got), "tostring(video)")
    no_key(got.id, "video.id")
    walk(got:to_table(), "video")
    local page = assert(rc:list_page{ limit = 1 })
    walk(page.data[1] and page.data[1]:to_table(), "page item")
    no_key(page.last_id, "page.last_id")
    no_key(page.first_id, "page.first_id")
    walk(assert(rc:get_character("char_x")), "character")
    assert.are.equal("ok", rc:download_content("video_x"))
    rc:close()
    S:stop()
    no_key(table.concat(lines, "\n"), "log lines of the echoing server")
  end)

  it("security: log lines print redirect URLs without the query", function()
    local S = raw[[
      return function(req, n)
        if req.path:find("/content", 1, true) then
          return head("302 Found", { "Location: /storage/blob?sig=TOPSECRETSIG&x=1",
            "Content-Length: 0" })
        end
        return head("200 OK", { "Content-Type: video/mp4", "Content-Length: 5" }) .. "hello"
      end
    ]]
    local lines = {}
    local rc = sora.new{ api_key = KEY, base_url = S.url, log = function(l) lines[#lines + 1] = l end }
    local body, err = rc:download_content("video_r")
    rc:close()
    S:stop()
    assert.are.equal("hello", body, tostring(err))
    local text = table.concat(lines, "\n")
    assert.matches("storage/blob", text, 1, true)
    assert.is_nil(text:find("TOPSECRETSIG", 1, true))
  end)

  it("security: the emulator never serves the Authorization it received", function()
    assert.is_truthy(c:list_page{})
    local answer = cjson.encode(E:requests())
    assert.is_nil(answer:find(KEY, 1, true))
  end)

  it("security: a 206 without Range, or a resume whose total changes, is invalid_response", function()
    local S = raw[[
      return function(req, n)
        if n == 1 then
          return head("206 Partial Content", { "Content-Type: video/mp4",
            "Content-Range: bytes 0-99/100", "Content-Length: 100" }) .. synthetic(0, 100)
        end
        if not req.headers.range then
          return head("200 OK", { "Content-Type: video/mp4", "Content-Length: 300000" })
            .. synthetic(0, 150000)
        end
        return head("206 Partial Content", { "Content-Type: video/mp4",
          "Content-Range: bytes 150000-299999/150000", "Content-Length: 150000" })
          .. synthetic(150000, 300000)
      end
    ]]
    local rc = sora.new{ api_key = KEY, base_url = S.url, max_retries = 2 }
    local target = dir .. "/integrity.mp4"
    H.write(target, "previous")
    local ok, err = rc:download_content("video_a", { path = target })
    assert.is_nil(ok)
    assert.are.equal("invalid_response", err.kind)
    assert.are.equal("previous", H.read(target))
    ok, err = rc:download_content("video_b", { path = target })
    assert.is_nil(ok)
    assert.are.equal("invalid_response", err.kind, tostring(err))
    assert.are.equal("previous", H.read(target))
    rc:close()
    S:stop()
    -- a resume that starts elsewhere than where the download stopped; a 206 to a sink
    S = raw[[
      return function(req, n)
        if req.path:find("sink", 1, true) then
          return head("206 Partial Content", { "Content-Type: video/mp4",
            "Content-Range: bytes 0-9/10", "Content-Length: 10" }) .. synthetic(0, 10)
        end
        if not req.headers.range then
          return head("200 OK", { "Content-Type: video/mp4", "Content-Length: 1000" })
            .. synthetic(0, 500)
        end
        return head("206 Partial Content", { "Content-Type: video/mp4",
          "Content-Range: bytes 400-999/1000", "Content-Length: 600" }) .. synthetic(400, 1000)
      end
    ]]
    rc = sora.new{ api_key = KEY, base_url = S.url, max_retries = 2 }
    ok, err = rc:download_content("video_c", { path = target })
    assert.is_nil(ok)
    assert.are.equal("invalid_response", err.kind, tostring(err))
    assert.are.equal("previous", H.read(target))
    local got = {}
    ok, err = rc:download_content("video_sink", { sink = function(chunk) got[#got + 1] = chunk end })
    assert.is_nil(ok)
    assert.are.equal("invalid_response", err.kind, tostring(err))
    rc:close()
    S:stop()
    for _, name in ipairs(H.ls(dir)) do assert.is_nil(name:find("integrity.mp4.sora-", 1, true)) end
  end)

  it("security: framing is libcurl's: chunked with Content-Length, trailers", function()
    local S = raw[[
      return function(req, n)
        local chunked = "5\r\nhello\r\n6\r\n world\r\n0\r\n"
        if n == 1 then
          return head("200 OK", { "Content-Type: video/mp4", "Transfer-Encoding: chunked",
            "Content-Length: 3", "x-request-id: req_head" }) .. chunked .. "\r\n"
        end
        return head("200 OK", { "Content-Type: video/mp4", "Transfer-Encoding: chunked",
          "Trailer: Content-Length, x-request-id", "x-request-id: req_head" })
          .. chunked .. "Content-Length: 99999\r\nx-request-id: req_trailer\r\n\r\n"
      end
    ]]
    local rc = sora.new{ api_key = KEY, base_url = S.url, max_retries = 0 }
    local body, err = rc:download_content("video_a")
    assert.are.equal("hello world", body, tostring(err))
    body, err = rc:download_content("video_b")
    assert.are.equal("hello world", body, tostring(err))
    rc:close()
    S:stop()
    -- trailers do not overwrite the request id of an error
    S = raw[[
      return function()
        local b = '{"error":{"message":"nope","type":"invalid_request_error"}}'
        return head("400 Bad Request", { "Content-Type: application/json",
          "Transfer-Encoding: chunked", "x-request-id: req_head" })
          .. string.format("%x\r\n%s\r\n0\r\nx-request-id: req_trailer\r\n\r\n", #b, b)
      end
    ]]
    rc = sora.new{ api_key = KEY, base_url = S.url, max_retries = 0 }
    body, err = rc:retrieve("video_c")
    rc:close()
    S:stop()
    assert.is_nil(body)
    assert.are.equal("bad_request", err.kind)
    assert.are.equal("req_head", err.request_id)
  end)

  it("security: a download path naming a device, FIFO or socket is refused; modes kept", function()
    local video = H.completed_video(c, E)
    local fifo = dir .. "/fifo"
    os.execute("mkfifo " .. H.shell_quote(fifo))
    local sockpath = dir .. "/sock"
    local unix_ok, unix = pcall(require, "socket.unix")
    local us
    if unix_ok and unix then
      us = (unix.stream or unix)()
      assert(us:bind(sockpath))
    end
    os.execute("ln -s /dev/null " .. H.shell_quote(dir .. "/null-link"))
    E:clear_requests()
    local targets = { "/dev/null", fifo, dir .. "/null-link", dir }
    if us then targets[#targets + 1] = sockpath end
    for _, target in ipairs(targets) do
      local ok, err = c:download_content(video.id, { path = target })
      assert.is_nil(ok, target)
      assert.are.equal("io", err.kind, target)
    end
    if us then us:close() end
    assert.are.equal(0, #E:requests())
    local private = dir .. "/private.mp4"
    H.write(private, "old")
    os.execute("chmod 600 " .. H.shell_quote(private))
    assert.is_truthy(c:download_content(video.id, { path = private }))
    local p = io.popen("stat -c %a " .. H.shell_quote(private))
    local mode = p:read("*l")
    p:close()
    assert.are.equal("600", mode)
    assert.are.equal(H.media("video.mp4"), H.read(private))
    -- a new file gets 0666 minus the umask (which children inherit from this process)
    local fresh = dir .. "/fresh.mp4"
    assert.is_truthy(c:download_content(video.id, { path = fresh }))
    local function sh(cmd)
      local pipe = io.popen(cmd)
      local line = pipe:read("*l")
      pipe:close()
      return line
    end
    local umask = tonumber(sh("umask"), 8)
    local expected = 0
    for bit = 0, 8 do -- 0666 & ~umask, bit by bit (no bitwise operators on 5.1)
      local b = 2 ^ bit
      if math.floor(438 / b) % 2 == 1 and math.floor(umask / b) % 2 == 0 then expected = expected + b end
    end
    assert.are.equal(string.format("%o", expected), sh("stat -c %a " .. H.shell_quote(fresh)))
  end)

  it("security: an input_reference FIFO never blocks; a directory is not uploaded", function()
    local fifo = dir .. "/ref-fifo"
    os.execute("mkfifo " .. H.shell_quote(fifo))
    local t0 = now()
    local msg = raised(c.create, c, { prompt = "fifo", input_reference = fifo })
    assert.is_true(now() - t0 < 2)
    assert.matches("input_reference", msg)
    msg = raised(c.create, c, { prompt = "fifo", input_reference = { path = fifo, content_type = "image/png" } })
    assert.is_true(now() - t0 < 2)
    assert.matches("input_reference", msg)
    msg = raised(c.create, c, { prompt = "dir", input_reference = { path = dir, content_type = "image/png" } })
    assert.matches("input_reference", msg)
    msg = raised(c.edit, c, { prompt = "fifo video", video = { path = fifo } })
    assert.matches("video", msg)
    msg = raised(c.create_character, c, { name = "n", video = { path = dir } })
    assert.matches("video", msg)
    local t = c:spawn(function() return c:create{ prompt = "fifo in task", input_reference = fifo } end)
    t0 = now()
    c:run()
    assert.is_true(now() - t0 < 2)
    assert.is_nil((t:result()))
    assert.are.equal(0, #E:requests())
  end)

  it("security: descriptors do not leak into child processes", function()
    local video = H.completed_video(c, E)
    local inherited
    local target = dir .. "/cloexec.mp4"
    E:config{ video_bytes = 4 * 1024 * 1024 }
    local ok, err = c:download_content(video.id, { path = target, on_progress = function()
      if inherited then return end
      -- a child lists its own descriptors beyond stdio (ls's own directory fd excluded)
      local p = io.popen("for f in /proc/self/fd/*; do readlink $f; done 2>/dev/null")
      inherited = p:read("*a")
      p:close()
    end })
    E:config{ video_bytes = cjson.null }
    assert.is_truthy(ok, tostring(err))
    assert.is_string(inherited)
    assert.is_nil(inherited:find("socket:", 1, true), inherited)
    assert.is_nil(inherited:find(".sora-", 1, true), inherited)
  end)

  it("security: server data of the wrong shape is invalid_response", function()
    local S = raw[[
      local cjson = require "cjson"
      local bodies = {
        ['/v1/videos?limit=1'] = '{"object":"list","data":[],"has_more":true,"last_id":5}',
        ['/v1/videos?limit=2'] = '{"object":"list","data":{"a":1},"has_more":false}',
        ['/v1/videos/video_f'] = '{"id":"video_f","object":"video","status":"failed","error":"boom"}',
        ['/v1/videos/video_e'] = '{"id":"","object":"video","status":"queued"}',
        ['/v1/videos/video_n'] = '{"id":"video_n\\r\\nX: 1","object":"video","status":"queued"}',
        ['/v1/videos/video_p'] = '{"id":"video_p","object":"video","status":"queued","progress":"x"}',
        ['/v1/videos/video_k'] = '[1,2,3]',
        ['/v1/videos/video_nan'] = '{"id":"video_nan","object":"video","status":"queued","progress":1e999}',
        ['/v1/videos/characters/char_null'] = '{"id":null,"name":"c","created_at":1}',
        ['/v1/videos?limit=3'] = '{"object":"list","data":[5],"has_more":false}',
        ['/v1/videos?limit=4'] = '{"object":"list","data":[],"has_more":"yes"}',
        ['/v1/videos?limit=5'] = '{"object":"list","data":[{"id":"video_ok","object":"video","status":"queued","error":[1]}],"has_more":false}',
        ['/v1/videos/characters/char_empty'] = '{"id":"","name":"c","created_at":1}',
        ['/v1/videos/characters/char_crlf'] = '{"id":"char_\\r\\n","name":"c","created_at":1}',
        ['/v1/videos/video_del'] = '{"object":"video.deleted","deleted":true}',
      }
      return function(req)
        local b = bodies[req.path] or '{}'
        return head("200 OK", { "Content-Type: application/json", "Content-Length: " .. #b }) .. b
      end
    ]]
    local rc = sora.new{ api_key = KEY, base_url = S.url, max_retries = 0 }
    local function invalid(ok, err, what)
      assert.is_nil(ok, what)
      assert.is_true(sora.is_error(err), what .. ": " .. tostring(err))
      assert.are.equal("invalid_response", err.kind, what .. ": " .. tostring(err))
    end
    local lp, lerr = rc:list_page{ limit = 1 }
    invalid(lp, lerr, "last_id not a string")
    for _, id in ipairs({ "video_f", "video_e", "video_n", "video_p", "video_k" }) do
      local ok, v, err = pcall(rc.retrieve, rc, id)
      assert.is_true(ok, id .. " raised: " .. tostring(v))
      invalid(v, err, id)
    end
    local ok, v, err = pcall(rc.list_page, rc, { limit = 2 })
    assert.is_true(ok, tostring(v))
    invalid(v, err, "data not an array")
    for _, limit in ipairs({ 3, 4, 5 }) do
      ok, v, err = pcall(rc.list_page, rc, { limit = limit })
      assert.is_true(ok, tostring(v))
      invalid(v, err, "page " .. limit)
    end
    for _, id in ipairs({ "char_empty", "char_crlf" }) do
      ok, v, err = pcall(rc.get_character, rc, id)
      assert.is_true(ok, tostring(v))
      invalid(v, err, id)
    end
    ok, v, err = pcall(rc.delete, rc, "video_del")
    assert.is_true(ok, tostring(v))
    invalid(v, err, "deleted without id")
    ok, v, err = pcall(function() local n = 0; for _ in rc:list{ limit = 1 } do n = n + 1 end; return n end)
    assert.is_false(ok)
    assert.is_true(sora.is_error(v), tostring(v))
    assert.are.equal("invalid_response", v.kind)
    -- a character whose id is null (the spec allows it) is accepted
    local ch, cerr = rc:get_character("char_null")
    assert.is_table(ch, tostring(cerr))
    assert.is_nil(ch.id)
    assert.are.equal("c", ch.name)
    rc:close()
    S:stop()
  end)

  it("security: a character whose id is null is accepted from create_character", function()
    local ch = c:create_character{ video = { data = H.media("video.mp4"), filename = "v.mp4" }, name = "n" }
    assert.is_table(ch)
  end)

  it("security: connection errors keep libcurl's code", function()
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    srv:close()
    local dead = sora.new{ api_key = KEY, base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    local ok, err = dead:retrieve("video_x")
    assert.is_nil(ok)
    assert.are.equal("connection", err.kind)
    assert.are.equal("COULDNT_CONNECT", err.curl_code)
    dead:close()
    local video = H.completed_video(c, E)
    E:fault{ action = "truncate", method = "GET", path = "/content$" }
    ok, err = c:download_content(video.id)
    assert.is_nil(ok)
    assert.are.equal("connection", err.kind)
    assert.are.equal("PARTIAL_FILE", err.curl_code)
    E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_slow" }
    ok, err = c:retrieve("video_slow", { timeout = 0.3 })
    assert.is_nil(ok)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("OPERATION_TIMEDOUT", err.curl_code)
  end)

  it("security: a redirect to another protocol is refused (protocol restriction holds)", function()
    local S = raw[[
      return function(req)
        return head("302 Found", { "Location: file:///etc/passwd", "Content-Length: 0" })
      end
    ]]
    local rc = sora.new{ api_key = KEY, base_url = S.url, max_retries = 0 }
    local body, err = rc:download_content("video_a")
    rc:close()
    S:stop()
    assert.is_nil(body)
    assert.is_true(sora.is_error(err))
    assert.is_nil(tostring(err):find("root:", 1, true))
  end)

  ------------------------------------------------------------------------------------------
  -- The host never stalls
  it("host: the end of a large download to a file (figure printed, not asserted)", function()
    local video = H.completed_video(c, E)
    E:config{ video_bytes = 50 * 1024 * 1024 }
    local target = dir .. "/big.mp4"
    local t = c:spawn(function() return c:download_content(video.id, { path = target }) end)
    local longest, last = 0, 0
    while not t:done() do
      local t0 = now()
      c:step(0)
      last = now() - t0
      longest = math.max(longest, last)
      socket.sleep(0.001)
    end
    E:config{ video_bytes = cjson.null }
    assert.is_truthy(t:result())
    assert.are.equal(50 * 1024 * 1024, #H.read(target))
    print(string.format("\n  50 MB download to a file: the step(0) that ends it %.2f ms, the longest %.2f ms",
      last * 1000, longest * 1000))
    os.remove(target)
  end)

  it("host: JSON bodies over 1 MB are sent without Expect: 100-continue", function()
    local t0 = now()
    local ok, err = c:create{ prompt = string.rep("p", 1100 * 1000) }
    local took = now() - t0
    assert.is_nil(ok) -- the emulator refuses a prompt that long
    assert.are_not.equal("connection", err.kind)
    local r = E:last_request()
    assert.is_nil(r.headers.expect)
    print(string.format("\n  1.1 MB JSON create answered in %.0f ms", took * 1000))
    -- a multipart body over 1 MB too
    local big_png = H.fixture("ref-720x1280.png") .. string.rep("\0", 1200 * 1000)
    t0 = now()
    c:create{ prompt = "big upload", size = "720x1280",
      input_reference = { data = big_png, filename = "big.png" } }
    took = now() - t0
    r = E:last_request()
    assert.is_nil(r.headers.expect)
    assert.are.equal(#big_png, H.part(r, "input_reference").size)
    print(string.format("  1.2 MB multipart create answered in %.0f ms", took * 1000))
  end)

  it("host: 10,000 tasks work, and step works with them #scale", function()
    local tc = sora.new{ api_key = KEY, base_url = E.url }
    local n, finished = 10000, 0
    for i = 1, n do
      tc:spawn(function() tc:sleep(0); finished = finished + 1; return i end)
    end
    tc:run()
    assert.are.equal(n, finished)
    assert.are.equal(0, tc:step(0))
    tc:close()
  end)

  it("host: the emulator keeps serving past 1,020 connections #scale", function()
    local conns = {}
    for i = 1, 1100 do
      local s = socket.tcp()
      s:settimeout(1)
      if s:connect("127.0.0.1", E.url:match(":(%d+)/")) then conns[#conns + 1] = s else s:close() end
      if i % 100 == 0 then socket.sleep(0.05) end
    end
    socket.sleep(0.5)
    for _, s in ipairs(conns) do s:close() end
    socket.sleep(0.5)
    assert.is_true(#conns > 1020)
    local ok, err = c:list_page{}
    assert.is_truthy(ok, tostring(err))
    local stats = E:stats()
    assert.is_true(stats.max_connections_open <= 1008, tostring(stats.max_connections_open))
  end)

  ------------------------------------------------------------------------------------------
  -- Fidelity and shape
  it("fidelity: a queued or in-progress video cannot be deleted", function()
    local v = assert(c:create{ prompt = "not yet" })
    local ok, err = c:delete(v.id)
    assert.is_nil(ok)
    assert.are.equal("bad_request", err.kind)
    E:force_video(v.id, { status = "in_progress", progress = 40 })
    ok, err = c:delete(v.id)
    assert.is_nil(ok)
    assert.are.equal("bad_request", err.kind)
    assert.are.equal(v.id, assert(c:retrieve(v.id)).id)
    E:force_video(v.id, { status = "completed" })
    assert.is_truthy(c:delete(v.id))
  end)

  it("shape: each concern is found by its file name", function()
    for _, f in ipairs({ "csrc/args.c", "csrc/url.c", "csrc/body.c", "csrc/media.c",
                         "csrc/multipart.c", "csrc/download.c", "csrc/transfer.c",
                         "lua/sora/wait.lua", "lua/sora/lists.lua", "lua/sora/batch.lua",
                         "lua/sora/args.lua", "lua/sora/tasks.lua" }) do
      assert.is_true(H.exists(f), f)
    end
  end)
end)
