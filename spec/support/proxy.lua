-- Test helper: Debian's tinyproxy on a free loopback port, in the foreground, with its own
-- configuration and log in a temporary directory; stopped by its PID.
--
--   local proxy = require "support.proxy"
--   local P = proxy.start{ connect_ports = { E_port }, user = "u", password = "p" }
--   ... P.url, P.port, P:log(), P:requests() ...
--   P:stop()
local socket = require "socket"
local H = require "support.client"

local M = {}

local Proxy = {}
Proxy.__index = Proxy

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function config(dir, port, opts)
  local lines = {
    "Port " .. port, "Listen 127.0.0.1", "Timeout 30", "MaxClients 50", "Allow 127.0.0.1",
    'LogFile "' .. dir .. '/tinyproxy.log"', "LogLevel Info",
  }
  for _, p in ipairs(opts.connect_ports or {}) do lines[#lines + 1] = "ConnectPort " .. p end
  if opts.user then lines[#lines + 1] = "BasicAuth " .. opts.user .. " " .. opts.password end
  return table.concat(lines, "\n") .. "\n"
end

-- Starts tinyproxy; errors clearly if it does not accept connections within 5 s.
function M.start(opts)
  opts = opts or {}
  local dir = H.tempdir()
  local port = free_port()
  H.write(dir .. "/tinyproxy.conf", config(dir, port, opts))
  os.execute("tinyproxy -d -c " .. H.shell_quote(dir .. "/tinyproxy.conf") .. " >" ..
    H.shell_quote(dir .. "/stderr") .. " 2>&1 </dev/null & echo $! >" .. H.shell_quote(dir .. "/pid"))
  local self = setmetatable({ dir = dir, port = port, pid = H.read(dir .. "/pid"):match("%d+"),
    url = "http://127.0.0.1:" .. port }, Proxy)
  local deadline = socket.gettime() + 5
  repeat
    local conn = socket.connect("127.0.0.1", port)
    if conn then
      conn:close()
      return self
    end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  local why = H.read(dir .. "/stderr")
  self:stop()
  error("tinyproxy did not start on port " .. port .. ": " .. why)
end

function Proxy:log()
  return H.exists(self.dir .. "/tinyproxy.log") and H.read(self.dir .. "/tinyproxy.log") or ""
end

-- The request lines tinyproxy logged ("GET http://host:port/path HTTP/1.1",
-- "CONNECT host:port HTTP/1.1"), in order.
function Proxy:requests()
  local found = {}
  for line in self:log():gmatch("[^\n]+") do
    local request = line:match("Request %(file descriptor %d+%): (.*)$")
    if request then found[#found + 1] = request end
  end
  return found
end

function Proxy:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  H.rmdir(self.dir)
end

return M
