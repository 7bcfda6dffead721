-- Helpers for the task specs: driving a client by hand with step(0), timing, and the kernel's
-- view of TCP connections (to see that a cancelled transfer's connection is really closed).
local socket = require "socket"

local M = {}

M.now = socket.gettime

-- Calls client:step(0) until done() is true or `limit` seconds pass, resting `rest` seconds
-- (default 2 ms) between steps, as a host frame loop would. Returns a record:
-- { steps = n, longest = seconds of the slowest step(0), elapsed = seconds, finished = bool }.
function M.drive(client, done, limit, rest)
  limit, rest = limit or 10, rest or 0.002
  local start, steps, longest = M.now(), 0, 0
  while not done() and M.now() - start < limit do
    local t = M.now()
    client:step(0)
    local took = M.now() - t
    if took > longest then longest = took end
    steps = steps + 1
    socket.sleep(rest)
  end
  return { steps = steps, longest = longest, elapsed = M.now() - start, finished = done() }
end

-- Times fn(...); returns the seconds it took, then its results.
function M.timed(fn, ...)
  local t = M.now()
  local results = { n = select("#", ...), fn(...) }
  return M.now() - t, results
end

-- The port of a base URL such as http://127.0.0.1:40123/v1.
function M.port(url)
  return tonumber(url:match("^https?://[^/:]+:(%d+)"))
end

local STATES = {
  ["01"] = "ESTABLISHED", ["02"] = "SYN_SENT", ["03"] = "SYN_RECV", ["04"] = "FIN_WAIT1",
  ["05"] = "FIN_WAIT2", ["06"] = "TIME_WAIT", ["07"] = "CLOSE", ["08"] = "CLOSE_WAIT",
  ["09"] = "LAST_ACK", ["0A"] = "LISTEN", ["0B"] = "CLOSING",
}

-- Whether the kernel's connection tables can be read here.
function M.can_see_sockets()
  local f = io.open("/proc/net/tcp", "r")
  if f then f:close() end
  return f ~= nil
end

-- The server side of the TCP connections on `port`: a list of { peer = port, state = name }.
-- The tables list every TCP socket of the machine (thousands on a shared one): the port is
-- found by string.gmatch, in C, not line by line in Lua, where one call took over 10 s under
-- the gcstress pass (a collection every 1,000 instructions).
function M.server_sockets(port)
  local found = {}
  local local_port = string.format(":%04X ", port)
  for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local f = io.open(file, "r")
    if f then
      local text = f:read("*a")
      f:close()
      for rport, st in text:gmatch("%x+" .. local_port .. "%x+:(%x+) (%x%x)") do
        found[#found + 1] = { peer = tonumber(rport, 16), state = STATES[st:upper()] or st }
      end
    end
  end
  return found
end

-- Peer ports of the server-side connections on `port` that are still open (established, or
-- half-closed by the client but not yet by the server).
function M.open_peers(port)
  local peers = {}
  for _, s in ipairs(M.server_sockets(port)) do
    if s.state == "ESTABLISHED" or s.state == "CLOSE_WAIT" then peers[s.peer] = s.state end
  end
  return peers
end

-- Polls pred() every 10 ms for at most `limit` seconds; returns its last value.
function M.eventually(pred, limit)
  local deadline = M.now() + (limit or 2)
  local v = pred()
  while not v and M.now() < deadline do
    socket.sleep(0.01)
    v = pred()
  end
  return v
end

-- true on PUC Lua 5.1 (not LuaJIT), where a yield cannot cross a for-in iterator or pcall.
M.puc51 = _VERSION == "Lua 5.1" and not rawget(_G, "jit")

-- true where Lua's own assert raises its message as given, tables included (5.3 and later,
-- LuaJIT); PUC 5.1 and 5.2 accept only a string there. Probed, not read from _VERSION.
M.assert_keeps_objects = type(select(2, pcall(_G.assert, false, {}))) == "table"

return M
