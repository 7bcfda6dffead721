-- A small HTTP/1.1 server core on LuaSocket: one coroutine per connection,
-- scheduled by socket.select, so any number of clients (and a stalled one)
-- are served side by side by a single thread.
--
-- A connection coroutine yields ("r", sock) to wait until sock is readable,
-- ("w", sock) until it is writable, or ("t", when) to sleep until a time.

local socket = require "socket"

local http = {}

local CHUNK = 64 * 1024

-- What a request may be. The head's limits are fixed (as nginx's and Go's are); the body's
-- come from the emulator's options (max_body_bytes, max_held_bytes).
http.limits = {
  request_line = 16 * 1024,     -- longer: 414
  header_line = 32 * 1024,      -- longer: 431
  header_count = 100,           -- more: 431
  head_bytes = 64 * 1024,       -- request line and headers together; more: 431
  chunk_line = 1024,            -- a chunk-size line with its extensions
  -- The largest body: OpenAI's own per-file upload limit (the Files API), since the Videos
  -- API states none for its video uploads.
  body_bytes = 512 * 1024 * 1024,
  -- The most of a request held in memory: a whole JSON body (the spec's largest, a 20 MiB
  -- image_url data URL and a 32,000-character prompt, fits), multipart fields and part heads.
  held_bytes = 32 * 1024 * 1024,
}

http.reasons = {
  [100] = "Continue", [200] = "OK", [206] = "Partial Content",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [413] = "Payload Too Large", [414] = "URI Too Long",
  [416] = "Range Not Satisfiable", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}

---------------------------------------------------------------------------
-- Connections: buffered, non-blocking reads and writes that yield.

local Conn = {}
Conn.__index = Conn

local function new_conn(sock)
  sock:settimeout(0)
  -- Without nodelay, a head and body sent apart can wait out delayed ACKs.
  sock:setoption("tcp-nodelay", true)
  return setmetatable({ sock = sock, buf = "", pos = 1, closed = false }, Conn)
end

-- Reads whatever has arrived into the buffer; false once the peer has gone. The readers
-- below take everything buffered before they fill again, so nothing is copied twice.
function Conn:fill()
  while not self.closed do
    local data, err, partial = self.sock:receive(CHUNK)
    local got = data or partial
    if got and #got > 0 then
      self.buf = self.buf:sub(self.pos) .. got
      self.pos = 1
      return true
    end
    if err ~= "timeout" then self.closed = true; return false end
    coroutine.yield("r", self.sock)
  end
  return false
end

-- Returns the next line without its line ending; nil, "closed" when the peer closed, nil,
-- "too long" as soon as the line exceeds limit bytes. Each byte is looked at once.
function Conn:read_line(limit)
  limit = limit or http.limits.header_line
  local pieces, size = {}, 0
  while true do
    local nl = self.buf:find("\n", self.pos, true)
    local stop = (nl or #self.buf + 1) - 1
    size = size + stop - self.pos + 1
    if size > limit + 1 then return nil, "too long" end    -- + 1: a CR before the LF
    if stop >= self.pos then pieces[#pieces + 1] = self.buf:sub(self.pos, stop) end
    self.pos = stop + 1
    if nl then
      self.pos = nl + 1
      local line = table.concat(pieces)
      if line:byte(-1) == 13 then line = line:sub(1, -2) end
      if #line > limit then return nil, "too long" end
      return line
    end
    if not self:fill() then return nil, "closed" end
  end
end

-- Returns up to n (> 0) bytes, as many as have arrived; nil when the peer closed first.
function Conn:read_some(n)
  if self.pos > #self.buf and not self:fill() then return nil end
  local piece = self.buf:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + #piece
  return piece
end

-- Returns exactly n bytes, or nil when the peer closed first.
function Conn:read(n)
  local parts, have = {}, 0
  while have < n do
    local piece = self:read_some(n - have)
    if not piece then return nil end
    parts[#parts + 1] = piece
    have = have + #piece
  end
  return table.concat(parts)
end

-- Sends all of data; false when the peer has gone.
function Conn:send(data)
  local i = 1
  while i <= #data do
    if self.closed then return false end
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      coroutine.yield("w", self.sock)
    else
      self.closed = true
      return false
    end
  end
  return true
end

function Conn:sleep(seconds)
  coroutine.yield("t", socket.gettime() + seconds)
end

-- Reads and discards until the peer hangs up: how a stalled server looks.
function Conn:drain()
  while self:fill() do self.buf, self.pos = "", 1 end
end

-- Stops sending and discards what the peer still sends, up to max bytes or its close: a
-- client still sending a refused body then reads the answer, which a close with unread
-- bytes (a reset) could destroy in flight.
function Conn:linger(max)
  if self.closed then return end
  self.sock:shutdown("send")
  local left = max - (#self.buf - self.pos + 1)
  while left > 0 and self:fill() do
    left = left - #self.buf
    self.buf, self.pos = "", 1
  end
end

-- Closes the connection; with reset, abortively (TCP RST instead of FIN). `closed` also
-- means the peer has gone, when our end still needs closing: so the socket has its own flag.
function Conn:close(reset)
  if self.sock_closed then return end
  if reset and not self.closed then
    self.sock:setoption("linger", { on = true, timeout = 0 })
  end
  self.closed, self.sock_closed = true, true
  self.sock:close()
end

-- A connection over a socket the emulator opened itself (webhooks.lua's outgoing posts).
http.connection = new_conn

---------------------------------------------------------------------------
-- Requests.

-- Percent-decodes a path segment.
function http.unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Decodes a query-string component, where "+" also means a space.
local function unescape(s)
  return http.unescape((s:gsub("+", " ")))
end

-- Decodes a query string into a table (the last of repeated names wins).
function http.parse_query(qs)
  local query = {}
  for pair in (qs or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    query[unescape(k)] = unescape(v)
  end
  return query
end

-- Returns s without leading and trailing whitespace, in linear time (a pattern such as
-- "^%s*(.-)%s*$" tries every split of a run of spaces: quadratic).
function http.trim(s)
  local first = s:find("%S")
  if not first then return "" end
  return s:match("^.*%S", first)
end

-- Splits a header line into its lower-case name and trimmed value; nil when it is none: the
-- name a token (RFC 9110 5.1), the value without NUL or a bare CR, which a recipient must
-- refuse (RFC 9110 5.5, RFC 9112 2.2; nginx answers 400). A tab and obs-text stay allowed.
function http.header_line(line)
  local name, value = line:match("^([%w!#$%%&'*+.^_`|~-]+):(.*)$")
  if not name or value:find("[%z\r]") then return nil end
  return name:lower(), http.trim(value)
end

local HEAD_TOO_LARGE = 431

-- Reads the request line and headers; nil, message, status when they are not acceptable.
local function read_head(conn)
  local limits = http.limits
  local line, err
  repeat                                   -- tolerate blank lines between requests
    line, err = conn:read_line(limits.request_line)
    if not line then
      if err == "too long" then
        return nil, string.format("the request line exceeds %d bytes", limits.request_line), 414
      end
      return nil, err
    end
  until line ~= ""
  local method, target, version, major = line:match("^(%u+) (%S+) HTTP/((%d)%.%d)$")
  if not method or target:find("[%z\r]") then return nil, "bad request line", 400 end
  -- another major version is another protocol (nginx: 505); 1.x is read as 1.1 (RFC 9110 2.5)
  if major ~= "1" then
    return nil, string.format("HTTP/%s is not supported (HTTP/1.1 is)", version), 505
  end
  local req = { method = method, target = target, version = version, headers = {} }
  local size, count = #line, 0
  while true do
    local room = math.min(limits.header_line, limits.head_bytes - size)
    line, err = conn:read_line(room)
    if not line then
      if err ~= "too long" then return nil, err end
      if room < limits.header_line then
        return nil, string.format("the request's headers exceed %d bytes", limits.head_bytes),
          HEAD_TOO_LARGE
      end
      return nil, string.format("a header line exceeds %d bytes", limits.header_line),
        HEAD_TOO_LARGE
    end
    if line == "" then break end
    size, count = size + #line, count + 1
    if count > limits.header_count then
      return nil, string.format("more than %d header lines", limits.header_count), HEAD_TOO_LARGE
    end
    local name, value = http.header_line(line)
    if not name then return nil, "bad header", 400 end
    local old = req.headers[name]
    req.headers[name] = old and (old .. ", " .. value) or value
  end
  req.path, req.query_string = target:match("^([^?]*)%??(.*)$")
  req.query = http.parse_query(req.query_string)
  return req
end

local function too_large(limit)
  return nil, string.format("the request body exceeds %d bytes", limit), 413
end

-- A body sink that holds the body in memory (up to limit bytes) and returns it whole.
function http.held_sink(limit)
  local parts = {}
  return {
    limit = limit,
    write = function(_, bytes) parts[#parts + 1] = bytes; return true end,
    finish = function() return table.concat(parts) end,
  }
end

-- Passes n body bytes from conn to sink, a piece at a time.
local function pass(conn, sink, n)
  while n > 0 do
    local piece = conn:read_some(math.min(n, CHUNK))
    if not piece then return nil, "closed" end
    local ok, err, status = sink:write(piece)
    if not ok then return nil, err, status end
    n = n - #piece
  end
  return true
end

local function read_chunked(conn, sink)
  local total = 0
  while true do
    local line = conn:read_line(http.limits.chunk_line)
    -- at most 13 significant hex digits (4 TiB), so that no Lua reads the size wrapped or
    -- rounded
    local digits = line and line:match("^%s*0*(%x+)")
    if not digits or #digits > 13 then return nil, "bad chunk", 400 end
    local size = tonumber(digits, 16)
    if size == 0 then break end
    total = total + size
    if total > sink.limit then return too_large(sink.limit) end
    local ok, err, status = pass(conn, sink, size)
    if not ok then return nil, err, status end
    if conn:read_line(http.limits.chunk_line) ~= "" then return nil, "bad chunk", 400 end
  end
  local size = 0
  repeat                                   -- trailers, up to the blank line
    local line = conn:read_line(http.limits.header_line)
    if not line then return nil, "closed" end
    size = size + #line
    if size > http.limits.head_bytes then return nil, "trailers too large", HEAD_TOO_LARGE end
  until line == ""
  return true
end

-- Reads the body into the sink chosen for the request; nil, message, status when it is
-- refused. A body over the sink's limit is refused before a byte of it is read.
local function read_body(conn, req, sink)
  local te = req.headers["transfer-encoding"]
  local length = req.headers["content-length"]
  local chunked = te ~= nil
  -- One framing only (RFC 9112 6.1, 6.3): chunked applied once is the coding read; any other
  -- (gzip, xchunked, chunked twice) is 501, and Transfer-Encoding beside Content-Length, a
  -- smuggling attempt, 400: both close the connection, so nothing behind them is served.
  if te and te:lower():match("^[ \t]*(.-)[ \t]*$") ~= "chunked" then
    return nil, "the transfer coding '" .. te:sub(1, 40) .. "' is not supported", 501
  end
  if te and length then return nil, "both Transfer-Encoding and Content-Length", 400 end
  if not chunked and not length then return "" end
  if length and not length:match("^%d+$") then return nil, "bad length", 400 end
  length = tonumber(length)
  if not chunked and length > sink.limit then return too_large(sink.limit) end
  if (req.headers["expect"] or ""):lower() == "100-continue"
      and (chunked or length > 0) then
    -- libcurl waits (1 s) for this before sending bodies over 1 MB.
    conn:send("HTTP/1.1 100 Continue\r\n\r\n")
  end
  local ok, err, status
  if chunked then
    ok, err, status = read_chunked(conn, sink)
  else
    ok, err, status = pass(conn, sink, length)
  end
  if not ok then return nil, err, status end
  return sink:finish()
end

-- Reads one request (head and body); nil, reason, status when there is none: status is
-- the answer due (400, 413, 414, 431, 501, 505), nil when the peer has gone. body_sink(req), when
-- given, returns the sink for a request's body ({ limit, write(self, bytes) -> true | nil,
-- message, status; finish(self) -> body[, parts] }), whose finish gives req.body and
-- req.parts; by default the body is held whole, up to http.limits.held_bytes.
function http.read_request(conn, body_sink)
  local req, err, status = read_head(conn)
  if not req then return nil, err, status end
  local sink = body_sink and body_sink(req) or http.held_sink(http.limits.held_bytes)
  local body, parts
  body, parts, status = read_body(conn, req, sink)
  if not body then return nil, parts, status end
  req.body, req.parts = body, parts
  local connection = (req.headers["connection"] or ""):lower()
  if req.version == "1.0" then
    req.keep_alive = connection:find("keep%-alive") ~= nil
  else
    req.keep_alive = connection:find("close") == nil
  end
  return req
end

---------------------------------------------------------------------------
-- Responses. res = { status, headers = { lower-case name = value }, body }
-- where body is a string or a source { length = N, read = function(pos, n) }
-- returning n bytes from 0-based offset pos (so huge bodies are never built).

-- Returns a source serving a string.
function http.string_source(s)
  return { length = #s, read = function(pos, n) return s:sub(pos + 1, pos + n) end }
end

-- Returns a source serving bytes [first, last] (0-based) of another source.
function http.slice_source(src, first, last)
  return {
    length = last - first + 1,
    read = function(pos, n) return src.read(first + pos, n) end,
  }
end

local function as_source(body)
  if type(body) == "table" then return body end
  return http.string_source(body or "")
end

local function head_text(res, length)
  local lines = { string.format("HTTP/1.1 %d %s", res.status,
    http.reasons[res.status] or "Status") }
  local names = {}
  for name in pairs(res.headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if name ~= "content-length" then
      lines[#lines + 1] = name .. ": " .. tostring(res.headers[name])
    end
  end
  lines[#lines + 1] = "content-length: " .. string.format("%d", length)
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Writes res. opts.limit stops after that many body bytes (for faults);
-- opts.declared overrides the Content-Length; opts.head omits the body.
-- Returns true when the whole response went out.
function http.write_response(conn, res, opts)
  opts = opts or {}
  res.headers = res.headers or {}
  local src = as_source(res.body)
  local head = head_text(res, opts.declared or src.length)
  local limit = src.length
  if opts.head then limit = 0 end
  if opts.limit and opts.limit < limit then limit = opts.limit end
  -- The head goes out with the first piece of body, in one write.
  local first = math.min(limit, CHUNK)
  if not conn:send(head .. src.read(0, first)) then return false end
  local pos = first
  while pos < limit do
    local piece = src.read(pos, math.min(CHUNK, limit - pos))
    if not conn:send(piece) then return false end
    pos = pos + #piece
  end
  return limit == src.length or (opts.head and true)
end

---------------------------------------------------------------------------
-- The loop: accepts connections and runs one coroutine per connection.

local Loop = {}
Loop.__index = Loop

-- select() handles descriptors below FD_SETSIZE only.
http.SETSIZE = socket._SETSIZE or 1024
-- Open connections by default: room below FD_SETSIZE for stdio, the listener and files.
http.MAX_CONNECTIONS = http.SETSIZE - 16

-- Returns a loop serving listener; serve(conn) runs in each connection's coroutine. At most
-- max_connections are open at once: beyond that the loop stops accepting, and clients wait
-- in the listen backlog until a connection closes.
function http.loop(listener, serve, on_error, max_connections)
  listener:settimeout(0)
  return setmetatable({
    listener = listener, serve = serve, on_error = on_error,
    max_connections = math.min(max_connections or http.MAX_CONNECTIONS, http.MAX_CONNECTIONS),
    readers = {}, writers = {}, sleepers = {}, conns = {},
    open = 0, accepted = 0, refused = 0, max_open = 0,
  }, Loop)
end

-- Zeroes the counters (open connections stay counted).
function Loop:reset_counters()
  self.accepted, self.refused, self.max_open = 0, 0, self.open
end

function Loop:forget(conn)
  if self.conns[conn] then
    self.conns[conn] = nil
    self.open = self.open - 1
  end
end

function Loop:resume(co, conn)
  local ok, kind, what = coroutine.resume(co)
  if not ok then
    if self.on_error then self.on_error(kind) end
    conn:close()
  end
  if coroutine.status(co) == "dead" then
    conn:close()
    self:forget(conn)
  elseif kind == "r" then
    self.readers[what] = { co = co, conn = conn }
  elseif kind == "w" then
    self.writers[what] = { co = co, conn = conn }
  elseif kind == "t" then
    self.sleepers[#self.sleepers + 1] = { when = what, co = co, conn = conn }
  end
end

local BUSY_BODY = '{"error":{"message":"The server is overloaded, please try again later.",'
  .. '"type":"server_error","param":null,"code":null}}'
local BUSY = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
  .. "connection: close\r\nretry-after: 1\r\ncontent-length: " .. #BUSY_BODY .. "\r\n\r\n"
  .. BUSY_BODY

-- A socket whose descriptor select() cannot watch (the host holds many files): it gets a
-- 503 in one non-blocking write, which fits in any socket buffer, and a close.
local function refuse(sock)
  sock:settimeout(0)
  sock:send(BUSY)
  sock:close()
end

function Loop:accept()
  while self.open < self.max_connections do
    local sock = self.listener:accept()
    if not sock then return end
    self.accepted = self.accepted + 1
    if sock:getfd() >= http.SETSIZE then
      self.refused = self.refused + 1
      refuse(sock)
    else
      local conn = new_conn(sock)
      self.conns[conn] = true
      self.open = self.open + 1
      if self.open > self.max_open then self.max_open = self.open end
      local serve = self.serve
      self:resume(coroutine.create(function() serve(conn) end), conn)
    end
  end
end

-- Wakes sleepers whose time has come; returns seconds until the next one.
function Loop:wake(now)
  local due, later, next_wake = {}, {}, nil
  for _, s in ipairs(self.sleepers) do
    if s.when <= now then
      due[#due + 1] = s
    else
      later[#later + 1] = s
      next_wake = math.min(next_wake or s.when, s.when)
    end
  end
  self.sleepers = later
  for _, s in ipairs(due) do self:resume(s.co, s.conn) end
  return next_wake and (next_wake - now)
end

local function keys(t, first)
  local list = { first }
  for k in pairs(t) do list[#list + 1] = k end
  return list
end

-- The sockets to watch for reading: the listener only while there is room for a connection.
function Loop:watched()
  return keys(self.readers, self.open < self.max_connections and self.listener or nil)
end

-- Serves for at most timeout seconds (one pass when timeout is 0).
function Loop:step(timeout)
  local deadline = socket.gettime() + (timeout or 0)
  repeat
    local now = socket.gettime()
    local wait = math.max(0, deadline - now)
    local until_sleeper = self:wake(now)
    if until_sleeper then wait = math.min(wait, until_sleeper) end
    local readable, writable = socket.select(self:watched(), keys(self.writers), wait)
    for _, sock in ipairs(readable) do
      if sock == self.listener then
        self:accept()
      elseif self.readers[sock] then
        local w = self.readers[sock]
        self.readers[sock] = nil
        self:resume(w.co, w.conn)
      end
    end
    for _, sock in ipairs(writable) do
      local w = self.writers[sock]
      if w then
        self.writers[sock] = nil
        self:resume(w.co, w.conn)
      end
    end
  until self.stopped or socket.gettime() >= deadline
end

-- Runs fn in a coroutine of the loop that serves no connection (webhook deliveries): it
-- yields as a connection's coroutine does.
local NO_CONNECTION = { close = function() end }
function Loop:spawn(fn)
  self:resume(coroutine.create(fn), NO_CONNECTION)
end

-- Ends the wait of whatever coroutine waits for sock to be readable or writable: it resumes
-- at once and finds its connection closed. A deadline ends a wait so (select has none).
function Loop:interrupt(sock)
  local waiter = self.readers[sock] or self.writers[sock]
  self.readers[sock], self.writers[sock] = nil, nil
  if waiter then self:resume(waiter.co, waiter.conn) end
end

-- Closes the listener and every open connection.
function Loop:close()
  self.stopped = true
  for conn in pairs(self.conns) do conn:close() end
  self.open = 0
  self.conns, self.readers, self.writers, self.sleepers = {}, {}, {}, {}
  self.listener:close()
end

return http
