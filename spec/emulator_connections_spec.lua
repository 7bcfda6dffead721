-- The emulator under many connections (issue 7: it died at about 1,020 open connections, when
-- socket.select met a descriptor past FD_SETSIZE). It serves 1,000 connections open at once,
-- holds further clients in the listen backlog, and answers 503 to a descriptor select()
-- cannot watch; it never crashes.

local socket = require "socket"
local emulator = require "support.emulator"

local KEY = "sk-conn"
local MANY = 1050
local GET = "GET /v1/videos?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY .. "\r\n\r\n"

-- The soft limit on open files of this process (its children inherit it).
local function open_file_limit()
  local p = io.popen("ulimit -n")
  local text = p and p:read("*l") or ""
  if p then p:close() end
  if text == "unlimited" then return math.huge end
  return tonumber(text) or 0
end

local function connect(url)
  local host, port = url:match("^http://([^:/]+):(%d+)")
  local c = assert(socket.tcp())
  c:settimeout(20)
  assert(c:connect(host, tonumber(port)))
  return c
end

-- Reads one response: status and body (Content-Length framed), or nil, error.
local function response(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local length = 0
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    length = tonumber(h:lower():match("^content%-length:%s*(%d+)")) or length
  end
  local body = length > 0 and assert(c:receive(length)) or ""
  return tonumber(line:match("^HTTP/1%.1 (%d+)")), body
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
    or os.execute("kill -0 " .. pid .. " 2>/dev/null") == 0
end

describe("emulator connections", function()
  it("serves 1,000 connections open at once and makes the rest wait, without a crash", function()
    local limit = open_file_limit()
    if limit < MANY + 200 then
      pending(string.format("needs `ulimit -n` >= %d for %d sockets; it is %s here",
        MANY + 200, MANY, tostring(limit)))
      return
    end
    local E = emulator.start{ api_key = KEY, record_limit = 0 }
    local conns = {}
    local ok, err = pcall(function()
      for i = 1, MANY do
        conns[i] = connect(E.url)
        conns[i]:send(GET)
      end
      -- the first thousand are all served while every one of them stays open
      for i = 1, 1000 do
        local status, body = response(conns[i])
        assert(status == 200, string.format("connection %d: %s %s", i, tostring(status),
          tostring(body)))
      end
      assert.is_true(alive(E.pid))
      -- closing some lets the waiting ones in
      for i = 1, 100 do conns[i]:close(); conns[i] = nil end
      for i = 1001, MANY do
        local status = response(conns[i])
        assert(status == 200, string.format("connection %d: %s", i, tostring(status)))
      end
      for i = 101, MANY do conns[i]:close(); conns[i] = nil end
    end)
    for _, c in pairs(conns) do c:close() end
    local stats = ok and E:stats()
    E:stop()
    assert(ok, err)
    print(string.format("\n%d connections: %d accepted, at most %d open at once, %d refused",
      MANY, stats.connections_accepted, stats.max_connections_open, stats.connections_refused))
    assert.is_true(stats.connections_accepted >= MANY)
    assert.are.equal(1008, stats.max_connections_open)     -- the default cap
    assert.are.equal(0, stats.connections_refused)
  end)

  it("holds clients past max_connections in the backlog until a connection closes", function()
    local E = emulator.start{ api_key = KEY, max_connections = 4 }
    local conns = {}
    for i = 1, 6 do
      conns[i] = connect(E.url)
      conns[i]:send(GET)
    end
    for i = 1, 4 do assert.are.equal(200, (response(conns[i]))) end
    conns[5]:settimeout(0.3)
    local line, err = conns[5]:receive("*l")
    assert.is_nil(line)
    assert.are.equal("timeout", err)                      -- waiting, not refused
    conns[1]:close()
    conns[2]:close()
    conns[5]:settimeout(20)
    assert.are.equal(200, (response(conns[5])))
    assert.are.equal(200, (response(conns[6])))
    for i = 3, 6 do conns[i]:close() end
    local stats = E:stats()
    E:stop()
    assert.are.equal(4, stats.max_connections_open)
  end)

  it("answers 503 and closes when a descriptor is past FD_SETSIZE, then serves again", function()
    local limit = open_file_limit()
    if limit < 1200 then
      pending("needs `ulimit -n` >= 1200 to hold 1,100 files; it is " .. tostring(limit))
      return
    end
    local server = require("sora.emulator").new{ port = 0, api_key = KEY }
    local url = server:url()
    -- fill the descriptors below FD_SETSIZE, as a host with many files would
    local files = {}
    for i = 1, 1100 do files[i] = assert(io.open("/dev/null", "rb")) end
    -- Connects, lets the server accept, then sends the request (when given), so that the
    -- server has to watch the new socket with select(); returns all it received.
    local function exchange(request)
      local c = connect(url)
      server:step(0.05)
      if request then c:send(request) end
      c:settimeout(0)
      local chunks, deadline = {}, socket.gettime() + 10
      repeat
        server:step(0.02)
        local data, rerr, partial = c:receive(65536)
        chunks[#chunks + 1] = data or partial
        if rerr == "closed" then break end
      until socket.gettime() > deadline
      c:close()
      return table.concat(chunks)
    end
    local ok, refused = pcall(exchange)     -- refused at once: nothing to send
    for _, f in ipairs(files) do f:close() end
    local served_ok, served = pcall(exchange,
      (GET:gsub("\r\n\r\n$", "\r\nConnection: close\r\n\r\n")))
    server:close()
    assert(ok, refused)
    assert(served_ok, served)
    assert.matches("^HTTP/1%.1 503 Service Unavailable\r\n", refused)
    assert.matches("retry-after: 1\r\n", refused, 1, true)
    assert.matches('"type":"server_error"', refused, 1, true)
    assert.matches("^HTTP/1%.1 200 OK\r\n", served)
  end)
end)
