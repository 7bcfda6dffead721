-- Descriptors: a client owns its transfers (a dropped client is collected, and what it had
-- open is closed), and nothing sora opens is inherited by a child process.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

-- This process's id, read by the process itself.
local function own_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end

local PID = own_pid()

-- The sockets among `ls -l`'s lines of a /proc/<pid>/fd directory.
local function count_sockets(command)
  local p = assert(io.popen(command))
  local n = 0
  for line in p:lines() do
    if line:find("socket:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

-- The sockets this process has open now.
local function open_sockets()
  return count_sockets("ls -l /proc/" .. PID .. "/fd 2>/dev/null")
end

-- The sockets a child sees open in itself: whatever it inherited.
local function inherited_sockets()
  return count_sockets("sh -c 'ls -l /proc/$$/fd' 2>/dev/null")
end

describe("descriptors", function()
  local E

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = H.KEY }
  end)

  lazy_teardown(function()
    if E then E:stop() end
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  -- Starts a request that the emulator never answers, in a task, and steps until the
  -- emulator has it: the transfer is in flight, its connection open.
  local function stalled_client(id)
    local c = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
    c:spawn(function() return c:retrieve(id) end)
    local before = #H.matching(E, "GET", id .. "$")
    for _ = 1, 100 do
      c:step(0.02)
      if #H.matching(E, "GET", id .. "$") > before then break end
    end
    return c
  end

  it("closes everything a dropped client had open once it is collected", function()
    collectgarbage()
    collectgarbage()
    local baseline = open_sockets()
    E:fault{ action = "stall", path = "/videos/video_dropped$", times = 20 }
    -- made in a function of their own: LuaJIT marks a live frame's dead temporaries too, so
    -- a client left in one of this function's registers would never be collected
    local function drop_stalled_clients()
      local clients = {}
      for i = 1, 20 do
        clients[i] = stalled_client("video_dropped")
        assert.is_true(clients[i]:step(0) > 0) -- mid-transfer
      end
      assert.is_true(open_sockets() >= baseline + 20)
    end
    drop_stalled_clients() -- dropped, each with its transfer in flight
    collectgarbage()
    collectgarbage()
    assert.are.equal(baseline, open_sockets())
  end)

  it("collects a client whose log function refers to it", function()
    collectgarbage()
    collectgarbage()
    local baseline = open_sockets()
    local collected = setmetatable({}, { __mode = "k" })
    do
      local c
      c = sora.new{ api_key = H.KEY, base_url = E.url, log = function() return c end }
      assert.are.equal("not_found", select(2, c:retrieve("video_logged")).kind)
      collected[c] = true
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(collected))
    assert.are.equal(baseline, open_sockets())
  end)

  it("a transfer nobody holds finishes: its client keeps it while it runs", function()
    local c = sora.new{ api_key = H.KEY, base_url = E.url }
    local video = assert(c:create{ prompt = "kept" })
    local finished = false
    c:spawn(function()
      c:_start("retrieve", video.id) -- dropped at once
      collectgarbage()
      collectgarbage()
      finished = assert(c:retrieve(video.id)).id == video.id
    end)
    c:run()
    assert.is_true(finished)
    c:close()
  end)

  it("leaves no socket of a request in flight to a child process", function()
    local baseline = inherited_sockets()
    E:fault{ action = "stall", path = "/videos/video_inherit$" }
    local c = stalled_client("video_inherit")
    assert.is_true(c:step(0) > 0)
    assert.is_true(open_sockets() >= 3) -- the connection and the multi handle's wakeup pair
    assert.are.equal(baseline, inherited_sockets())
    c:close()
  end)
end)
