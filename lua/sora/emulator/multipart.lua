-- multipart/form-data parsing (RFC 7578), enough for what HTTP clients send:
-- parts with Content-Disposition name and optional filename, and Content-Type.

local multipart = {}

-- Returns the boundary of a multipart/form-data Content-Type, or nil.
function multipart.boundary(content_type)
  if not content_type or not content_type:lower():find("^%s*multipart/form%-data") then
    return nil
  end
  return content_type:match('[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]="([^"]+)"')
      or content_type:match("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)")
end

-- Reads a parameter (name, filename) of a Content-Disposition value.
-- The filename check is anchored so `name=` never matches inside `filename=`.
local function disposition_param(value, param)
  local v = value:match(";%s*" .. param .. '="(.-)"')
      or value:match(";%s*" .. param .. "=([^;]+)")
  return v
end

local function parse_part(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local part = { headers = {} }
  for line in raw:sub(1, head_end - 1):gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then part.headers[name:lower()] = value end
  end
  local disposition = part.headers["content-disposition"] or ""
  part.name = disposition_param(disposition, "name")
  part.filename = disposition_param(disposition, "filename")
  part.content_type = part.headers["content-type"]
  part.data = raw:sub(head_end + 4)
  return part
end

-- Parses body; returns an array of parts { name, filename, content_type, data }
-- or nil, message when the body is not valid multipart.
function multipart.parse(body, boundary)
  local delimiter = "--" .. boundary
  local parts = {}
  local pos = body:find(delimiter, 1, true)
  if not pos then return nil, "no opening boundary" end
  pos = pos + #delimiter
  while true do
    if body:sub(pos, pos + 1) == "--" then return parts end   -- closing delimiter
    local start = body:find("\r\n", pos, true)
    if not start then return nil, "truncated" end
    local stop = body:find("\r\n" .. delimiter, start, true)
    if not stop then return nil, "no closing boundary" end
    local part = parse_part(body:sub(start + 2, stop - 1))
    if not part or not part.name then return nil, "part without a name" end
    parts[#parts + 1] = part
    pos = stop + 2 + #delimiter
  end
end

return multipart
