-- Helpers for the fault, retry and security specs: temporary directories under /tmp/faults-*,
-- the emulator's synthetic body (byte i = i % 251), timing, and a throw-away TLS server.
local socket = require "socket"
local H = require "support.client"

local M = {}

-- A fresh empty directory /tmp/faults-XXXXXX; remove it with H.rmdir.
function M.tempdir()
  local p = assert(io.popen("mktemp -d /tmp/faults-XXXXXX"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir:match("^/tmp/faults%-"), "mktemp -d failed")
  return dir
end

-- Asserts that `bytes` is the emulator's synthetic body of `size` bytes: the size, and byte i
-- (from 0) equal to i % 251 at sampled positions (every 4099th byte and the edges).
local function check_size(bytes, size)
  if #bytes ~= size then error(string.format("%d bytes, expected %d", #bytes, size), 3) end
end

function M.assert_synthetic(bytes, size)
  check_size(bytes, size)
  local positions = { 0, 1, 250, 251, 252, size - 2, size - 1 }
  for i = 0, size - 1, 4099 do positions[#positions + 1] = i end
  for _, i in ipairs(positions) do
    if bytes:byte(i + 1) ~= i % 251 then
      error(string.format("byte %d is %s, expected %d", i, tostring(bytes:byte(i + 1)), i % 251), 2)
    end
  end
end

-- Every byte, for bodies that must be exact (a sink that got each byte once).
function M.assert_synthetic_exact(bytes, size)
  check_size(bytes, size)
  local pattern = {}
  for i = 0, 250 do pattern[#pattern + 1] = string.char(i) end
  local period = table.concat(pattern)
  local whole = string.rep(period, math.floor(size / 251)) .. period:sub(1, size % 251)
  if whole ~= bytes then error("the body differs from the synthetic one", 2) end
end

-- Seconds taken by fn(...), then its first two results (value, err).
function M.timed(fn, ...)
  local t = socket.gettime()
  local a, b = fn(...)
  return socket.gettime() - t, a, b
end

-- A port that was free a moment ago.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Names of files in dir that look like sora's temporary files (*.sora-*).
function M.temp_files(dir)
  local found = {}
  for _, name in ipairs(H.ls(dir)) do
    if name:find("%.sora%-") then found[#found + 1] = name end
  end
  return found
end

-- Whether a command is on the PATH (a spec that needs one asks support.tools.require_tool).
M.have = require("support.tools").have

-- A self-signed certificate for CN=localhost in dir: returns cert, key paths (or nil).
function M.make_cert(dir)
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local ok = os.execute("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1"
    .. " -keyout " .. H.shell_quote(key) .. " -out " .. H.shell_quote(cert) .. " >/dev/null 2>&1")
  if not (ok == true or ok == 0) then return nil end
  return cert, key
end

-- Starts `openssl s_server -www` on 127.0.0.1:port; returns a handle with port and stop().
function M.tls_server(dir, cert, key)
  local port = M.free_port()
  local pidfile = dir .. "/s_server.pid"
  os.execute("openssl s_server -accept 127.0.0.1:" .. port .. " -cert " .. H.shell_quote(cert)
    .. " -key " .. H.shell_quote(key) .. " -www -quiet >/dev/null 2>&1 </dev/null & echo $! >"
    .. H.shell_quote(pidfile))
  local pid = H.read(pidfile):match("%d+")
  local server = { port = port, pid = pid }
  function server.stop()
    if server.pid then os.execute("kill " .. server.pid .. " 2>/dev/null") end
    server.pid = nil
  end
  local deadline = socket.gettime() + 5
  repeat
    local conn = socket.connect("127.0.0.1", port)
    if conn then
      conn:close()
      return server
    end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  server.stop()
  error("openssl s_server did not start on port " .. port)
end

return M
