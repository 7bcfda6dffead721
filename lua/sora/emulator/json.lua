-- JSON for the emulator: lua-cjson decodes; this module encodes.
--
-- Why not cjson.encode: cjson 2.1.0 has no way to mark an empty table as an
-- array (an empty page must be `"data":[]`), prints large integers in %.14g
-- (2^53 becomes 9.007199254741e+15) and orders keys by hash. The encoder below
-- prints integral numbers as integers, keeps a declared key order for API
-- objects so responses read like OpenAI's, and sorts the keys of the rest.

local cjson = require "cjson.safe"

local json = {}

-- JSON null, shared with cjson so decoded nulls round-trip.
json.null = cjson.null

local ARRAY = {}   -- metatable marking a table as an array, even when empty

-- Marks t (default a new table) as a JSON array.
function json.array(t)
  return setmetatable(t or {}, ARRAY)
end

-- Returns t with its keys printed in the order of `keys` (other keys follow, sorted).
function json.ordered(keys, t)
  return setmetatable(t, { __jsonkeys = keys })
end

-- Decodes text; returns value or nil, message.
function json.decode(text)
  local ok, value = pcall(cjson.decode, text)
  if ok and value ~= nil then return value end
  return nil, "invalid JSON"
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return escapes[c] or string.format("\\u%04x", c:byte())
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', escape_char) .. '"'
end

local function encode_number(n)
  if n ~= n or n == math.huge or n == -math.huge then return "null" end
  if n == math.floor(n) and n > -2^63 and n < 2^63 then
    return string.format("%d", n)
  end
  return string.format("%.17g", n)
end

-- A table is an array when marked, or when its keys are exactly 1..n, n > 0.
local function is_array(t)
  if getmetatable(t) == ARRAY then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

local function encode_array(t, out)
  out[#out + 1] = "["
  for i = 1, #t do
    if i > 1 then out[#out + 1] = "," end
    encode_value(t[i], out)
  end
  out[#out + 1] = "]"
end

local function object_keys(t)
  local mt = getmetatable(t)
  local declared = mt and mt.__jsonkeys or {}
  local keys, seen = {}, {}
  for _, k in ipairs(declared) do
    if t[k] ~= nil then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = tostring(k) end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local function encode_object(t, out)
  out[#out + 1] = "{"
  for i, k in ipairs(object_keys(t)) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = encode_string(k)
    out[#out + 1] = ":"
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end
    encode_value(v, out)
  end
  out[#out + 1] = "}"
end

function encode_value(v, out)
  local kind = type(v)
  if kind == "string" then out[#out + 1] = encode_string(v)
  elseif kind == "number" then out[#out + 1] = encode_number(v)
  elseif kind == "boolean" then out[#out + 1] = tostring(v)
  elseif kind == "table" then
    if is_array(v) then encode_array(v, out) else encode_object(v, out) end
  else
    out[#out + 1] = "null"   -- nil, json.null and anything unencodable
  end
end

-- Encodes a Lua value as JSON text.
function json.encode(value)
  local out = {}
  encode_value(value, out)
  return table.concat(out)
end

return json
