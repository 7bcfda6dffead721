-- A libuv loop (luv, Debian's lua-luv) drives the client through client:watch and
-- require("sora.luv"): no polling timer, no step. The uv module given to sora is wrapped so
-- that every callback of every handle sora makes is counted. CPU figures are printed; the only
-- assertion on them is that the loop-driven wait used less CPU than a 20 ms step(0) poller.
local emulator = require "support.emulator"
local H = require "support.client"
local sora = require "sora"
local sora_luv = require "sora.luv"
local tools = require "support.tools"

local _, uv = pcall(require, "luv") -- (checked below, through support.tools)
local unpack = table.unpack or unpack

-- uv, but each handle made through it counts its callbacks in `counts[kind]`
-- (kind "timer" or "poll"), and counts timers started to repeat.
local function counting_uv()
  local counts = { timer = 0, poll = 0, repeating = 0, made = 0 }
  local Handle = {}
  Handle.__index = Handle
  function Handle:close() return self.real:close() end
  function Handle:is_closing() return self.real:is_closing() end
  function Handle:stop() return self.real:stop() end
  function Handle:start(...)
    local args = { ... }
    local n = select("#", ...)
    local callback = args[n]
    args[n] = function(...)
      counts[self.kind] = counts[self.kind] + 1
      return callback(...)
    end
    if self.kind == "timer" and args[2] ~= 0 then counts.repeating = counts.repeating + 1 end
    return self.real:start(unpack(args, 1, n))
  end
  local function wrap(kind, real)
    counts.made = counts.made + 1
    return setmetatable({ kind = kind, real = real }, Handle)
  end
  local proxy = setmetatable({
    new_timer = function() return wrap("timer", uv.new_timer()) end,
    new_socket_poll = function(fd) return wrap("poll", uv.new_socket_poll(fd)) end,
  }, { __index = uv })
  return proxy, counts
end

-- The uv handles still open (not closing) in the default loop.
local function open_handles()
  local n = 0
  uv.walk(function(handle)
    if not handle:is_closing() then n = n + 1 end
  end)
  return n
end

local function report(text)
  io.stderr:write("\n  [loop] ", text, "\n")
end

-- A generation in a task: create, wait, download. The task records the CPU time and the
-- wall time of its wait alone, where a polling host burns CPU for nothing.
local function generation(client, into)
  return client:spawn(function()
    local video = assert(client:create{ prompt = "a loop-driven video", seconds = "4" })
    local cpu, wall = os.clock(), sora.now()
    video = assert(video:wait{ interval = 1 })
    into.wait_cpu, into.wait_s = os.clock() - cpu, sora.now() - wall
    into.bytes = assert(client:download_content(video.id))
    return video.status
  end)
end

describe("a luv loop drives sora", function()
  -- (busted allows no pending in before_each: without luv the block is one pending test)
  local present, why = tools.require_module("luv", "a libuv loop drives the client (Debian lua-luv)")
  if not present then
    it("needs luv", function() pending(why) end)
    return
  end
  local E

  lazy_setup(function()
    E = emulator.start{ job_seconds = 3, api_key = H.KEY }
  end)

  lazy_teardown(function()
    if E then E:stop() end
  end)

  local function new_client(opts)
    opts = opts or {}
    opts.base_url, opts.api_key = E.url, H.KEY
    return sora.new(opts)
  end

  it("generates a video with no polling timer, woken less often than a step(0) poller", function()
    local client = new_client()
    local proxy, counts = counting_uv()
    local looped = {}
    local detach = sora_luv.attach(client, proxy)
    E:clear_requests()
    local task = generation(client, looped)
    uv.run()
    local requests = #E:requests()
    assert.is_true(task:done())
    assert.are.equal("completed", (task:result()))
    assert.are.equal(H.media("video.mp4"), looped.bytes)
    assert.are.equal(0, counts.repeating)
    -- each request needs its sockets and a timer or two; each wait interval one timer
    assert.is_true(counts.timer <= 3 * requests + 2,
      ("%d timer wakeups for %d requests"):format(counts.timer, requests))
    assert.are.equal(0, open_handles()) -- idle: sora holds no handle, uv.run returned
    detach()

    -- the same generation, stepped every 20 ms the way a plugin polls
    local polled = {}
    local task2 = generation(client, polled)
    local ticks, ticker = 0, uv.new_timer()
    ticker:start(20, 20, function()
      ticks = ticks + 1
      client:step(0)
      if task2:done() then ticker:close() end
    end)
    uv.run()
    assert.are.equal("completed", (task2:result()))
    report(("luv-driven wait: %.2f s, %.2f ms CPU, %d timer and %d socket wakeups for %d requests")
      :format(looped.wait_s, looped.wait_cpu * 1000, counts.timer, counts.poll, requests))
    report(("step(0) every 20 ms: %.2f s, %.2f ms CPU, %d ticks")
      :format(polled.wait_s, polled.wait_cpu * 1000, ticks))
    -- the CPU times are reported, not compared: on a shared machine a few milliseconds of
    -- CPU are noise (it once measured the luv-driven wait above the poller's); the wakeups
    -- are what costs the CPU, and they are counted exactly
    assert.is_true(counts.timer + counts.poll < ticks,
      ("luv: %d wakeups, polling: %d ticks"):format(counts.timer + counts.poll, ticks))
    client:close()
  end)

  it("downloads a large video to a path in slices, through the host's loop alone", function()
    -- a drive for a host's loop delivers content for a short slice, then pauses the download
    -- with data left in libcurl that no socket will announce: the host's timer must bring it
    -- back at once, or the download would stall
    local bytes = 48 * 1024 * 1024
    E:config{ video_bytes = bytes }
    local dir = H.tempdir()
    local client = new_client()
    local video = assert(client:create_and_wait({ prompt = "a long one" }, { interval = 0.05 }))
    local proxy, counts = counting_uv()
    local detach = sora_luv.attach(client, proxy)
    local task = client:spawn(function()
      return client:download_content(video.id, { path = dir .. "/big.mp4" })
    end)
    uv.run()
    E:config{ video_bytes = require("cjson").null }
    assert.is_true(task:done())
    assert.is_true((task:result()), tostring(select(2, task:result())))
    assert.is_true(require("support.synthetic").matches(dir .. "/big.mp4", bytes))
    report(("48 MB through luv: %d timer and %d socket wakeups"):format(counts.timer, counts.poll))
    detach()
    client:close()
    H.rmdir(dir)
  end)

  it("runs 16 generations at once, their sockets coming and going", function()
    -- max_retries = 0: every create gets a connection of its own, so descriptors are closed
    -- and their numbers reused all along
    local client = new_client{ max_retries = 0 }
    sora_luv.attach(client, uv)
    local list = {}
    for i = 1, 16 do
      list[i] = client:spawn(function()
        local video = assert(client:create{ prompt = "crowd #" .. i })
        video = assert(video:wait{ interval = 0.5 })
        return #assert(client:download_content(video.id))
      end)
    end
    local guard = uv.new_timer() -- a lost event would hang uv.run: fail instead
    guard:start(40000, 0, function() client:close() end)
    guard:unref()
    uv.run()
    guard:close()
    for i, task in ipairs(list) do
      assert.is_true(task:done(), "task " .. i)
      assert.are.equal(#H.media("video.mp4"), (task:result()), "task " .. i)
    end
    client:close()
    uv.run("nowait")
  end)

  it("never lets the host watch a reused descriptor number as the old socket", function()
    -- stepped (its own poll() acts on many sockets in one turn) while a host records what it
    -- watches; a number asked for again without a stop in between must be the same socket
    local client = new_client{ max_retries = 0 }
    local watched, reused, asked = {}, {}, 0
    client:watch(function(fd, readable, writable)
      if not readable and not writable then
        watched[fd] = nil
        return
      end
      local inode = assert(uv.fs_fstat(fd)).ino
      if watched[fd] and watched[fd] ~= inode then reused[#reused + 1] = fd end
      watched[fd], asked = inode, asked + 1
    end, function() end)
    -- a request that starts and ends within one drive is never mentioned to the host (changes
    -- are merged): answers held back make sockets outlive the drives that other answers end
    E:fault{ action = "delay", delay_ms = 400, method = "GET", times = 8 }
    local list = {}
    for i = 1, 16 do
      list[i] = client:spawn(function()
        local video = assert(client:create{ prompt = "stepped #" .. i })
        return assert(client:retrieve(video.id)).id
      end)
    end
    client:run()
    for i, task in ipairs(list) do assert.matches("^video_", (task:result()), "task " .. i) end
    assert.are.same({}, reused)
    assert.is_true(asked > 0)
    client:close()
    assert.are.same({}, watched) -- told to stop everything
  end)

  it("wakes a sleeping task on the timer alone", function()
    local client = new_client()
    local proxy, counts = counting_uv()
    sora_luv.attach(client, proxy)
    local slept
    client:spawn(function()
      local start = sora.now()
      client:sleep(0.3)
      slept = sora.now() - start
    end)
    uv.run()
    assert.is_true(slept >= 0.3, tostring(slept))
    assert.are.equal(0, counts.poll)
    assert.is_true(counts.timer <= 3, tostring(counts.timer)) -- the spawn's, the sleep's (+1 early)
    client:close()
  end)

  it("closes its handles when the client closes, and the host hears of it", function()
    local client = new_client()
    local ended = 0
    local watched = {}
    client:watch(function(fd, r, w) watched[#watched + 1] = { fd, r, w } end,
      function() end, function() ended = ended + 1 end)
    assert.is_true(client:watching())
    local transfer = client:_start("retrieve", "video_nope")
    assert.is_true(#watched >= 0)
    client:close()
    assert.are.equal(1, ended)
    assert.is_false(client:watching())
    assert.is_true(transfer:done())

    local other = new_client()
    local before = open_handles()
    sora_luv.attach(other, uv)
    other:spawn(function() other:sleep(10) end)
    assert.is_true(open_handles() > before) -- the timer for the spawned task
    other:close()
    assert.are.equal(before, open_handles())
    uv.run() -- returns at once: nothing is left
  end)

  it("detaches: the handles close and the client is stepped again", function()
    local client = new_client()
    local detach = sora_luv.attach(client, uv)
    local task = client:spawn(function() return assert(client:create{ prompt = "detached" }).id end)
    assert.is_true(open_handles() > 0)
    detach()
    detach() -- idempotent
    assert.are.equal(0, open_handles())
    uv.run("nowait") -- libuv finishes closing handles in the loop
    assert.is_false(client:watching())
    client:run()
    assert.is_true(task:done())
    assert.matches("^video_", (task:result()))
    client:close()
  end)

  it("keeps blocking calls and step working on a watched client, telling the host", function()
    local client = new_client()
    local sockets, timers = {}, 0
    client:watch(function(fd, r, w) sockets[#sockets + 1] = { fd = fd, r = r, w = w } end,
      function() timers = timers + 1 end)
    local video = assert(client:create{ prompt = "blocking, watched" }) -- outside a task: blocks
    assert.are.equal("queued", video.status)
    -- a socket opened and closed within one turn is never told; any told ends stopped
    local last = {}
    for _, told in ipairs(sockets) do last[told.fd] = told end
    for fd, told in pairs(last) do
      assert.are.equal(false, told.r, "fd " .. fd .. " is still watched")
      assert.are.equal(false, told.w, "fd " .. fd .. " is still watched")
    end
    assert.is_true(timers >= 1)
    local task = client:spawn(function() return client:retrieve(video.id) end)
    client:run()
    assert.are.equal(video.id, (task:result()).id)
    client:close()
  end)

  it("refuses a second watch, and calls into the client from the host's callbacks", function()
    local client = new_client()
    local refused
    client:watch(function() end, function()
      if refused == nil then
        local ok, err = pcall(client.step, client, 0)
        refused = not ok and tostring(err) or "allowed"
      end
    end)
    assert.has_error(function() client:watch(function() end, function() end) end,
      "calling 'watch' on a sora.Client that a loop already watches (unwatch it first)")
    client:spawn(function() end) -- the host is asked for a timer at once
    assert.matches("from inside a callback", refused)
    client:unwatch()
    client:unwatch()
    client:run()
    client:close()
  end)

  it("takes over transfers already in flight when it is attached", function()
    local client = new_client()
    local task = client:spawn(function()
      local video = assert(client:create{ prompt = "started before the loop" })
      return assert(client:retrieve(video.id)).id
    end)
    client:step(0) -- the create is in flight, stepped
    local proxy, counts = counting_uv()
    sora_luv.attach(client, proxy)
    uv.run()
    assert.is_true(task:done())
    assert.matches("^video_", (task:result()))
    assert.are.equal(0, counts.repeating)
    client:close()
  end)

  it("checks its arguments", function()
    local client = new_client()
    assert.has_error(function() client:watch(nil, function() end) end,
      "bad argument #1 to 'watch' (on_socket must be a function or a callable, got nil)")
    assert.has_error(function() client:watch(function() end, 5) end,
      "bad argument #2 to 'watch' (on_timer must be a function or a callable, got number)")
    assert.has_error(function() client:socket_ready(3, true, false) end,
      "calling 'socket_ready' on a sora.Client that no loop watches (client:watch)")
    assert.has_error(function() client:timeout_due() end,
      "calling 'timeout_due' on a sora.Client that no loop watches (client:watch)")
    client:watch(function() end, function() end)
    assert.has_error(function() client:socket_ready("x") end,
      "bad argument #1 to 'socket_ready' (descriptor expected, got string)")
    local task = client:spawn(function() return client:timeout_due() end)
    client:run()
    local ok, err = task:result()
    assert.is_nil(ok)
    assert.matches("timeout_due drives the tasks; a task of the same client cannot call it", tostring(err))
    client:close()
    assert.has_error(function() client:timeout_due() end, "calling 'timeout_due' on a closed sora.Client")
  end)
end)
