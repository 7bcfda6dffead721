-- The Idempotency-Key header, honoured as a gateway implementing the IETF httpapi draft
-- (draft-ietf-httpapi-idempotency-key-header) would: a create-type POST whose key was seen in
-- the last 24 h with the same body is answered with the first answer and makes nothing; with
-- another body it is refused (422). OpenAI's API ignores the header: the config switch
-- `idempotency = false` makes the emulator do the same.
--
-- Whatever the switch, every video (or character) made by a create-type POST is counted by
-- its key and by its body, so that tests and the soak can see how many were made for one job:
-- GET /__emulator/creates.

local json = require "sora.emulator.json"
local sha256 = require "sora.emulator.sha256"
local errors = require "sora.emulator.errors"

local idempotency = {}

local TTL = 24 * 3600      -- seconds a key is remembered, as the draft suggests
local MAX_KEYS = 100000    -- remembered keys (and counted creates) kept at most, oldest go first

--- The request's key: the draft's sf-string ("...") or a bare value, trimmed; nil when absent
-- or empty.
function idempotency.key(req)
  local value = req.headers["idempotency-key"]
  if type(value) ~= "string" then return nil end
  value = value:match("^%s*(.-)%s*$")
  local quoted = value:match('^"(.*)"$')
  if quoted then value = quoted:gsub("\\(.)", "%1") end
  if value == "" then return nil end
  return value
end

-- A text that is the same for the same decoded form, however it was encoded: JSON or
-- multipart, any boundary, any order of fields; a file counts by its name, type and bytes.
local function canonical(value, out)
  if type(value) ~= "table" or value == json.null then
    out[#out + 1] = type(value) .. ":" .. tostring(value)
    return
  end
  if value.is_file then
    out[#out + 1] = string.format("file:%s:%s:%s", tostring(value.filename),
      tostring(value.content_type), sha256.hex(value.data))
    return
  end
  local names = {}
  for name in pairs(value) do names[#names + 1] = tostring(name) end
  table.sort(names)
  out[#out + 1] = "{"
  for _, name in ipairs(names) do
    out[#out + 1] = name .. "="
    canonical(value[name], out)
  end
  out[#out + 1] = "}"
end

--- The fingerprint of a create-type request: its method, path and decoded body (`form`, as
-- api.read_form gives it), as 64 hex digits.
function idempotency.fingerprint(req, form)
  local out = { req.method, " ", req.path, " " }
  canonical(form, out)
  return sha256.hex(table.concat(out))
end

---------------------------------------------------------------------------
-- The remembered keys and the count of creates.

local Store = {}
Store.__index = Store

function idempotency.new()
  return setmetatable({ keys = {}, order = { first = 1, last = 0 },
                        creates = {}, create_order = { first = 1, last = 0 } }, Store)
end

-- Appends name to a bounded first-in list, dropping (and forgetting in `map`) the oldest.
local function remember(order, map, name)
  order.last = order.last + 1
  order[order.last] = name
  while order.last - order.first + 1 > MAX_KEYS do
    map[order[order.first]] = nil
    order[order.first] = nil
    order.first = order.first + 1
  end
end

--- What to answer a request with key `key` and body `print` before it is served: nil to
-- serve it, else a response (the first answer again, or 422 for another body).
function Store:answer(key, print, now)
  local entry = self.keys[key]
  if not entry or now - entry.at > TTL then return nil end
  if entry.fingerprint ~= print then
    return errors.response(422, "This Idempotency-Key was already used with a different request "
      .. "body; use a new key for a new request.", nil, "idempotency_key_reused")
  end
  local headers = {}
  for name, value in pairs(entry.response.headers) do headers[name] = value end
  headers["idempotent-replayed"] = "true"
  return { status = entry.response.status, headers = headers, body = entry.response.body,
           video = entry.response.video, replayed = true }
end

--- Remembers the first successful answer to key `key`.
function Store:keep(key, print, res, now)
  if self.keys[key] then return end
  local headers = {}
  for name, value in pairs(res.headers) do headers[name] = value end
  self.keys[key] = { fingerprint = print, at = now, response = { status = res.status,
    headers = headers, body = res.body, video = res.video } }
  remember(self.order, self.keys, key)
end

--- Counts an object `id` made by a create-type request with `key` (or none) and body `print`.
function Store:count(key, print, id, prompt)
  local name = (key or "") .. " " .. print
  local entry = self.creates[name]
  if not entry then
    entry = { key = key or json.null, fingerprint = print, prompt = prompt or json.null,
              made = 0, ids = json.array() }
    self.creates[name] = entry
    remember(self.create_order, self.creates, name)
  end
  entry.made = entry.made + 1
  entry.ids[#entry.ids + 1] = id
end

--- GET /__emulator/creates: one entry per distinct key and body, oldest first, each with
-- how many objects it made and their ids.
function Store:creates_view()
  local list, order = json.array(), self.create_order
  for i = order.first, order.last do
    local e = self.creates[order[i]]
    if e then
      list[#list + 1] = json.ordered({ "key", "fingerprint", "prompt", "made", "ids" }, e)
    end
  end
  return list
end

return idempotency
