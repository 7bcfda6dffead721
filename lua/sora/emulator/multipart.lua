-- multipart/form-data parsing (RFC 7578), enough for what HTTP clients send:
-- parts with Content-Disposition name and optional filename, and Content-Type.
--
-- The body is parsed as it arrives (multipart.reader), so an upload of any size costs a
-- bounded amount of memory: a file part keeps its first FILE_HEAD bytes (enough to sniff its
-- type and read an image's size, which lie at the start) and counts the rest; fields and part
-- heads are held whole, within the request's held budget. Every byte is scanned once.

local http = require "sora.emulator.http"

local multipart = {}

local FILE_HEAD = 1024 * 1024     -- bytes kept of each file part
local MAX_PARTS = 100
local MAX_PART_HEAD = 64 * 1024   -- a part's header lines together
local MAX_PADDING = 1024          -- what may follow a delimiter before its line ends
local MAX_BOUNDARY = 70

multipart.FILE_HEAD = FILE_HEAD

-- Returns the boundary of a multipart/form-data Content-Type, or nil.
function multipart.boundary(content_type)
  if not content_type or not content_type:lower():find("^%s*multipart/form%-data") then
    return nil
  end
  local boundary = content_type:match('[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]="([^"]+)"')
      or content_type:match("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)")
  if boundary and #boundary <= MAX_BOUNDARY then return boundary end   -- RFC 2046: 1..70
  return nil
end

-- Reads a parameter (name, filename) of a Content-Disposition value.
-- The filename check is anchored so `name=` never matches inside `filename=`.
local function disposition_param(value, param)
  local v = value:match(";%s*" .. param .. '="([^"]*)"')
      or value:match(";%s*" .. param .. "=([^;]+)")
  return v and http.trim(v)
end

local Reader = {}
Reader.__index = Reader

--- Returns a body sink (see http.read_request) parsing a multipart body as it arrives:
-- limit is the largest body, held the most it may hold in memory. The parts are
-- { name, filename, content_type, headers, data, size } (data is the first FILE_HEAD bytes
-- of a file part, size its whole length); write() refuses (413) a body whose fields outgrow
-- the held budget, and (400) a part head over MAX_PART_HEAD.
function multipart.reader(boundary, limit, held)
  return setmetatable({
    limit = limit, room = held, held = held, delimiter = "--" .. boundary,
    needle = "\r\n--" .. boundary, state = "preamble", buf = "", pos = 1, parts = {},
  }, Reader)
end

-- Marks the body invalid: the rest is read and ignored.
function Reader:fail(message)
  self.failed = self.failed or message
  self.state = "ignore"
end

-- Takes n bytes of the held budget; false when they do not fit.
function Reader:hold(n)
  if n > self.room then return false end
  self.room = self.room - n
  return true
end

-- Adds bytes first..last of buf to the current part: all of a field's, the first FILE_HEAD
-- of a file's (the rest is only counted, never copied).
function Reader:emit(buf, first, last)
  local part, n = self.part, last - first + 1
  part.size = part.size + n
  local keep = n
  if part.filename then keep = math.max(0, math.min(n, FILE_HEAD - part.kept, self.room)) end
  if keep == 0 then return true end
  if not self:hold(keep) then
    return nil, string.format("the form's fields exceed %d bytes", self.held), 413
  end
  part.pieces[#part.pieces + 1] = buf:sub(first, first + keep - 1)
  part.kept = part.kept + keep
  return true
end

local function parse_head(head)
  local part = { headers = {}, pieces = {}, kept = 0, size = 0 }
  for line in head:gmatch("[^\r\n]+") do
    local name, value = http.header_line(line)
    if name then part.headers[name] = value end
  end
  local disposition = part.headers["content-disposition"] or ""
  part.name = disposition_param(disposition, "name")
  part.filename = disposition_param(disposition, "filename")
  part.content_type = part.headers["content-type"]
  return part
end

-- One step of the parser over the buffer from pos; false when it needs more bytes.
function Reader:step()
  local buf, pos, state = self.buf, self.pos, self.state
  if state == "preamble" then
    local at = buf:find(self.delimiter, pos, true)
    if not at then
      self.pos = math.max(pos, #buf - #self.delimiter + 2)
      return false
    end
    self.pos, self.state = at + #self.delimiter, "delimiter"
  elseif state == "delimiter" then
    if #buf - pos + 1 < 2 then return false end
    if buf:sub(pos, pos + 1) == "--" then self.state = "epilogue"; return true end
    local eol = buf:find("\r\n", pos, true)
    if not eol then
      if #buf - pos > MAX_PADDING then self:fail("truncated") end
      return false
    end
    if #self.parts >= MAX_PARTS then self:fail("more than " .. MAX_PARTS .. " parts"); return true end
    self.pos, self.state = eol + 2, "head"
    self.head_pieces, self.head_size = {}, 0
  elseif state == "head" then
    local stop = buf:find("\r\n\r\n", pos, true)
    -- the head so far moves to head_pieces but for 3 bytes that may start its end, so that
    -- the next piece neither copies nor rescans it
    local upto = stop and stop - 1 or math.max(pos - 1, #buf - 3)
    if upto >= pos then
      self.head_pieces[#self.head_pieces + 1] = buf:sub(pos, upto)
      self.head_size = self.head_size + upto - pos + 1
      self.pos = upto + 1
    end
    if self.head_size > MAX_PART_HEAD then
      return nil, string.format("a part's headers exceed %d bytes", MAX_PART_HEAD), 400
    end
    if not stop then return false end
    local head = table.concat(self.head_pieces)
    if not self:hold(#head) then return nil, "the form's part headers are too large", 413 end
    self.part = parse_head(head)
    if not self.part.name then self:fail("part without a name"); return true end
    self.pos, self.state = stop + 4, "data"
  elseif state == "data" then
    local at = buf:find(self.needle, pos, true)
    -- without a delimiter, all but what could be the start of one is data
    local stop = at and at - 1 or #buf - #self.needle + 1
    if stop >= pos then
      local ok, err, status = self:emit(buf, pos, stop)
      if not ok then return nil, err, status end
      self.pos = stop + 1
    end
    if not at then return false end
    local part = self.part
    part.data, part.pieces = table.concat(part.pieces), nil
    self.parts[#self.parts + 1] = part
    self.pos, self.state = at + #self.needle, "delimiter"
  else                                    -- "epilogue", "ignore": the rest is not kept
    self.pos = #buf + 1
    return false
  end
  return true
end

-- Takes the next piece of the body; true, or nil, message, status to refuse the request.
function Reader:write(bytes)
  self.buf = self.buf:sub(self.pos) .. bytes
  self.pos = 1
  while true do
    local more, err, status = self:step()
    if more == nil then return nil, err, status end
    if not more then return true end
  end
end

-- The parts, or nil, message when the body was not valid multipart.
function Reader:parts_read()
  if self.failed then return nil, self.failed end
  if self.state == "epilogue" then return self.parts end
  if self.state == "preamble" then return nil, "no opening boundary" end
  return nil, "no closing boundary"
end

-- The end of the body: req.body is then "" and req.parts the parts, or nil when the body
-- was not valid multipart (the endpoint answers 400).
function Reader:finish()
  return "", (self:parts_read())
end

-- Parses a whole body; returns the parts or nil, message (see multipart.reader).
function multipart.parse(body, boundary)
  local reader = multipart.reader(boundary, #body, math.huge)
  local ok, err = reader:write(body)
  if not ok then return nil, err end
  return reader:parts_read()
end

return multipart
