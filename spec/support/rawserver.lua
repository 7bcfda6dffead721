-- A misbehaving HTTP server for the integrity specs: a LuaSocket loop in a child process that
-- answers each request with the raw bytes a script returns, so that a spec can send what no
-- well-behaved server (the emulator included) ever would: a 206 to a request without Range,
-- chunked bodies with Content-Length, trailers, lying Content-Range headers.
--
--   local S = rawserver.start[[ return function(req, n) return "HTTP/1.1 200 OK\r\n..." end ]]
--   S.url, S:requests() (each {method, path, connection, headers = {lower-case = value}}), S:stop()
--
-- The script's function gets the request (method, path, headers, body) and its number (1, 2, ...) and returns the bytes to
-- send (nil: none) and whether to keep the connection for another request; else it is closed
-- after them. Each recorded request has the number of its connection (1, 2, ...). Scripts may call head(status_line_rest, {header
-- lines}) and synthetic(from, to) (bytes from..to-1 of the body whose byte i is i % 251).
local socket = require "socket"
local H = require "support.client"

local M = {}

local SERVER = [==[
local socket = require "socket"
-- helpers for the scripts: a response head, and the synthetic body (byte i = i % 251)
function head(status, headers)
  return "HTTP/1.1 " .. status .. "\r\n" .. table.concat(headers or {}, "\r\n")
    .. (headers and #headers > 0 and "\r\n" or "") .. "\r\n"
end
function synthetic(from, to)
  local bytes = {}
  for i = from, to - 1 do bytes[#bytes + 1] = string.char(i % 251) end
  return table.concat(bytes)
end
local respond = assert(load(io.open(arg[1], "rb"):read("*a")))()
local log_path = arg[2]
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()
local function quote(s) return string.format("%q", s) end
local n, connections = 0, 0
while true do
  local conn = server:accept()
  connections = connections + 1
  conn:settimeout(5)
  local keep = true
  while keep do
  keep = false
  local first = conn:receive("*l")
  if first then
    local req = { headers = {}, connection = connections }
    req.method, req.path = first:match("^(%S+) (%S+)")
    while true do
      local line = conn:receive("*l")
      if not line or line == "" then break end
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then req.headers[name:lower()] = value end
    end
    local length = tonumber(req.headers["content-length"] or 0)
    req.body = length > 0 and conn:receive(length) or ""
    n = n + 1
    local log = io.open(log_path, "ab")
    local fields = {}
    for k, v in pairs(req.headers) do fields[#fields + 1] = "[" .. quote(k) .. "]=" .. quote(v) end
    log:write("{method=", quote(req.method), ",path=", quote(req.path), ",connection=",
              connections, ",headers={", table.concat(fields, ","), "}},\n")
    log:close()
    local bytes
    bytes, keep = respond(req, n)
    if bytes then conn:send(bytes) end
  end
  end
  conn:close()
end
]==]

-- Starts a server running `script` (Lua source returning function(req, n) -> raw bytes).
function M.start(script)
  local dir = H.tempdir()
  local self = { dir = dir, log = dir .. "/requests.lua" }
  H.write(dir .. "/server.lua", SERVER)
  H.write(dir .. "/respond.lua", script)
  H.write(self.log, "")
  local lua = os.getenv("SORA_EMULATOR_LUA") or "lua5.4"
  os.execute(lua .. " " .. H.shell_quote(dir .. "/server.lua") .. " " .. H.shell_quote(dir .. "/respond.lua")
    .. " " .. H.shell_quote(self.log) .. " >" .. H.shell_quote(dir .. "/port") .. " 2>"
    .. H.shell_quote(dir .. "/stderr") .. " & echo $! >" .. H.shell_quote(dir .. "/pid"))
  self.pid = H.read(dir .. "/pid"):match("%d+")
  local deadline = socket.gettime() + 5
  repeat
    local port = H.exists(dir .. "/port") and H.read(dir .. "/port"):match("%d+")
    if port then
      self.port = tonumber(port)
      self.url = "http://127.0.0.1:" .. port .. "/v1"
      return setmetatable(self, { __index = M })
    end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  os.execute("kill " .. self.pid)
  error("the raw server did not start: " .. H.read(dir .. "/stderr"))
end

-- The requests received so far, in order.
function M:requests()
  return assert((loadstring or load)("return {" .. H.read(self.log) .. "}"))() -- 5.1: loadstring
end

function M:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  H.rmdir(self.dir)
end

return M
